/*
 * memory: the process's memory must come back exactly as it was.
 *
 *  - heap: many small malloc()s forming a linked list whose nodes point into
 *    themselves, and one large malloc() (its own mmap inside glibc);
 *  - anonymous mmaps: private (some pages never touched: they must stay
 *    zero) and shared;
 *  - a private mapping of a file we create: some pages written (COW
 *    copies), others untouched; both must read right, the file unchanged;
 *  - a shared mapping of a file: writes made before the dump are in the
 *    file, and writes made after restore still reach it;
 *  - a PROT_NONE guard page (touching it faults) between accessible pages,
 *    and a region made read-only with mprotect (maps says r--p, writing
 *    faults, content intact);
 *  - vDSO at the same address (AT_SYSINFO_EHDR and /proc/self/maps agree
 *    with before), clock_gettime() still works;
 *  - /proc/self/maps as a whole equal before and after, apart from the
 *    stack's lower end (no mapping left behind by the restorer, none lost).
 */
#include "wl.h"

#include <setjmp.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <time.h>

#define NODES 2000
#define BIG_MALLOC (8u << 20)
#define FILE_PAGES 16

struct node {
	struct node *next;
	struct node *self;
	char *data;		/* points into this node's own tail */
	size_t len;
	char tail[];
};

static long page;
static sigjmp_buf fault_jmp;
static volatile sig_atomic_t faults;
static char maps_before[1 << 16], maps_after[1 << 16];

static void on_segv(int sig)
{
	(void)sig;
	faults++;
	siglongjmp(fault_jmp, 1);
}

/* 1 if reading (or writing) *p faults. */
static int faults_on(volatile char *p, int write)
{
	int before = faults;

	if (sigsetjmp(fault_jmp, 1) == 0) {
		if (write)
			*p = 1;
		else
			(void)*p;
	}
	return faults != before;
}

/* Permissions ("rw-p" ...) of the mapping holding addr, from a maps text. */
static int perms_of(const char *maps, const void *addr, char perms[5])
{
	const char *line = maps;
	unsigned long a = (unsigned long)addr, start, end;

	while (*line) {
		if (sscanf(line, "%lx-%lx %4s", &start, &end, perms) == 3 &&
		    a >= start && a < end)
			return 0;
		line = strchr(line, '\n');
		if (!line)
			break;
		line++;
	}
	strcpy(perms, "????");
	return -1;
}

/* Start address of the mapping named name ("[vdso]"), or 0. */
static unsigned long named_start(const char *maps, const char *name)
{
	const char *line = maps, *nl;
	unsigned long start, end;
	size_t n = strlen(name);

	while (*line) {
		nl = strchr(line, '\n');
		if (!nl)
			nl = line + strlen(line);
		if ((size_t)(nl - line) > n && !strncmp(nl - n, name, n) &&
		    sscanf(line, "%lx-%lx", &start, &end) == 2)
			return start;
		if (!*nl)
			break;
		line = nl + 1;
	}
	return 0;
}

/* Two maps lines of shared anonymous memory that differ only in the shmem
 * object's device and inode: a restore necessarily makes a new object. */
static int same_shmem_line(const char *la, const char *na, const char *lb,
			   const char *nb)
{
	static const char tag[] = "/dev/zero (deleted)";
	char a[512], b[512], ra[64], rb[64], pa[8], pb[8], oa[32], ob[32];
	char patha[256], pathb[256];
	size_t n = strlen(tag);

	if ((size_t)(na - la) >= sizeof(a) || (size_t)(nb - lb) >= sizeof(b) ||
	    (size_t)(na - la) < n || strncmp(na - n, tag, n))
		return 0;
	memcpy(a, la, na - la);
	a[na - la] = 0;
	memcpy(b, lb, nb - lb);
	b[nb - lb] = 0;
	if (sscanf(a, "%63s %7s %31s %*s %*s %255[^\n]", ra, pa, oa, patha) != 4 ||
	    sscanf(b, "%63s %7s %31s %*s %*s %255[^\n]", rb, pb, ob, pathb) != 4)
		return 0;
	return !strcmp(ra, rb) && !strcmp(pa, pb) && !strcmp(oa, ob) &&
	       !strcmp(patha, pathb);
}

/* Compare two maps texts line by line; the stack may only differ in its
 * lower bound (it grows on demand). */
static void compare_maps(const char *a, const char *b)
{
	const char *la = a, *lb = b, *na, *nb;
	int lineno = 1;

	while (*la || *lb) {
		na = strchr(la, '\n');
		nb = strchr(lb, '\n');
		if (!na)
			na = la + strlen(la);
		if (!nb)
			nb = lb + strlen(lb);
		if (na - la != nb - lb || memcmp(la, lb, na - la)) {
			const char *sa = strchr(la, '-'), *sb = strchr(lb, '-');
			int stack = strstr(la, "[stack]") && strstr(lb, "[stack]") &&
				    sa && sb && sa < na && sb < nb &&
				    !strncmp(sa, sb, na - sa);

			if (!stack && !same_shmem_line(la, na, lb, nb)) {
				wl_fail("/proc/self/maps line %d was '%.*s', now '%.*s'",
					lineno, (int)(na - la), la,
					(int)(nb - lb), lb);
				return;
			}
		}
		la = *na ? na + 1 : na;
		lb = *nb ? nb + 1 : nb;
		lineno++;
	}
}

