/*
 * tree: a process tree. The root (a session leader, started so by the
 * harness) has
 *   A  in its own process group, with a grandchild G in A's group;
 *   Z  a zombie that exited with status 42, not reaped;
 *   K  a zombie killed by SIGUSR2, not reaped;
 *   S  stopped by SIGSTOP.
 * A has a parent-death signal (it is not the root, whose parent is outside).
 * Root and A share an anonymous MAP_SHARED region, a pipe (A's message sits
 * in its buffer) and a file offset (one open file inherited over fork).
 * After restore the root checks the zombies' statuses, S still stopped, the
 * buffered message, that the memory and the offset are still shared, and
 * A's group and session; A checks its parent, group, session and the
 * shared memory, and reaps G. Only the root prints PASS/FAIL; children
 * report through their exit status.
 */
#include "wl.h"
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>

static char *shared;
static int pipefd[2], filefd;
static pid_t root;

static int proc_state(pid_t pid)
{
	char path[64], buf[512], *p;
	int fd, n;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return '?';
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return '?';
	buf[n] = 0;
	p = strrchr(buf, ')');
	return p && p[1] && p[2] ? p[2] : '?';
}

static void wait_state(pid_t pid, int state)
{
	int i;

	for (i = 0; i < 1000 && proc_state(pid) != state; i++)
		usleep(10000);
	if (proc_state(pid) != state)
		wl_die("child did not reach its state");
}

/* Children report failures with distinct exit codes. */
static int grandchild(void)
{
	wl_wait();
	if (getppid() == root || getpgid(0) == getpid())
		return 11;
	return 0;
}

static int child_a(void)
{
	pid_t g, me = getpid();
	int status, pdeath = 0;

	if (setpgid(0, 0) || prctl(PR_SET_PDEATHSIG, SIGUSR2, 0, 0, 0))
		return 20;
	shared[4096] = 'A';
	if (write(pipefd[1], "hello-from-A", 12) != 12 || write(filefd, "AAAAA", 5) != 5)
		return 21;
	g = fork();
	if (g < 0)
		return 22;
	if (!g)
		_exit(grandchild());
	wl_wait();
	if (getppid() != root)
		return 23;
	if (getpgid(0) != me || getsid(0) != root)
		return 24;
	if (shared[0] != 'R' || shared[8192] != 'B')	/* the root's writes, before and after restore */
		return 25;
	if (lseek(filefd, 0, SEEK_CUR) != 8)		/* 5 from us + 3 from the root */
		return 26;
	if (prctl(PR_GET_PDEATHSIG, &pdeath, 0, 0, 0) || pdeath != SIGUSR2)
		return 29;
	if (getpgid(g) != me || kill(g, SIGTERM) || waitpid(g, &status, 0) != g)
		return 27;
	if (!WIFEXITED(status) || WEXITSTATUS(status))
		return 28;
	return 0;
}

int main(void)
{
	pid_t a, z, k, s;
	int status;
	char buf[32];

	wl_setup(0);
	root = getpid();
	shared = mmap(NULL, 4 * 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	filefd = open("shared.log", O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (shared == MAP_FAILED || filefd < 0 || pipe(pipefd))
		wl_die("setup");
	shared[0] = 'R';

	a = fork();
	if (!a)
		_exit(child_a());
	z = fork();
	if (!z)
		_exit(42);
	k = fork();
	if (!k) {
		signal(SIGUSR2, SIG_DFL);
		raise(SIGUSR2);
		_exit(99);
	}
	s = fork();
	if (!s) {
		raise(SIGSTOP);
		wl_wait();
		_exit(getppid() == root ? 0 : 31);
	}
	if (waitpid(s, &status, WUNTRACED) != s || !WIFSTOPPED(status))
		wl_die("stop S");
	wait_state(z, 'Z');
	wait_state(k, 'Z');
	while (shared[4096] != 'A')
		usleep(1000);
	wait_state(a, 'S');
	wl_ready();
	wl_wait();

	wl_check(waitpid(z, &status, WNOHANG) == z && WIFEXITED(status) && WEXITSTATUS(status) == 42,
		 "zombie %d: status %#x", (int)z, status);
	wl_check(waitpid(k, &status, WNOHANG) == k && WIFSIGNALED(status) && WTERMSIG(status) == SIGUSR2,
		 "killed zombie %d: status %#x", (int)k, status);
	wl_check(proc_state(s) == 'T', "%d is in state %c, not stopped", (int)s, proc_state(s));
	memset(buf, 0, sizeof(buf));
	wl_check(read(pipefd[0], buf, 12) == 12 && !strcmp(buf, "hello-from-A"),
		 "pipe held '%s'", buf);
	wl_check(getpgid(a) == a && getsid(a) == root, "A: group %d session %d", (int)getpgid(a),
		 (int)getsid(a));
	wl_check(getsid(0) == root && getpgid(0) == root, "root: session %d group %d", (int)getsid(0),
		 (int)getpgid(0));
	wl_check(lseek(filefd, 0, SEEK_CUR) == 5, "shared offset %ld, want 5",
		 (long)lseek(filefd, 0, SEEK_CUR));
	if (write(filefd, "RRR", 3) != 3)
		wl_die("write");
	shared[8192] = 'B';

	kill(s, SIGCONT);
	kill(s, SIGTERM);
	kill(a, SIGTERM);
	wl_check(waitpid(a, &status, 0) == a && WIFEXITED(status) && !WEXITSTATUS(status),
		 "child A: status %#x", status);
	wl_check(waitpid(s, &status, 0) == s && WIFEXITED(status) && !WEXITSTATUS(status),
		 "child S: status %#x", status);
	return wl_finish();
}
