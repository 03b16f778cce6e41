/*
 * bench.h - the protocol of the `pyckpt bench` workloads (one .c file each).
 *
 * The runner starts a workload in a fresh folder, in its own session, with
 * stdin, stdout and stderr on /dev/null. A workload talks through the file
 * "status" in its cwd, opened, appended to and closed for every line, so it
 * holds no fd of its own that a checkpoint would have to carry:
 *
 *   READY <checksum>        its memory is filled (the runner may dump now)
 *   SIGUSR1 -> STALL <ns>   the longest gap between two CLOCK_MONOTONIC
 *                           stamps of its main loop since READY or the last
 *                           STALL: the time it was frozen, as it saw it
 *   SIGTERM -> VERIFIED <checksum> <bytes>   every page it owns holds what
 *                           it wrote there (exit 0), or FAIL <why> (exit 1)
 *
 * Memory is filled with a pattern that depends on the page's index and a
 * per-page version (word 0), so a lost, zeroed or misplaced page is found by
 * the workload itself; the checksum of all pages is compared as well.
 * Signals only set flags: the main loop acts on them between two steps, so a
 * step interrupted by a checkpoint is finished before anything is checked.
 */
#ifndef PYCKPT_BENCH_H
#define PYCKPT_BENCH_H

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define BW_FN static __attribute__((unused))
#define BW_PAGE 4096UL
#define BW_WORDS (BW_PAGE / sizeof(uint64_t))
#define BW_MIB (1024UL * 1024UL)

static volatile sig_atomic_t bw_want_stall, bw_want_verify;
static int64_t bw_max_gap_ns;

/* Append one line to ./status (open, write, close: no fd is kept). */
BW_FN void bw_say(const char *fmt, ...)
{
	char line[256];
	va_list ap;
	int fd, n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
	va_end(ap);
	line[n++] = '\n';
	fd = open("status", O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0)
		_exit(3);
	if (write(fd, line, n) != n)
		_exit(3);
	close(fd);
}

BW_FN void bw_die(const char *what)
{
	bw_say("FAIL %s: %s", what, strerror(errno));
	exit(1);
}

static void bw_on_signal(int sig)
{
	if (sig == SIGUSR1)
		bw_want_stall = 1;
	else
		bw_want_verify = 1;
}

BW_FN void bw_setup(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = bw_on_signal;
	sigaction(SIGUSR1, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
}

BW_FN int64_t bw_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static uint64_t bw_mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

/* Fill page number `index` (unique within the workload) at `version`. */
BW_FN void bw_fill_page(uint64_t *page, uint64_t index, uint64_t version)
{
	uint64_t base = bw_mix(index * 0x100000001b3ULL ^ (version << 40));
	size_t j;

	page[0] = version;
	for (j = 1; j < BW_WORDS; j++)
		page[j] = base + j * 0x9e3779b97f4a7c15ULL;
}

/* Check one page against its pattern; folds it into *sum. 0 if it is right. */
BW_FN int bw_check_page(const uint64_t *page, uint64_t index, uint64_t *sum)
{
	uint64_t base = bw_mix(index * 0x100000001b3ULL ^ (page[0] << 40));
	uint64_t acc = page[0];
	int bad = 0;
	size_t j;

	for (j = 1; j < BW_WORDS; j++) {
		bad |= page[j] != base + j * 0x9e3779b97f4a7c15ULL;
		acc += page[j] ^ (acc >> 7);
	}
	*sum = (*sum ^ acc) * 0x100000001b3ULL;
	return bad;
}

/* Fill `pages` pages from `first_index` on; returns their checksum. */
BW_FN uint64_t bw_fill(void *mem, size_t pages, uint64_t first_index)
{
	uint64_t sum = 0xcbf29ce484222325ULL;
	size_t i;

	for (i = 0; i < pages; i++)
		bw_fill_page((uint64_t *)((char *)mem + i * BW_PAGE), first_index + i, 0);
	for (i = 0; i < pages; i++)
		bw_check_page((uint64_t *)((char *)mem + i * BW_PAGE), first_index + i, &sum);
	return sum;
}

/* Check `pages` pages; returns the number of wrong ones, *sum their checksum. */
BW_FN size_t bw_check(const void *mem, size_t pages, uint64_t first_index, uint64_t *sum)
{
	size_t i, bad = 0;

	for (i = 0; i < pages; i++)
		bad += bw_check_page((const uint64_t *)((const char *)mem + i * BW_PAGE),
				     first_index + i, sum);
	return bad;
}

BW_FN void *bw_map(size_t bytes)
{
	void *mem = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (mem == MAP_FAILED)
		bw_die("mmap");
	return mem;
}

/*
 * The main loop: `step` (or a 1 ms sleep when NULL) between two clock
 * stamps, the longest gap kept, until SIGTERM. A sleeping loop sees a
 * frozen time to within about a millisecond.
 */
BW_FN void bw_loop(void (*step)(void))
{
	struct timespec ms = { 0, 1000000 };
	int64_t last = bw_now_ns(), t;

	while (!bw_want_verify) {
		if (step)
			step();
		else
			nanosleep(&ms, NULL);
		t = bw_now_ns();
		if (t - last > bw_max_gap_ns)
			bw_max_gap_ns = t - last;
		last = t;
		if (bw_want_stall) {
			bw_want_stall = 0;
			bw_say("STALL %lld", (long long)bw_max_gap_ns);
			bw_max_gap_ns = 0;
			last = bw_now_ns();
		}
	}
}

BW_FN size_t bw_arg(int argc, char **argv, int i, size_t dflt)
{
	return argc > i ? strtoul(argv[i], NULL, 0) : dflt;
}

BW_FN int bw_report(size_t bad, uint64_t sum, uint64_t expected, size_t bytes)
{
	if (bad) {
		bw_say("FAIL %zu wrong pages", bad);
		return 1;
	}
	if (sum != expected) {
		bw_say("FAIL checksum %016llx, expected %016llx", (unsigned long long)sum,
		       (unsigned long long)expected);
		return 1;
	}
	bw_say("VERIFIED %016llx %zu", (unsigned long long)sum, bytes);
	return 0;
}

#endif
