/*
 * zombiesig - zombie children of a parent that has signal handlers.
 *
 * The parent installs handlers (SIGCHLD with SA_SIGINFO|SA_RESTART|
 * SA_NOCLDSTOP, SIGUSR1, SIGHUP with a mask, SIGINT ignored) and leaves
 * three zombies unreaped: one exited 7, one killed by SIGKILL, one killed by
 * SIGUSR2. After restore: the handlers are the same (sigaction), the
 * zombies report the same statuses, no SIGCHLD handler ran since READY.
 */
#include "wl.h"

#include <sys/wait.h>

static volatile sig_atomic_t chld_runs;

static void on_chld(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)si;
	(void)uc;
	chld_runs++;
}

static void on_other(int sig)
{
	(void)sig;
}

static char proc_state(pid_t pid)
{
	char path[64], buf[512], *p;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if (wl_read_file(path, buf, sizeof(buf)) < 0)
		return '?';
	p = strrchr(buf, ')');
	return p ? p[2] : '?';
}

static int same_mask(const sigset_t *a, const sigset_t *b)
{
	int s;

	for (s = 1; s < 65; s++)
		if (sigismember(a, s) != sigismember(b, s))
			return 0;
	return 1;
}

static const int sigs[] = { SIGCHLD, SIGUSR1, SIGHUP, SIGINT };
#define NSIGS 4

int main(void)
{
	struct sigaction sa, before[NSIGS], after;

	memset(before, 0, sizeof(before));
	pid_t z[3];
	int i, status, runs;

	wl_setup(0);
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_chld;
	sa.sa_flags = SA_SIGINFO | SA_RESTART | SA_NOCLDSTOP;
	sigaddset(&sa.sa_mask, SIGUSR1);
	sigaction(SIGCHLD, &sa, NULL);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_other;
	sigaction(SIGUSR1, &sa, NULL);
	sigaddset(&sa.sa_mask, SIGINT);
	sigaddset(&sa.sa_mask, SIGRTMIN + 2);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGINT, SIG_IGN);
	for (i = 0; i < NSIGS; i++)
		sigaction(sigs[i], NULL, &before[i]);

	for (i = 0; i < 3; i++) {
		z[i] = fork();
		if (z[i] < 0)
			wl_die("fork");
		if (!z[i]) {
			if (i == 0)
				_exit(7);
			signal(SIGUSR2, SIG_DFL);
			raise(i == 1 ? SIGKILL : SIGUSR2);
			_exit(99);
		}
		while (proc_state(z[i]) != 'Z')
			usleep(1000);
	}
	runs = chld_runs;
	wl_ready();
	wl_wait();

	wl_check(chld_runs == runs, "the SIGCHLD handler ran %d times after READY", chld_runs - runs);
	for (i = 0; i < NSIGS; i++) {
		memset(&after, 0, sizeof(after));
		sigaction(sigs[i], NULL, &after);
		wl_check(after.sa_handler == before[i].sa_handler && after.sa_flags == before[i].sa_flags &&
			 same_mask(&after.sa_mask, &before[i].sa_mask),
			 "signal %d: handler %p flags %#x, was %p %#x (or its mask differs)", sigs[i],
			 (void *)after.sa_handler, after.sa_flags, (void *)before[i].sa_handler,
			 before[i].sa_flags);
	}
	for (i = 0; i < 3; i++)
		wl_check(proc_state(z[i]) == 'Z', "child %d is in state %c, not a zombie", (int)z[i],
			 proc_state(z[i]));
	wl_check(waitpid(z[0], &status, WNOHANG) == z[0] && WIFEXITED(status) && WEXITSTATUS(status) == 7,
		 "zombie %d: status %#x, want exit 7", (int)z[0], status);
	wl_check(waitpid(z[1], &status, WNOHANG) == z[1] && WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
		 "zombie %d: status %#x, want SIGKILL", (int)z[1], status);
	wl_check(waitpid(z[2], &status, WNOHANG) == z[2] && WIFSIGNALED(status) && WTERMSIG(status) == SIGUSR2,
		 "zombie %d: status %#x, want SIGUSR2", (int)z[2], status);
	return wl_finish();
}
