/*
 * cowtree: private memory shared copy-on-write after fork, over three
 * generations, in anonymous memory and in a private file mapping.
 *
 * The root fills a 16 MiB private anonymous region, maps a 2 MiB file
 * MAP_PRIVATE and writes its first MiB (private copies of file pages),
 * reads the second (page cache), makes the mapping read-only, and forks
 *   A  which rewrites the region's first MiB and the file mapping's first
 *      256 KiB (making it writable around the write), then forks
 *   G  which rewrites nothing;
 *   B  which drops one MiB of the region (MADV_DONTNEED: zeros again, and
 *      not read before the check, so not even the zero page) and unmaps
 *      the region's last MiB.
 * Each process records its checksums before READY. The root records, for
 * every page and every pair (A,root) (B,root) (G,A) (G,root), whether both
 * map the same anonymous physical frame (/proc/PID/pagemap, root only).
 * After restore the root first checks that exactly the same pages are
 * shared as before (one physical copy again, not one per process), then
 * each process checks its contents, and that the copies are private again:
 * the root rewrites everything before telling A and B to check, A before
 * telling G. Only the root prints PASS/FAIL; the others report through
 * their exit status.
 */
#include "wl.h"
#include <sys/mman.h>
#include <sys/wait.h>

#define PAGE 4096UL
#define REGION (16UL << 20)
#define REWRITTEN (1UL << 20)
#define DROPPED_AT (2UL << 20)		/* B: MADV_DONTNEED of one MiB here */
#define B_KEEPS (15UL << 20)		/* B: the region's last MiB unmapped */
#define FMAP (2UL << 20)
#define FWRITTEN (1UL << 20)		/* the root's private copies */
#define FREWRITTEN (256UL << 10)	/* A's */
#define PM_PRESENT (1ULL << 63)
#define PM_FILE (1ULL << 61)
#define PFN_MASK ((1ULL << 55) - 1)

enum { P_AR, P_BR, P_GA, P_GR, NPAIRS };
static const char *pair_names[NPAIRS] = { "A,root", "B,root", "G,A", "G,root" };

static unsigned char *region, *fmap;
static uint64_t want, fwant;
static int ready[2];			/* each child writes its pid once set up */
static unsigned char shared_before[NPAIRS][(REGION + FMAP) / PAGE];
static unsigned char shared_after[NPAIRS][(REGION + FMAP) / PAGE];

static void say_ready(void)
{
	pid_t me = getpid();

	if (write(ready[1], &me, sizeof(me)) != sizeof(me))
		_exit(30);
	close(ready[0]);
	close(ready[1]);
}

static int wait_ok(pid_t pid)
{
	int status;

	return waitpid(pid, &status, 0) == pid && WIFEXITED(status) && !WEXITSTATUS(status);
}


/* Frame of each page of [addr, addr + len) in process pid; 0 for a page
 * not present or not anonymous. Returns -1 if a present page shows no frame. */
