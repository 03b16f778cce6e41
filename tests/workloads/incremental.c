/*
 * incremental - memory that changes between a pre-dump and later dumps.
 *
 * usage: incremental [MIB]   (size of the big buffer, default 16)
 *
 * After READY, each SIGUSR1 runs the next phase and prints "PHASE <n>" when
 * it is done; the harness pre-dumps or dumps in between. Every phase writes
 * one page in seven of the big buffer (a different seventh each time) and
 * changes the layout:
 *   phase 1: forks a child (which writes its own pages, then waits), moves
 *            a filled mapping elsewhere with mremap, grows another in place;
 *   phase 2: unmaps a mapping and maps a new one at the same address (half
 *            of it written), drops a page with MADV_DONTNEED and reads it
 *            back (the shared zero page: no write, yet not the old data);
 *   phase 3+: only the big buffer.
 * On SIGTERM every byte is checked against what the phases done must have
 * left (the phase count is part of the checked state), and the child is
 * told (SIGUSR2) to check its own memory and exit with the verdict.
 */
#include "wl.h"

#include <sys/mman.h>
#include <sys/wait.h>

#define PAGE 4096UL
#define SMALL (8 * PAGE)

static volatile sig_atomic_t wl_go;
static unsigned char *big, *moved_src, *grown, *remapped;
static unsigned char *moved_dst;	/* reserved at start, the mremap target */
static size_t big_pages;
static int phase;
static pid_t child;

static void on_usr1(int sig) { (void)sig; wl_go = 1; }

/* The value page i of the big buffer must hold after `done` phases. */
static uint64_t big_seed(size_t i, int done)
{
	int k;

	for (k = done; k >= 1; k--) {
		if (i % 7 == (size_t)(k % 7))
			return 1000 + k;
		if (k == 2 && i == 3)
			return 0;	/* dropped in phase 2 and read back: zeros */
	}
	return 1;
}

static void fill_page(unsigned char *p, uint64_t seed, size_t index)
{
	if (seed == 0)
		memset(p, 0, PAGE);
	else
		wl_fill(p, PAGE, seed * 1000003 + index);
}

static int page_is(const unsigned char *p, uint64_t seed, size_t index)
{
	static unsigned char want[PAGE];

	fill_page(want, seed, index);
	return memcmp(p, want, PAGE) == 0;
}

static void child_main(void)
{
	sigset_t set;
	int sig, ok = 1;
	size_t i;

	/* its own copy of some pages, the rest still shared with the parent */
	for (i = 0; i < big_pages; i += 5)
		fill_page(big + i * PAGE, 77, i);
	sigemptyset(&set);
	sigaddset(&set, SIGUSR2);
	sigprocmask(SIG_BLOCK, &set, NULL);
	wl_say("CHILD %d", (int)getpid());
	sigwait(&set, &sig);
	for (i = 0; i < big_pages; i++) {
		uint64_t seed = i % 5 == 0 ? 77 : big_seed(i, 1);
		if (!page_is(big + i * PAGE, seed, i)) {
			wl_say("FAIL: child: page %zu of the big buffer differs", i);
			ok = 0;
			break;
		}
	}
	_exit(ok ? 0 : 1);
}

static void run_phase(int k)
{
	size_t i;

	for (i = 0; i < big_pages; i++)
		if (i % 7 == (size_t)(k % 7))
			fill_page(big + i * PAGE, 1000 + k, i);
	if (k == 1) {
		child = fork();
		if (child < 0)
			wl_die("fork");
		if (child == 0)
			child_main();
		if (mremap(moved_src, SMALL, SMALL, MREMAP_MAYMOVE | MREMAP_FIXED, moved_dst) != moved_dst)
			wl_die("mremap (move)");
		if (mremap(grown, SMALL, 2 * SMALL, 0) != grown)
			wl_die("mremap (grow in place)");
		for (i = SMALL / PAGE; i < 2 * SMALL / PAGE; i++)
			fill_page(grown + i * PAGE, 33, i);
	}
	if (k == 2) {
		if (munmap(remapped, SMALL))
			wl_die("munmap");
		if (mmap(remapped, SMALL, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0)
		    != remapped)
			wl_die("mmap again");
		for (i = 0; i < SMALL / PAGE; i += 2)
			fill_page(remapped + i * PAGE, 55, i);
		if (madvise(big + 3 * PAGE, PAGE, MADV_DONTNEED))
			wl_die("madvise");
		wl_check(big[3 * PAGE + 100] == 0, "page 3 not zero after MADV_DONTNEED");
	}
	phase = k;
}

