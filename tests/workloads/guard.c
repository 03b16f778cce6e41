/*
 * guard: guard regions (MADV_GUARD_INSTALL, Linux 6.13+) in a tree of two.
 *
 * The root maps, fills and guards:
 *   private   8 private anonymous pages, guards on page 1 and pages 5-6;
 *   removed   4 private anonymous pages that had a guard installed and
 *             removed again (VmFlags keeps "gu", no page is a guard);
 *   shared    4 shared anonymous pages, a guard on page 2;
 *   file      4 pages of a private file mapping, a guard on page 1 and
 *             page 3 written (a private copy), where the kernel allows
 *             guards in file mappings (else said so and left out);
 * and forks. Each process records, before READY, which pages fault
 * (SIGSEGV, caught), the data of the others, and the maps and VmFlags
 * lines of each mapping; after restore it checks them all again. The
 * kernel must have guard regions: the test that runs this skips on older
 * kernels.
 */
#include "wl.h"
#include <setjmp.h>
#include <sys/mman.h>
#include <sys/wait.h>

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102
#define MADV_GUARD_REMOVE 103
#endif
#define MAX_PAGES 8

struct region {
	const char *name;
	char *p;
	int pages;
	unsigned guards;		/* pages the root guarded */
	unsigned faulting;		/* pages seen faulting before READY */
	uint64_t sums[MAX_PAGES];
	char line[512];
};

static long page;
static struct region regions[4];
static int nregions;
static char smaps[1 << 20];
static sigjmp_buf probe_env;

static void on_segv(int sig)
{
	(void)sig;
	siglongjmp(probe_env, 1);
}

/* 1 if reading the byte at p faults */
static int faults(volatile char *p)
{
	if (sigsetjmp(probe_env, 1))
		return 1;
	(void)*p;
	return 0;
}

/* The maps line of the mapping starting at p, without its device and inode
 * (shared anonymous memory gets a new inode number: not this test's
 * business), and its VmFlags line. */
static void mapping_lines(char *p, char *out, size_t size)
{
	char key[32], range[64], perms[8], offset[32], *s, *v, *e, *path;

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
	*strchr(s, '\n') = '\0';
	if (sscanf(s, "%63s %7s %31s", range, perms, offset) != 3)
		return;
	path = s;
	for (int field = 0; field < 5 && path; field++) {
		path = strchr(path, ' ');
		path = path ? path + strspn(path, " ") : NULL;
	}
	snprintf(out, size, "%s %s %s %s | %.*s", range, perms, offset, path ? path : "", (int)(e - v), v);
}

static unsigned fault_mask(struct region *r)
{
	unsigned mask = 0;

	for (int i = 0; i < r->pages; i++)
		if (faults(r->p + i * page))
			mask |= 1U << i;
	return mask;
}

static void record(void)
{
	for (int k = 0; k < nregions; k++) {
		struct region *r = &regions[k];

		r->faulting = fault_mask(r);
		for (int i = 0; i < r->pages; i++)
			if (!(r->faulting & (1U << i)))
				r->sums[i] = wl_cksum(r->p + i * page, page);
		mapping_lines(r->p, r->line, sizeof(r->line));
		if (!r->line[0])
			wl_die("finding a mapping in smaps");
	}
}

static void check(const char *when)
{
	int who = (int)getpid();
	char now[512];

	for (int k = 0; k < nregions; k++) {
		struct region *r = &regions[k];
		unsigned mask = fault_mask(r);

		wl_check(mask == r->faulting, "%d %s: %s: pages faulting %#x, were %#x", who, when, r->name,
			 mask, r->faulting);
		for (int i = 0; i < r->pages; i++)
			if (!(mask & (1U << i)))
				wl_check(wl_cksum(r->p + i * page, page) == r->sums[i],
					 "%d %s: %s: page %d data changed", who, when, r->name, i);
		mapping_lines(r->p, now, sizeof(now));
		wl_check(!strcmp(now, r->line), "%d %s: %s mapping was '%s', now '%s'", who, when, r->name,
			 r->line, now);
	}
}

static struct region *add(const char *name, char *p, int pages, uint64_t seed)
{
	struct region *r = &regions[nregions++];

	r->name = name;
	r->p = p;
	r->pages = pages;
	wl_fill(p, pages * page, seed);
	return r;
}

static void guard(struct region *r, int first, int n)
{
	if (madvise(r->p + first * page, n * page, MADV_GUARD_INSTALL))
		wl_die("MADV_GUARD_INSTALL (Linux 6.13+)");
	for (int i = first; i < first + n; i++)
		r->guards |= 1U << i;
}

static void map_regions(void)
{
	struct region *r;
	char *p;
	int fd;

	/* private and removed, with a one-page hole between them: they must not merge */
	p = mmap(NULL, 13 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED || munmap(p + 8 * page, page))
		wl_die("mmap");
	r = add("private", p, 8, 1);
	guard(r, 1, 1);
	guard(r, 5, 2);
	r = add("removed", p + 9 * page, 4, 2);
	if (madvise(r->p + page, page, MADV_GUARD_INSTALL) || madvise(r->p + page, page, MADV_GUARD_REMOVE))
		wl_die("MADV_GUARD_INSTALL/REMOVE");
	wl_fill(r->p, 4 * page, 2);	/* the install zapped page 1 */

	p = mmap(NULL, 4 * page, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		wl_die("mmap shared");
	r = add("shared", p, 4, 3);
	if (madvise(p + 2 * page, page, MADV_GUARD_INSTALL)) {
		if (errno != EINVAL)
			wl_die("MADV_GUARD_INSTALL shared");
		wl_say("guard regions in shared memory not available here (EINVAL): not checked");
		nregions--;
	} else {
		r->guards = 1U << 2;
	}

	fd = open("guarded-file", O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || ftruncate(fd, 4 * page))
		wl_die("guarded-file");
	p = mmap(NULL, 4 * page, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		wl_die("mmap guarded-file");
	wl_fill(p, 4 * page, 4);	/* the file's contents */
	munmap(p, 4 * page);
	p = mmap(NULL, 4 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	close(fd);
	if (p == MAP_FAILED)
		wl_die("mmap guarded-file private");
	if (madvise(p + page, page, MADV_GUARD_INSTALL)) {
		if (errno != EINVAL)
			wl_die("MADV_GUARD_INSTALL file");
		wl_say("guard regions in file mappings not available here (EINVAL): not checked");
		munmap(p, 4 * page);
		return;
	}
	p[3 * page] ^= 1;		/* a private copy of page 3 */
	r = &regions[nregions++];
	r->name = "file";
	r->p = p;
	r->pages = 4;
	r->guards = 1U << 1;
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
	map_regions();
	record();
	for (int k = 0; k < nregions; k++)
		if (regions[k].faulting != regions[k].guards)
			wl_die("the guard pages are not the pages that fault");
	if (pipe(ready))
		wl_die("pipe");
	child = fork();
	if (child < 0)
		wl_die("fork");
	if (!child) {
		wl_pid = getpid();
		record();		/* what the child inherited */
		if (write(ready[1], "r", 1) != 1)
			_exit(30);
		wl_wait();
		check("after restore");
		_exit(wl_failures ? 1 : 0);
	}
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
