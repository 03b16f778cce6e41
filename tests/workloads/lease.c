/*
 * lease: file leases (F_SETLEASE) with their break-notification owner and
 * signal.
 *   "rd"  a read lease on an O_RDONLY fd, break signal SIGUSR1 (F_SETSIG),
 *         owner: this process (set by F_SETLEASE itself);
 *   "wr"  a write lease on an O_RDWR fd, default signal (SIGIO), owner
 *         moved to our process group (F_SETOWN_EX F_OWNER_PGRP).
 * After restore: F_GETLEASE, F_GETSIG and F_GETOWN_EX are as set, and each
 * lease still works: a child opening "rd" for writing (or "wr" for reading)
 * with O_NONBLOCK gets EWOULDBLOCK and we receive the break signal; then
 * we give the lease up.
 */
#include "wl.h"
#include <sys/wait.h>
#include <time.h>

static int opens_blocked(const char *path, int flags)
{
	pid_t child = fork();
	int status;

	if (child < 0)
		return 0;
	if (!child) {
		int fd = open(path, flags | O_NONBLOCK);

		_exit(fd < 0 && errno == EWOULDBLOCK ? 0 : 1);
	}
	return waitpid(child, &status, 0) == child && WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

static int got_signal(int sig)
{
	struct timespec timeout = { .tv_sec = 30 };
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, sig);
	return sigtimedwait(&set, NULL, &timeout) == sig;
}

int main(void)
{
	struct f_owner_ex owner = { .type = F_OWNER_PGRP };
	sigset_t set;
	int rd, wr;

	wl_setup(0);
	/* break signals are collected with sigtimedwait */
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, SIGIO);
	sigprocmask(SIG_BLOCK, &set, NULL);
	rd = open("rd", O_RDWR | O_CREAT, 0600);
	wr = open("wr", O_RDWR | O_CREAT, 0600);
	if (rd < 0 || wr < 0 || close(rd) || close(wr))
		wl_die("create");
	rd = open("rd", O_RDONLY);
	wr = open("wr", O_RDWR);
	if (rd < 0 || wr < 0)
		wl_die("open");
	owner.pid = getpgrp();
	if (fcntl(rd, F_SETLEASE, F_RDLCK) || fcntl(rd, F_SETSIG, SIGUSR1))
		wl_die("read lease");
	if (fcntl(wr, F_SETLEASE, F_WRLCK) || fcntl(wr, F_SETOWN_EX, &owner))
		wl_die("write lease");
	wl_ready();
	wl_wait();

	memset(&owner, 0, sizeof(owner));
	wl_check(fcntl(rd, F_GETLEASE) == F_RDLCK, "rd: lease %d, want F_RDLCK", fcntl(rd, F_GETLEASE));
	wl_check(fcntl(rd, F_GETSIG) == SIGUSR1, "rd: signal %d, want SIGUSR1", fcntl(rd, F_GETSIG));
	wl_check(!fcntl(rd, F_GETOWN_EX, &owner) && owner.type == F_OWNER_PID && owner.pid == getpid(),
		 "rd: owner type %d pid %d", owner.type, (int)owner.pid);
	wl_check(fcntl(wr, F_GETLEASE) == F_WRLCK, "wr: lease %d, want F_WRLCK", fcntl(wr, F_GETLEASE));
	wl_check(fcntl(wr, F_GETSIG) == 0, "wr: signal %d, want 0 (SIGIO)", fcntl(wr, F_GETSIG));
	wl_check(!fcntl(wr, F_GETOWN_EX, &owner) && owner.type == F_OWNER_PGRP && owner.pid == getpgrp(),
		 "wr: owner type %d pid %d", owner.type, (int)owner.pid);

	wl_check(opens_blocked("rd", O_WRONLY), "rd: opening it for writing did not meet the lease");
	wl_check(got_signal(SIGUSR1), "rd: no SIGUSR1 when the lease was broken");
	wl_check(fcntl(rd, F_SETLEASE, F_UNLCK) == 0, "rd: giving the lease up: %s", strerror(errno));
	wl_check(opens_blocked("wr", O_RDONLY), "wr: opening it did not meet the lease");
	wl_check(got_signal(SIGIO), "wr: no SIGIO when the lease was broken");
	wl_check(fcntl(wr, F_SETLEASE, F_UNLCK) == 0, "wr: giving the lease up: %s", strerror(errno));
	return wl_finish();
}
