/*
 * longjob STEPS [MIB]: a long computation with a result that can be checked,
 * for `pyckpt supervise` (not a wl.h workload: it runs to its end by itself).
 * Each step rewrites a few pages of a large buffer from its own contents and
 * folds them into a running hash, then sleeps 10 ms; after STEPS steps it
 * prints "RESULT <hash>" and exits 0. The same arguments give the same
 * result however often the process is checkpointed, killed and restored.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PAGE 4096

int main(int argc, char **argv)
{
	long steps = argc > 1 ? atol(argv[1]) : 1000, mib = argc > 2 ? atol(argv[2]) : 16;
	size_t pages = (size_t)mib * 1024 * 1024 / PAGE;
	uint64_t hash = 1469598103934665603ULL;
	struct timespec nap = { 0, 10 * 1000 * 1000 };
	unsigned char *buf = malloc(pages * PAGE);
	long step;

	if (!buf || steps <= 0 || !pages)
		return 2;
	for (size_t i = 0; i < pages * PAGE; i++)
		buf[i] = (unsigned char)(i * 131 + 7);
	for (step = 0; step < steps; step++) {
		for (int k = 0; k < 4; k++) {
			size_t page = (hash >> (k * 8)) % pages;
			unsigned char *p = buf + page * PAGE;

			for (int i = 0; i < PAGE; i++) {
				p[i] = (unsigned char)(p[i] * 33 + step + i);
				hash = (hash ^ p[i]) * 1099511628211ULL;
			}
		}
		nanosleep(&nap, NULL);
	}
	printf("RESULT %016llx\n", (unsigned long long)hash);
	return 0;
}
