/*
 * locks: an flock() write lock, a POSIX read-write lock on a byte range and
 * an OFD read lock. After restore a child (forked then) must find each one
 * held by us: flock and conflicting F_SETLK attempts fail with EAGAIN/
 * EWOULDBLOCK, F_GETLK names our PID for the POSIX lock.
 */
#include "wl.h"
#include <sys/file.h>
#include <sys/wait.h>

static int set_lock(int fd, int cmd, short type, off_t start, off_t len)
{
	struct flock fl = { .l_type = type, .l_whence = SEEK_SET, .l_start = start, .l_len = len };

	return fcntl(fd, cmd, &fl);
}

static int child_checks(pid_t parent)
{
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 8, .l_len = 2 };
	int a = open("flocked", O_RDWR), b = open("ranged", O_RDWR), c = open("ofd", O_RDWR);

	if (a < 0 || b < 0 || c < 0)
		return 10;
	if (flock(a, LOCK_EX | LOCK_NB) == 0 || errno != EWOULDBLOCK)
		return 11;
	if (fcntl(b, F_GETLK, &fl) || fl.l_type != F_WRLCK || fl.l_pid != parent || fl.l_start != 5)
		return 12;
	if (set_lock(b, F_SETLK, F_WRLCK, 0, 4))	/* outside the range: free */
		return 13;
	if (set_lock(c, F_OFD_SETLK, F_WRLCK, 0, 0) == 0 || errno != EAGAIN)
		return 14;
	if (set_lock(c, F_OFD_SETLK, F_RDLCK, 0, 0))	/* read locks share */
		return 15;
	return 0;
}

int main(void)
{
	int a, b, c, status;
	pid_t child, me = getpid();

	wl_setup(0);
	a = open("flocked", O_RDWR | O_CREAT, 0600);
	b = open("ranged", O_RDWR | O_CREAT, 0600);
	c = open("ofd", O_RDWR | O_CREAT, 0600);
	if (a < 0 || b < 0 || c < 0 || ftruncate(b, 100))
		wl_die("open");
	if (flock(a, LOCK_EX) || set_lock(b, F_SETLK, F_WRLCK, 5, 10) || set_lock(c, F_OFD_SETLK, F_RDLCK, 0, 0))
		wl_die("lock");
	wl_ready();
	wl_wait();

	child = fork();
	if (!child)
		_exit(child_checks(me));
	wl_check(waitpid(child, &status, 0) == child && WIFEXITED(status) && !WEXITSTATUS(status),
		 "lock check %d failed in the child", WEXITSTATUS(status));
	return wl_finish();
}