static void verify(void)
{
	size_t i;
	int bad = 0, status;

	for (i = 0; i < big_pages && bad < 5; i++)
		if (!page_is(big + i * PAGE, big_seed(i, phase), i)) {
			wl_fail("page %zu of the big buffer differs after %d phases", i, phase);
			bad++;
		}
	for (i = 0; i < SMALL / PAGE; i++) {
		unsigned char *src = phase >= 1 ? moved_dst : moved_src;
		wl_check(page_is(src + i * PAGE, 11, i), "moved mapping page %zu differs", i);
		wl_check(page_is(grown + i * PAGE, 22, i), "grown mapping page %zu differs", i);
		if (phase >= 1)
			wl_check(page_is(grown + SMALL + i * PAGE, 33, i + SMALL / PAGE),
				 "grown mapping page %zu differs", i + SMALL / PAGE);
		wl_check(page_is(remapped + i * PAGE, phase >= 2 ? (i % 2 ? 0 : 55) : 44, i),
			 "mapping unmapped and mapped again: page %zu differs", i);
	}
	if (phase >= 1) {
		kill(child, SIGUSR2);
		if (waitpid(child, &status, 0) != child)
			wl_fail("waitpid(child): %s", strerror(errno));
		else
			wl_check(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child verdict: status %#x", status);
	}
}

int main(int argc, char **argv)
{
	size_t mib = argc > 1 ? strtoul(argv[1], NULL, 0) : 16;
	struct sigaction sa;
	sigset_t wait_mask, set;
	size_t i;

	wl_setup(0);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_usr1;
	sigaction(SIGUSR1, &sa, NULL);
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigprocmask(SIG_BLOCK, &set, NULL);

	big_pages = mib * 1024 * 1024 / PAGE;
	big = mmap(NULL, big_pages * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	/* three small mappings apart from each other (guard gaps: no merging) */
	moved_src = mmap(NULL, 8 * SMALL, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (big == MAP_FAILED || moved_src == MAP_FAILED)
		wl_die("mmap");
	/* Tracking is per mapped page: a transparent huge page written anywhere is written
	 * whole. The first half never gets huge pages, so that what stays in the older images
	 * does not depend on the machine's THP policy; the second half gets what it gives. */
	if (madvise(big, big_pages * PAGE / 2, MADV_NOHUGEPAGE))
		wl_die("madvise(MADV_NOHUGEPAGE)");
	grown = moved_src + 2 * SMALL;
	remapped = moved_src + 5 * SMALL;
	moved_dst = moved_src + 7 * SMALL;
	munmap(moved_dst, SMALL);
	if (mprotect(moved_src, SMALL, PROT_READ | PROT_WRITE) || munmap(grown + SMALL, SMALL) ||
	    mprotect(grown, SMALL, PROT_READ | PROT_WRITE) || mprotect(remapped, SMALL, PROT_READ | PROT_WRITE))
		wl_die("mprotect");
	for (i = 0; i < big_pages; i++)
		fill_page(big + i * PAGE, 1, i);
	for (i = 0; i < SMALL / PAGE; i++) {
		fill_page(moved_src + i * PAGE, 11, i);
		fill_page(grown + i * PAGE, 22, i);
		fill_page(remapped + i * PAGE, 44, i);
	}

	wl_ready();
	sigprocmask(SIG_BLOCK, NULL, &wait_mask);
	sigdelset(&wait_mask, SIGTERM);
	sigdelset(&wait_mask, SIGUSR1);
	while (!wl_term) {
		sigsuspend(&wait_mask);
		if (wl_go && !wl_term) {
			wl_go = 0;
			run_phase(phase + 1);
			wl_say("PHASE %d", phase);
		}
	}
	verify();
	return wl_finish();
}
