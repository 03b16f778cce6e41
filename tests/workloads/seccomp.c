/*
 * seccomp: seccomp state survives a checkpoint, per thread. argv[1]:
 *   filters  a stack of filters, each making syscalls fail with its own
 *            errno and allowing the rest: B (getsid and getpgid -> EXDEV,
 *            installed with SECCOMP_FILTER_FLAG_LOG before the threads
 *            exist, so they inherit it), then A (getpgid -> ENOTBLK,
 *            synchronised to every thread with TSYNC), then C
 *            (sched_getscheduler -> EUNATCH) in one thread only. For
 *            getpgid the newest filter's errno wins, so the order of the
 *            stack shows. no_new_privs is set (as an unprivileged program
 *            must).
 *   strict   one thread in strict mode (read/write/exit/sigreturn only)
 *            that answers a byte on a pipe; the others are unfiltered.
 * After restore: every filtered call still fails with its errno in exactly
 * the threads it did, the others work, and /proc/self/task/TID/status shows
 * the same Seccomp mode and Seccomp_filters count per thread.
 */
#include "wl.h"
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <sched.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

#define NTHREADS 2

struct worker {
	pthread_t th;
	pid_t tid;
	int go[2], done[2];
	int extra;			/* has filter C */
	int failures;
};

static struct worker workers[NTHREADS];
static struct worker strict_worker;

/* A filter making syscalls nr and nr2 (-1: none) fail with err. */
static int install(int nr, int nr2, int err, unsigned int flags)
{
	struct sock_filter prog[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, nr, 1, 0),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, nr2, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | err),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog fprog = { sizeof(prog) / sizeof(prog[0]), prog };

	return syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, &fprog);
}

/* Field `key` of /proc/self/task/TID/status, or -1. */
static long status_field(pid_t tid, const char *key)
{
	char path[64], buf[4096], *p;

	snprintf(path, sizeof(path), "/proc/self/task/%d/status", (int)tid);
	if (wl_read_file(path, buf, sizeof(buf)) < 0)
		return -1;
	p = strstr(buf, key);
	return p ? atol(p + strlen(key)) : -1;
}

/* 0 if syscall nr fails with err (or succeeds when err is 0), else 1. */
static int expect(long nr, int err, const char *who)
{
	long r = syscall(nr, 0);
	int got = r < 0 ? errno : 0;

	if (got == err)
		return 0;
	wl_fail("%s: syscall %ld: errno %d, expected %d", who, nr, got, err);
	return 1;
}

static int check_calls(int extra, const char *who)
{
	return expect(SYS_getsid, EXDEV, who) + expect(SYS_getpgid, ENOTBLK, who) +
	       expect(SYS_sched_getscheduler, extra ? EUNATCH : 0, who);
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	char c;

	w->tid = syscall(SYS_gettid);
	if (read(w->go[0], &c, 1) != 1)	/* wait until A is synchronised */
		return NULL;
	if (w->extra && install(SYS_sched_getscheduler, -1, EUNATCH, 0))
		wl_die("install C");
	if (write(w->done[1], "r", 1) != 1)
		return NULL;
	if (read(w->go[0], &c, 1) != 1)	/* after restore: check */
		return NULL;
	w->failures = check_calls(w->extra, w->extra ? "thread with C" : "thread");
	if (write(w->done[1], "d", 1) != 1)
		return NULL;
	for (;;)
		pause();
	return NULL;
}

/* Strict mode: only read, write, exit, sigreturn from here on. */
static void *strict_main(void *arg)
{
	struct worker *w = arg;
	char c;

	w->tid = syscall(SYS_gettid);
	if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_STRICT, 0, 0, 0))
		wl_die("strict");
	for (;;) {
		if (syscall(SYS_read, w->go[0], &c, 1) != 1)
			syscall(SYS_exit, 1);
		c++;
		syscall(SYS_write, w->done[1], &c, 1);
	}
	return NULL;
}

static void start(struct worker *w, void *(*fn)(void *))
{
	if (pipe(w->go) || pipe(w->done))
		wl_die("pipe");
	if (pthread_create(&w->th, NULL, fn, w))
		wl_die("pthread_create");
	while (!__atomic_load_n(&w->tid, __ATOMIC_SEQ_CST))
		sched_yield();
}

static void say_step(struct worker *w, char want)
{
	char c;

	if (write(w->go[1], "g", 1) != 1 || read(w->done[0], &c, 1) != 1 || c != want)
		wl_die("worker step");
}

static void check_status(pid_t tid, long mode, long filters)
{
	long m = status_field(tid, "Seccomp:"), f = status_field(tid, "Seccomp_filters:");

	wl_check(m == mode, "thread %d: Seccomp %ld, expected %ld", (int)tid, m, mode);
	wl_check(f == filters, "thread %d: Seccomp_filters %ld, expected %ld", (int)tid, f, filters);
}

static int run_filters(void)
{
	int i;

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
		wl_die("no_new_privs");
	if (install(SYS_getsid, SYS_getpgid, EXDEV, SECCOMP_FILTER_FLAG_LOG))
		wl_die("install B");
	workers[1].extra = 1;
	for (i = 0; i < NTHREADS; i++)
		start(&workers[i], worker_main);
	if (install(SYS_getpgid, -1, ENOTBLK, SECCOMP_FILTER_FLAG_TSYNC))
		wl_die("install A (TSYNC)");
	for (i = 0; i < NTHREADS; i++)
		say_step(&workers[i], 'r');
	if (check_calls(0, "main (before)"))
		wl_die("filters do not work");

	wl_ready();
	wl_wait();

	check_calls(0, "main");
	for (i = 0; i < NTHREADS; i++) {
		say_step(&workers[i], 'd');
		wl_check(!workers[i].failures, "thread %d: %d wrong syscall results", (int)workers[i].tid,
			 workers[i].failures);
	}
	check_status(getpid(), SECCOMP_MODE_FILTER, 2);
	check_status(workers[0].tid, SECCOMP_MODE_FILTER, 2);
	check_status(workers[1].tid, SECCOMP_MODE_FILTER, 3);
	wl_check(prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) == 1, "no_new_privs lost");
	return wl_finish();
}

static int run_strict(void)
{
	char c = 'a';

	start(&strict_worker, strict_main);
	if (write(strict_worker.go[1], &c, 1) != 1 || read(strict_worker.done[0], &c, 1) != 1 || c != 'b')
		wl_die("strict thread does not answer");
	check_status(strict_worker.tid, SECCOMP_MODE_STRICT, 0);

	wl_ready();
	wl_wait();

	c = 'x';
	wl_check(write(strict_worker.go[1], &c, 1) == 1, "write to the strict thread");
	wl_check(read(strict_worker.done[0], &c, 1) == 1 && c == 'y', "the strict thread answered %c", c);
	check_status(strict_worker.tid, SECCOMP_MODE_STRICT, 0);
	check_status(getpid(), 0, 0);
	wl_check(syscall(SYS_getsid, 0) >= 0, "main: getsid failed: %s", strerror(errno));
	return wl_finish();
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "";

	wl_setup(0);
	if (!strcmp(mode, "filters"))
		return run_filters();
	if (!strcmp(mode, "strict"))
		return run_strict();
	errno = EINVAL;
	wl_die(mode);
}