static char *map_file(const char *name, int flags, uint64_t seed, int *fdp)
{
	size_t len = FILE_PAGES * page;
	char *buf = malloc(len), *p;
	int fd = open(name, O_RDWR | O_CREAT | O_TRUNC, 0600);

	if (fd < 0 || !buf)
		wl_die(name);
	wl_fill(buf, len, seed);
	if (write(fd, buf, len) != (ssize_t)len)
		wl_die("write");
	free(buf);
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, flags, fd, 0);
	if (p == MAP_FAILED)
		wl_die("mmap file");
	*fdp = fd;
	return p;
}

int main(void)
{
	struct node *head = NULL, *n;
	char *big, *anon, *anon_sh, *priv, *shared, *guard, *ro, *expect;
	uint64_t sum_nodes = 0, sum_big, sum_anon, sum_anon_sh, sum_ro;
	uint64_t sum_priv_w, sum_priv_u;
	size_t anon_len, i, flen;
	int priv_fd, shared_fd, count;
	unsigned long vdso_aux, vdso_maps, vvar_maps;
	struct timespec ts0, ts1;
	struct sigaction sa;
	char perms[5];

	wl_setup(0);
	page = sysconf(_SC_PAGESIZE);
	flen = FILE_PAGES * page;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_segv;
	sa.sa_flags = SA_NODEFER;
	sigaction(SIGSEGV, &sa, NULL);

	/* heap: a list of odd-sized nodes, each pointing into itself */
	srand(42);
	for (i = 0; i < NODES; i++) {
		size_t len = 1 + rand() % 300;

		n = malloc(sizeof(*n) + len);
		if (!n)
			wl_die("malloc");
		n->next = head;
		n->self = n;
		n->data = n->tail;
		n->len = len;
		wl_fill(n->tail, len, i);
		head = n;
	}
	for (n = head; n; n = n->next)
		sum_nodes ^= wl_cksum(n->tail, n->len) + (uintptr_t)n;
	big = malloc(BIG_MALLOC);
	if (!big)
		wl_die("big malloc");
	wl_fill(big, BIG_MALLOC, 7);
	sum_big = wl_cksum(big, BIG_MALLOC);

	/* anonymous private: only the first half touched; shared: all */
	anon_len = 64 * page;
	anon = mmap(NULL, anon_len, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	anon_sh = mmap(NULL, anon_len, PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (anon == MAP_FAILED || anon_sh == MAP_FAILED)
		wl_die("mmap anon");
	wl_fill(anon, anon_len / 2, 11);
	wl_fill(anon_sh, anon_len, 12);
	sum_anon = wl_cksum(anon, anon_len / 2);
	sum_anon_sh = wl_cksum(anon_sh, anon_len);

	/* private file mapping: odd pages written (COW), even pages not */
	priv = map_file("private.dat", MAP_PRIVATE, 21, &priv_fd);
	for (i = 1; i < FILE_PAGES; i += 2)
		wl_fill(priv + i * page, page, 100 + i);
	sum_priv_w = sum_priv_u = 0;
	for (i = 0; i < FILE_PAGES; i++) {
		if (i % 2)
			sum_priv_w ^= wl_cksum(priv + i * page, page) + i;
		else
			sum_priv_u ^= wl_cksum(priv + i * page, page) + i;
	}

	/* shared file mapping: written through the mapping */
	shared = map_file("shared.dat", MAP_SHARED, 31, &shared_fd);
	memcpy(shared + 3 * page, "before-dump", 11);

	/* guard page between two accessible pages; a read-only region */
	guard = mmap(NULL, 3 * page, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ro = mmap(NULL, 4 * page, PROT_READ | PROT_WRITE,
		  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (guard == MAP_FAILED || ro == MAP_FAILED)
		wl_die("mmap");
	guard[0] = 'a';
	guard[2 * page] = 'c';
	wl_fill(ro, 4 * page, 41);
	sum_ro = wl_cksum(ro, 4 * page);
	if (mprotect(guard + page, page, PROT_NONE) ||
	    mprotect(ro, 4 * page, PROT_READ))
		wl_die("mprotect");
	wl_check(faults_on(guard + page, 0), "guard page readable before dump");
	wl_check(faults_on(ro, 1), "read-only region writable before dump");

	vdso_aux = getauxval(AT_SYSINFO_EHDR);
	clock_gettime(CLOCK_MONOTONIC, &ts0);

	/* maps last: nothing may map or unmap between here and READY */
	if (wl_read_file("/proc/self/maps", maps_before, sizeof(maps_before)) <= 0)
		wl_die("read maps");
	wl_ready();
	wl_wait();
	if (wl_read_file("/proc/self/maps", maps_after, sizeof(maps_after)) <= 0)
		wl_die("read maps");

	compare_maps(maps_before, maps_after);

	/* heap */
	count = 0;
	{
		uint64_t s = 0;

		for (n = head; n && count <= NODES; n = n->next, count++) {
			if (n->self != n || n->data != n->tail) {
				wl_fail("heap node %d: pointers into itself changed", count);
				break;
			}
			s ^= wl_cksum(n->tail, n->len) + (uintptr_t)n;
		}
		wl_check(count == NODES, "heap list has %d nodes, expected %d",
			 count, NODES);
		wl_check(s == sum_nodes, "heap node contents changed");
	}
	wl_check(wl_cksum(big, BIG_MALLOC) == sum_big, "large malloc changed");

	/* anonymous */
	wl_check(wl_cksum(anon, anon_len / 2) == sum_anon,
		 "private anonymous mapping changed");
	for (i = anon_len / 2; i < anon_len && !anon[i]; i++)
		;
	wl_check(i == anon_len, "untouched anonymous page not zero (byte %zu)", i);
	wl_check(wl_cksum(anon_sh, anon_len) == sum_anon_sh,
		 "shared anonymous mapping changed");

	/* private file mapping, and the file under it */
	{
		uint64_t w = 0, u = 0;

		for (i = 0; i < FILE_PAGES; i++) {
			if (i % 2)
				w ^= wl_cksum(priv + i * page, page) + i;
			else
				u ^= wl_cksum(priv + i * page, page) + i;
		}
		wl_check(w == sum_priv_w, "written (COW) pages of private file mapping changed");
		wl_check(u == sum_priv_u, "untouched pages of private file mapping changed");
	}
	expect = malloc(flen);
	{
		char *got = malloc(flen);

		wl_fill(expect, flen, 21);
		wl_check(pread(priv_fd, got, flen, 0) == (ssize_t)flen &&
			 !memcmp(got, expect, flen),
			 "file under private mapping was modified");
		/* shared: the pre-dump write is in the file, a new one reaches it */
		wl_check(pread(shared_fd, got, 11, 3 * page) == 11 &&
			 !memcmp(got, "before-dump", 11),
			 "pre-dump write through MAP_SHARED not in the file");
		memcpy(shared + 5 * page, "after-restore", 13);
		msync(shared, flen, MS_SYNC);
		wl_check(pread(shared_fd, got, 13, 5 * page) == 13 &&
			 !memcmp(got, "after-restore", 13),
			 "post-restore write through MAP_SHARED not in the file");
		/* and the other way round: file writes show in the mapping */
		wl_check(pwrite(shared_fd, "via-file", 8, 7 * page) == 8,
			 "pwrite shared.dat: %s", strerror(errno));
		wl_check(!memcmp(shared + 7 * page, "via-file", 8),
			 "file write not visible through MAP_SHARED mapping");
		free(got);
	}

	/* protections */
	wl_check(faults_on(guard + page, 0), "guard page readable after restore");
	wl_check(!faults_on(guard, 0) && guard[0] == 'a' &&
		 !faults_on(guard + 2 * page, 0) && guard[2 * page] == 'c',
		 "pages around the guard page lost");
	perms_of(maps_after, guard + page, perms);
	wl_check(!strcmp(perms, "---p"), "guard page is %s in maps", perms);
	perms_of(maps_after, ro, perms);
	wl_check(!strcmp(perms, "r--p"), "read-only region is %s in maps", perms);
	wl_check(faults_on(ro + page, 1), "read-only region writable after restore");
	wl_check(wl_cksum(ro, 4 * page) == sum_ro, "read-only region changed");

	/* vDSO */
	vdso_maps = named_start(maps_after, "[vdso]");
	vvar_maps = named_start(maps_after, "[vvar]");
	wl_check(getauxval(AT_SYSINFO_EHDR) == vdso_aux,
		 "AT_SYSINFO_EHDR changed");
	wl_check(vdso_maps == vdso_aux, "[vdso] at %#lx, AT_SYSINFO_EHDR %#lx",
		 vdso_maps, vdso_aux);
	wl_check(vvar_maps == named_start(maps_before, "[vvar]"),
		 "[vvar] moved from %#lx to %#lx",
		 named_start(maps_before, "[vvar]"), vvar_maps);
	wl_check(clock_gettime(CLOCK_MONOTONIC, &ts1) == 0,
		 "clock_gettime failed");
	wl_check(ts1.tv_sec > ts0.tv_sec ||
		 (ts1.tv_sec == ts0.tv_sec && ts1.tv_nsec >= ts0.tv_nsec),
		 "CLOCK_MONOTONIC went backwards");

	free(expect);
	return wl_finish();
}
