/*
 * jobstop - job-control stops come back exactly: stopped, by the same
 * signal, with the parent's view of the stop unchanged.
 *
 * The root forks children that spin incrementing a shared counter, each in
 * its own process group of the root's session (so SIGTSTP/SIGTTIN/SIGTTOU
 * stop them: the groups are not orphaned), and stops them:
 *   0  SIGTSTP               the root has collected the stop (waitid)
 *   1  SIGSTOP, 3 threads    collected
 *   2  SIGTSTP               not collected: waitid(WSTOPPED) still reports it
 *   3  SIGTTIN               not collected
 *   4  SIGTTOU               not collected
 * SIGCHLD is blocked in the root and drained before READY.
 *
 * After restore: every thread of every child is in state T; no counter moved
 * (a child never ran, not even briefly); the collected stops are not reported
 * again and the others are reported with their own signal; no SIGCHLD is
 * pending. Then SIGCONT: each child reports CLD_CONTINUED and runs again.
 */
#include "wl.h"

#include <dirent.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/wait.h>

#define NCHILD 5

static const int stop_sig[NCHILD] = { SIGTSTP, SIGSTOP, SIGTSTP, SIGTTIN, SIGTTOU };
static const int collected[NCHILD] = { 1, 1, 0, 0, 0 };
static volatile unsigned long *counters;	/* [child * 8 + thread] */

static void *spin_thread(void *arg)
{
	volatile unsigned long *c = arg;

	for (;;)
		(*c)++;
	return NULL;
}

static void spin(int i)
{
	pthread_t t;
	int k;

	setpgid(0, 0);
	signal(SIGTSTP, SIG_DFL);
	signal(SIGTTIN, SIG_DFL);
	signal(SIGTTOU, SIG_DFL);
	if (i == 1)
		for (k = 1; k < 3; k++)
			if (pthread_create(&t, NULL, spin_thread, (void *)&counters[i * 8 + k]))
				_exit(3);
	counters[i * 8 + 7] = 1;	/* running */
	spin_thread((void *)&counters[i * 8]);
}

/* 'T' if every thread of pid is stopped, else the first other state seen. */
static char threads_state(pid_t pid, int *nthreads)
{
	char path[300], buf[512], *p;
	struct dirent *d;
	DIR *dir;
	int n = 0;
	char worst = 'T';

	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	dir = opendir(path);
	if (!dir)
		return '?';
	while ((d = readdir(dir))) {
		if (d->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/%d/task/%s/stat", (int)pid, d->d_name);
		if (wl_read_file(path, buf, sizeof(buf)) < 0)
			continue;
		p = strrchr(buf, ')');
		n++;
		if (p && p[2] != 'T')
			worst = p[2];
	}
	closedir(dir);
	*nthreads = n;
	return worst;
}

static int sigchld_pending(void)
{
	sigset_t set;

	sigpending(&set);
	return sigismember(&set, SIGCHLD);
}

int main(void)
{
	pid_t child[NCHILD];
	unsigned long seen[NCHILD * 8];
	sigset_t chld;
	siginfo_t si;
	struct timespec zero = { 0, 0 };
	int i, k, n;
	char st;

	wl_setup(0);
	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	sigprocmask(SIG_BLOCK, &chld, NULL);
	counters = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (counters == MAP_FAILED)
		wl_die("mmap");
	for (i = 0; i < NCHILD; i++) {
		child[i] = fork();
		if (child[i] < 0)
			wl_die("fork");
		if (!child[i])
			spin(i);
		setpgid(child[i], child[i]);
	}
	for (i = 0; i < NCHILD; i++) {
		while (!counters[i * 8 + 7] || (i == 1 && (!counters[i * 8 + 1] || !counters[i * 8 + 2])))
			usleep(1000);
		if (kill(child[i], stop_sig[i]))
			wl_die("kill");
		memset(&si, 0, sizeof(si));
		if (waitid(P_PID, child[i], &si, WSTOPPED | (collected[i] ? 0 : WNOWAIT)))
			wl_die("waitid");
		if (si.si_code != CLD_STOPPED || si.si_status != stop_sig[i])
			wl_die("stop report");
		while (threads_state(child[i], &n) != 'T')
			usleep(1000);
	}
	while (sigtimedwait(&chld, NULL, &zero) == SIGCHLD)
		;
	for (i = 0; i < NCHILD * 8; i++)
		seen[i] = counters[i];
	wl_ready();
	wl_wait();

	for (i = 0; i < NCHILD; i++) {
		st = threads_state(child[i], &n);
		wl_check(st == 'T', "child %d (%d): a thread is in state %c, not T", i, (int)child[i], st);
		wl_check(n == (i == 1 ? 3 : 1), "child %d: %d threads", i, n);
		for (k = 0; k < 8; k++)
			wl_check(counters[i * 8 + k] == seen[i * 8 + k],
				 "child %d thread %d ran after restore: counter %lu, was %lu", i, k,
				 counters[i * 8 + k], seen[i * 8 + k]);
		memset(&si, 0, sizeof(si));
		if (waitid(P_PID, child[i], &si, WSTOPPED | WNOHANG))
			wl_die("waitid after restore");
		if (collected[i])
			wl_check(si.si_pid == 0, "child %d: stop collected before the dump is reported again "
				 "(code %d status %d)", i, si.si_code, si.si_status);
		else
			wl_check(si.si_pid == child[i] && si.si_code == CLD_STOPPED &&
				 si.si_status == stop_sig[i],
				 "child %d: waitid(WSTOPPED) says pid %d code %d status %d, want stop by %d",
				 i, (int)si.si_pid, si.si_code, si.si_status, stop_sig[i]);
	}
	wl_check(!sigchld_pending(), "SIGCHLD pending after restore, was not before");

	for (i = 0; i < NCHILD; i++) {
		if (kill(child[i], SIGCONT))
			wl_die("SIGCONT");
		memset(&si, 0, sizeof(si));
		if (waitid(P_PID, child[i], &si, WCONTINUED))
			wl_die("waitid WCONTINUED");
		wl_check(si.si_code == CLD_CONTINUED, "child %d: after SIGCONT code %d, want CLD_CONTINUED",
			 i, si.si_code);
		for (k = 0; k < (i == 1 ? 3 : 1); k++) {
			unsigned long before = counters[i * 8 + k];
			int tries = 0;

			while (counters[i * 8 + k] == before && tries++ < 2000)
				usleep(1000);
			wl_check(counters[i * 8 + k] != before, "child %d thread %d does not run after SIGCONT",
				 i, k);
		}
		kill(child[i], SIGKILL);
		waitpid(child[i], NULL, 0);
	}
	return wl_finish();
}
