/*
 * threads COUNT MIB: COUNT threads besides the main one, each owning MIB
 * MiB of memory and ticking a heartbeat every millisecond. The main thread
 * checks every thread's memory and that every heartbeat goes on after the
 * restore.
 */
#include "bench.h"
#include <pthread.h>

#define MAX_THREADS 256

static struct worker {
	char *mem;
	volatile uint64_t beats;
} workers[MAX_THREADS];

static void *work(void *arg)
{
	struct worker *w = arg;
	struct timespec ms = { 0, 1000000 };
	sigset_t all;

	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);	/* signals are the main thread's */
	for (;;) {
		w->beats++;
		nanosleep(&ms, NULL);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	size_t count = bw_arg(argc, argv, 1, 16), mib = bw_arg(argc, argv, 2, 1);
	size_t pages = mib * BW_MIB / BW_PAGE, i, bad = 0;
	uint64_t expected = 0xcbf29ce484222325ULL, sum = 0xcbf29ce484222325ULL, before[MAX_THREADS];
	pthread_t tid;

	if (count > MAX_THREADS)
		count = MAX_THREADS;
	bw_setup();
	for (i = 0; i < count; i++) {
		workers[i].mem = bw_map(pages * BW_PAGE);
		bw_fill(workers[i].mem, pages, i * pages);
		bw_check(workers[i].mem, pages, i * pages, &expected);
		if (pthread_create(&tid, NULL, work, &workers[i]))
			bw_die("pthread_create");
	}
	bw_say("READY %016llx", (unsigned long long)expected);
	bw_loop(NULL);

	for (i = 0; i < count; i++) {
		before[i] = workers[i].beats;
		bad += bw_check(workers[i].mem, pages, i * pages, &sum);
	}
	usleep(200000);
	for (i = 0; i < count; i++)
		if (workers[i].beats == before[i]) {
			bw_say("FAIL thread %zu does not run", i);
			return 1;
		}
	return bw_report(bad, sum, expected, count * pages * BW_PAGE);
}
