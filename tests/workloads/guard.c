/*
 * guard: guard regions (MADV_GUARD_INSTALL, Linux 6.13+) in a tree of two.
 *
 * The root fills an 8-page private anonymous mapping, installs guards on
 * page 1 and pages 5-6, and forks (the child inherits the guards). A
 * second mapping had a guard installed and removed again (VmFlags keeps
 * "gu", no page is a guard). Each process checks, before READY and after
 * restore, that touching a guard page faults (SIGSEGV, caught) while every
 * other page reads back its data, and that the maps and VmFlags lines of
 * both mappings are unchanged. The kernel must have guard regions: the
 * test that runs this skips on older kernels.
 */
#include "wl.h"
#include <setjmp.h>
#include <sys/mman.h>
#include <sys/wait.h>

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102
#define MADV_GUARD_REMOVE 103
#endif
#define PAGES 8

static long page;
static char *area, *removed;
static uint64_t sums[PAGES], removed_sum;
static char lines_before[2][512];
static char smaps[1 << 20];
static sigjmp_buf probe_env;

static void on_segv(int sig)
{
	(void)sig;
	siglongjmp(probe_env, 1);
}

static int is_guard(int i)
{
	return i == 1 || i == 5 || i == 6;
}

/* 1 if reading the byte at p faults */
static int faults(volatile char *p)
{
	if (sigsetjmp(probe_env, 1))
		return 1;
	(void)*p;
	return 0;
}

/* The maps line and VmFlags line of the mapping starting at p. */
static void mapping_lines(char *p, char *out, size_t size)
{
	char key[32], *s, *v, *e;

	out[0] = '\0';
	if (wl_read_file("/proc/self/smaps", smaps, sizeof(smaps)) < 0)
		wl_die("read smaps");
	snprintf(key, sizeof(key), "%lx-", (unsigned long)p);
	for (s = smaps; s; s = strchr(s, '\n') ? strchr(s, '\n') + 1 : NULL)
		if (!strncmp(s, key, strlen(key)))
			break;
	if (!s)
		return;
	v = strstr(s, "VmFlags:");
	if (!v || !(e = strchr(v, '\n')))
		return;
	snprintf(out, size, "%.*s | %.*s", (int)(strchr(s, '\n') - s), s, (int)(e - v), v);
}

static void check(const char *when)
{
	int who = (int)getpid();
	char now[512];

	for (int i = 0; i < PAGES; i++) {
		int f = faults(area + i * page);

		wl_check(f == is_guard(i), "%d %s: page %d %s", who, when, i,
			 f ? "faults but is no guard page" : "is a guard page but does not fault");
		if (!f && !is_guard(i))
			wl_check(wl_cksum(area + i * page, page) == sums[i], "%d %s: page %d data changed", who, when, i);
	}
	wl_check(!faults(removed) && wl_cksum(removed, 4 * page) == removed_sum,
		 "%d %s: the mapping whose guard was removed lost its data or faults", who, when);
	mapping_lines(area, now, sizeof(now));
	wl_check(!strcmp(now, lines_before[0]), "%d %s: guarded mapping was '%s', now '%s'", who, when,
		 lines_before[0], now);
	mapping_lines(removed, now, sizeof(now));
	wl_check(!strcmp(now, lines_before[1]), "%d %s: once-guarded mapping was '%s', now '%s'", who, when,
		 lines_before[1], now);
}

int main(void)
{
	struct sigaction sa;
	pid_t child;
	int ready[2], status;

	wl_setup(0);
	page = sysconf(_SC_PAGESIZE);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_segv;
	sa.sa_flags = SA_NODEFER;
	if (sigaction(SIGSEGV, &sa, NULL))
		wl_die("sigaction(SIGSEGV)");
	/* two mappings with a one-page hole between them: they must not merge */
	area = mmap(NULL, (PAGES + 5) * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (area == MAP_FAILED || munmap(area + PAGES * page, page))
		wl_die("mmap");
	removed = area + (PAGES + 1) * page;
	wl_fill(area, PAGES * page, 1);
	for (int i = 0; i < PAGES; i++)
		sums[i] = wl_cksum(area + i * page, page);
	if (madvise(area + page, page, MADV_GUARD_INSTALL) ||
	    madvise(area + 5 * page, 2 * page, MADV_GUARD_INSTALL))
		wl_die("MADV_GUARD_INSTALL (Linux 6.13+)");
	if (madvise(removed + page, page, MADV_GUARD_INSTALL) ||
	    madvise(removed + page, page, MADV_GUARD_REMOVE))
		wl_die("MADV_GUARD_INSTALL/REMOVE");
	wl_fill(removed, 4 * page, 2);
	removed_sum = wl_cksum(removed, 4 * page);
	mapping_lines(area, lines_before[0], sizeof(lines_before[0]));
	mapping_lines(removed, lines_before[1], sizeof(lines_before[1]));
	if (!lines_before[0][0] || !lines_before[1][0])
		wl_die("finding the mappings in smaps");
	if (pipe(ready))
		wl_die("pipe");
	child = fork();
	if (child < 0)
		wl_die("fork");
	if (!child) {
		wl_pid = getpid();
		mapping_lines(area, lines_before[0], sizeof(lines_before[0]));
		mapping_lines(removed, lines_before[1], sizeof(lines_before[1]));
		check("after fork");
		if (write(ready[1], "r", 1) != 1)
			_exit(30);
		wl_wait();
		check("after restore");
		_exit(wl_failures ? 1 : 0);
	}
	check("before dump");
	if (read(ready[0], &(char){0}, 1) != 1)
		wl_die("the child setting up");
	wl_ready();
	wl_wait();
	check("after restore");
	kill(child, SIGTERM);
	wl_check(waitpid(child, &status, 0) == child && WIFEXITED(status) && !WEXITSTATUS(status),
		 "the child found a difference (status %#x)", status);
	return wl_finish();
}
