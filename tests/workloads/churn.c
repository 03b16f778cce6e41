/*
 * churn - a tree whose children and threads come and go all the time, as in
 * `make -j2` or a shell loop: the dump's freeze meets processes and threads
 * that exit (or are reaped) while it attaches to them.
 *
 * Two forkers each keep four children alive that live up to 8 ms
 * and exit with a known status, and reap them; the main process starts and
 * joins short threads that return a known value. Every status and value is checked as it arrives; after
 * SIGTERM, every forker reaps what it has left and exits 0 only if every
 * child's status was right.
 */
#include "wl.h"

#include <pthread.h>
#include <sys/wait.h>

#define FORKERS 2

static void *thread_body(void *arg)
{
	return (void *)((uintptr_t)arg * 3 + 1);
}

/* Keep BATCH children alive, each living up to 8 ms, until SIGTERM is pending;
 * exit 0 if every child's exit status was right (its PID's low bits). */
#define BATCH 4
static int forker(void)
{
	unsigned long bad = 0;
	int live = 0, status;
	sigset_t pending;
	pid_t kid;

	for (;;) {
		sigpending(&pending);
		if (sigismember(&pending, SIGTERM))
			break;
		while (live < BATCH) {
			kid = fork();
			if (kid < 0)
				break;
			if (kid == 0) {
				usleep(200 + getpid() % 8000);
				_exit(getpid() & 0x7f);
			}
			live++;
		}
		kid = wait(&status);
		if (kid < 0)
			continue;
		live--;
		if (!WIFEXITED(status) || WEXITSTATUS(status) != (kid & 0x7f))
			bad++;
	}
	while ((kid = wait(&status)) > 0)
		if (!WIFEXITED(status) || WEXITSTATUS(status) != (kid & 0x7f))
			bad++;
	return bad ? 1 : 0;
}

int main(void)
{
	pid_t forkers[FORKERS];
	unsigned long rounds = 0;
	sigset_t pending;
	int i, status;

	wl_setup(0);
	for (i = 0; i < FORKERS; i++) {
		forkers[i] = fork();
		if (forkers[i] < 0)
			wl_die("fork");
		if (forkers[i] == 0)
			_exit(forker());
	}
	for (;;) {
		pthread_t t;
		void *ret;

		if (rounds == 200)
			wl_ready();
		sigpending(&pending);
		if (sigismember(&pending, SIGTERM))
			break;
		if (pthread_create(&t, NULL, thread_body, (void *)(uintptr_t)rounds))
			wl_die("pthread_create");
		if (pthread_join(t, &ret))
			wl_die("pthread_join");
		wl_check((uintptr_t)ret == rounds * 3 + 1, "thread %lu returned %lu", rounds,
			 (unsigned long)(uintptr_t)ret);
		rounds++;
		usleep(500);
	}
	for (i = 0; i < FORKERS; i++) {
		kill(forkers[i], SIGTERM);
		wl_check(waitpid(forkers[i], &status, 0) == forkers[i], "forker %d: waitpid: %s", i, strerror(errno));
		wl_check(WIFEXITED(status) && WEXITSTATUS(status) == 0,
			 "forker %d: a child's exit status was wrong (status 0x%x)", i, status);
	}
	return wl_finish();
}