static int frames(pid_t pid, const void *addr, size_t len, uint64_t *out)
{
	char path[64];
	size_t n = len / PAGE;
	int fd, bad = 0;

	snprintf(path, sizeof(path), "/proc/%d/pagemap", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	if (pread(fd, out, n * 8, (uintptr_t)addr / PAGE * 8) != (ssize_t)(n * 8)) {
		close(fd);
		return -1;
	}
	close(fd);
	for (size_t i = 0; i < n; i++) {
		if ((out[i] & PM_PRESENT) && !(out[i] & PFN_MASK))
			bad = 1;
		out[i] = (out[i] & PM_PRESENT) && !(out[i] & PM_FILE) ? out[i] & PFN_MASK : 0;
	}
	return bad ? -1 : 0;
}

/* out[pair][page]: 1 where both processes of the pair map the same anonymous frame */
static void sharing(pid_t root, pid_t a, pid_t b, pid_t g, unsigned char out[NPAIRS][(REGION + FMAP) / PAGE])
{
	static uint64_t f[4][(REGION + FMAP) / PAGE];
	const pid_t pids[4] = { root, a, b, g };
	const int pairs[NPAIRS][2] = { { 1, 0 }, { 2, 0 }, { 3, 1 }, { 3, 0 } };

	for (int p = 0; p < 4; p++)
		if (frames(pids[p], region, REGION, f[p]) || frames(pids[p], fmap, FMAP, f[p] + REGION / PAGE))
			wl_die("reading frame numbers from /proc/PID/pagemap (needs CAP_SYS_ADMIN)");
	for (int k = 0; k < NPAIRS; k++)
		for (size_t i = 0; i < (REGION + FMAP) / PAGE; i++)
			out[k][i] = f[pairs[k][0]][i] && f[pairs[k][0]][i] == f[pairs[k][1]][i];
}

static size_t count(const unsigned char *v, size_t from, size_t to)
{
	size_t n = 0;

	for (size_t i = from; i < to; i++)
		n += v[i];
	return n;
}

static int leaf(void)
{
	wl_wait();
	if (wl_cksum(region, REGION) != want)
		return 10;
	return wl_cksum(fmap, FMAP) == fwant ? 0 : 11;
}

static int child_a(void)
{
	pid_t g;

	wl_fill(region, REWRITTEN, 2);
	if (mprotect(fmap, FMAP, PROT_READ | PROT_WRITE))
		return 23;
	wl_fill(fmap, FREWRITTEN, 12);
	if (mprotect(fmap, FMAP, PROT_READ))
		return 24;
	want = wl_cksum(region, REGION);
	fwant = wl_cksum(fmap, FMAP);
	g = fork();
	if (g < 0)
		return 20;
	if (!g) {
		say_ready();
		_exit(leaf());
	}
	say_ready();
	wl_wait();
	if (wl_cksum(region, REGION) != want || wl_cksum(fmap, FMAP) != fwant)
		return 21;
	wl_fill(region, REGION, 4);		/* private: G must not see this */
	if (mprotect(fmap, FMAP, PROT_READ | PROT_WRITE))
		return 25;
	wl_fill(fmap, FMAP, 14);
	if (kill(g, SIGTERM) || !wait_ok(g))
		return 22;
	return 0;
}

static int child_b(void)
{
	if (madvise(region + DROPPED_AT, REWRITTEN, MADV_DONTNEED))
		return 31;
	if (munmap(region + B_KEEPS, REGION - B_KEEPS))
		return 32;
	/* the dropped MiB is not read (that would map the zero page there) */
	want = wl_cksum(region, DROPPED_AT) ^ wl_cksum(region + DROPPED_AT + REWRITTEN,
						 B_KEEPS - DROPPED_AT - REWRITTEN);
	fwant = wl_cksum(fmap, FMAP);
	say_ready();
	wl_wait();
	if ((wl_cksum(region, DROPPED_AT) ^ wl_cksum(region + DROPPED_AT + REWRITTEN,
						     B_KEEPS - DROPPED_AT - REWRITTEN)) != want)
		return 10;
	if (wl_cksum(fmap, FMAP) != fwant)
		return 11;
	for (size_t i = 0; i < REWRITTEN; i += PAGE)
		if (region[DROPPED_AT + i])
			return 12;
	return 0;
}

int main(void)
{
	pid_t a, b, g = 0, root = getpid();
	int fd;

	wl_setup(0);
	region = mmap(NULL, REGION, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (region == MAP_FAILED)
		wl_die("mmap");
	fd = open("cowtree.dat", O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || ftruncate(fd, FMAP))
		wl_die("cowtree.dat");
	fmap = mmap(NULL, FMAP, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	if (fmap == MAP_FAILED)
		wl_die("mmap cowtree.dat");
	close(fd);
	if (pipe(ready))
		wl_die("pipe");
	wl_fill(region, REGION, 1);
	wl_fill(fmap, FWRITTEN, 11);
	if (mprotect(fmap, FMAP, PROT_READ))
		wl_die("mprotect");
	want = wl_cksum(region, REGION);
	fwant = wl_cksum(fmap, FMAP);		/* reads the page-cache half too */

	a = fork();
	if (a < 0)
		wl_die("fork");
	if (!a)
		_exit(child_a());
	b = fork();
	if (b < 0)
		wl_die("fork");
	if (!b)
		_exit(child_b());
	for (int i = 0; i < 3; i++) {
		pid_t who;

		if (read(ready[0], &who, sizeof(who)) != sizeof(who))
			wl_die("children setting up");
		if (who != a && who != b)
			g = who;
	}
	close(ready[0]);
	close(ready[1]);
	sharing(root, a, b, g, shared_before);
	{
		/* what the tree's history makes shared, in pages: region then file mapping */
		const size_t r = REGION / PAGE, rw = REWRITTEN / PAGE, fw = FWRITTEN / PAGE, frw = FREWRITTEN / PAGE;
		const size_t expect[NPAIRS][2] = {
			{ r - rw, fw - frw }, { B_KEEPS / PAGE - rw, fw }, { r, fw }, { r - rw, fw - frw },
		};
		for (int k = 0; k < NPAIRS; k++) {
			size_t in_region = count(shared_before[k], 0, r);
			size_t in_fmap = count(shared_before[k], r, r + FMAP / PAGE);

			if (in_region != expect[k][0] || in_fmap != expect[k][1])
				wl_die("unexpected sharing before the dump (workload or kernel changed)");
		}
	}
	wl_ready();
	wl_wait();

	sharing(root, a, b, g, shared_after);
	for (int k = 0; k < NPAIRS; k++) {
		size_t r = REGION / PAGE, diff_r = 0, diff_f = 0;

		for (size_t i = 0; i < (REGION + FMAP) / PAGE; i++)
			*(i < r ? &diff_r : &diff_f) += shared_before[k][i] != shared_after[k][i];
		wl_check(!diff_r && !diff_f,
			 "processes %s: %zu anonymous and %zu file-mapping pages differ in frame sharing "
			 "(before: %zu+%zu shared, after: %zu+%zu)", pair_names[k], diff_r, diff_f,
			 count(shared_before[k], 0, r), count(shared_before[k], r, r + FMAP / PAGE),
			 count(shared_after[k], 0, r), count(shared_after[k], r, r + FMAP / PAGE));
	}
	wl_check(wl_cksum(region, REGION) == want, "root: region changed");
	wl_check(wl_cksum(fmap, FMAP) == fwant, "root: file mapping changed");
	wl_fill(region, REGION, 3);		/* private: A, G and B must not see this */
	if (mprotect(fmap, FMAP, PROT_READ | PROT_WRITE))
		wl_die("mprotect");
	wl_fill(fmap, FMAP, 13);
	kill(a, SIGTERM);
	kill(b, SIGTERM);
	wl_check(wait_ok(a), "child A (or its child G) found its memory changed");
	wl_check(wait_ok(b), "child B found its memory changed");
	return wl_finish();
}
