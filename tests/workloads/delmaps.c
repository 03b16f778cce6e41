/*
 * delmaps: mappings of deleted files and of /dev/zero, shared by a parent and child.
 *   A  deleted, fd kept (O_RDWR): mapped MAP_SHARED whole (inherited by the
 *      child) and MAP_PRIVATE at offset 1 page with one page written (a
 *      private copy-on-write page) and one only read;
 *   B  deleted, no fd: MAP_SHARED at offset 1 page, its second page made
 *      read-only; the child maps it again through /proc/PPID/map_files;
 *   C  deleted, opened read-only, no fd: MAP_SHARED PROT_READ (it can never
 *      become writable: mprotect must still say EACCES);
 *   D  deleted, no fd, mode 0604: MAP_PRIVATE read-only, two mappings of it;
 *   Z  /dev/zero mapped MAP_SHARED, fd closed, inherited by the child.
 * After restore: /proc/self/maps shows every mapping as before (addresses,
 * protection, offset, path; the inode is new), contents and modes are as
 * they were, every mapping and fd of one file is still that one file (a
 * write through one shows in the others, in both processes), the private
 * page keeps its own bytes while unwritten private pages follow the file.
 * The child reports through its exit status; only the parent prints.
 */
#include "wl.h"
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>

#define PAGE 4096
#define A_SIZE (4 * PAGE + 100)
#define B_SIZE (3 * PAGE)
#define NMAPS 7

static int afd;
static char *a_shared, *a_private, *b_map, *c_map, *d_map, *d_map2, *z_map;
static volatile char *handshake;	/* in Z */

static struct {
	char **addr;
	size_t len;
	char maps_before[256], maps_after[256];
	uint64_t sum;
} maps[NMAPS] = {
	{ &a_shared, A_SIZE }, { &a_private, 2 * PAGE }, { &b_map, 2 * PAGE }, { &c_map, PAGE },
	{ &d_map, PAGE }, { &d_map2, PAGE }, { &z_map, 3 * PAGE },
};

/* The /proc/self/maps lines of [addr, addr+len) without device and inode. */
static void maps_lines(char *addr, size_t len, char *out, size_t size)
{
	unsigned long start, end, lo = (unsigned long)addr, hi = lo + len;
	char line[512], perms[8], dev[16], path[256];
	unsigned long long offset, ino;
	size_t used = 0;
	FILE *f = fopen("/proc/self/maps", "r");

	out[0] = 0;
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		path[0] = 0;
		if (sscanf(line, "%lx-%lx %7s %llx %15s %llu %255[^\n]", &start, &end, perms, &offset,
			   dev, &ino, path) < 6)
			continue;
		if (end <= lo || start >= hi)
			continue;
		used += snprintf(out + used, size - used, "%lx-%lx %s %llx %s;", start, end, perms, offset,
				 path);
		if (used >= size)
			break;
	}
	fclose(f);
}

static int map_stat(char *addr, size_t len, struct stat *st)
{
	char path[128];

	snprintf(path, sizeof(path), "/proc/self/map_files/%lx-%lx", (unsigned long)addr,
		 (unsigned long)addr + len);
	return stat(path, st);
}

static int make_deleted(const char *name, mode_t mode, size_t size, uint64_t seed, int flags)
{
	char buf[5 * PAGE];
	int fd = open(name, O_RDWR | O_CREAT | O_EXCL, 0600);

	if (fd < 0)
		wl_die("open");
	wl_fill(buf, size, seed);
	if (write(fd, buf, size) != (ssize_t)size || fchmod(fd, mode))
		wl_die("write");
	close(fd);
	fd = open(name, flags);
	if (fd < 0 || unlink(name))
		wl_die("reopen");
	return fd;
}

static int child(void)
{
	char path[128], *b2;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/map_files/%lx-%lx", (int)getppid(),
		 (unsigned long)b_map, (unsigned long)b_map + PAGE);
	fd = open(path, O_RDWR);
	if (fd < 0)
		return 40;
	b2 = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (b2 == MAP_FAILED)
		return 41;
	b2[7] = 'c';		/* file offset 7: not in the parent's mapping */
	b_map[8] = 'C';		/* offset PAGE + 8 */
	handshake[0] = 1;
	wl_wait();
	/* the parent's writes after restore, through its fd and its mappings */
	if (a_shared[10] != 'P' || b_map[20] != 'Q' || z_map[30] != 'Z')
		return 42;
	if (b2[7] != 'c' || b_map[8] != 'C')
		return 43;
	a_shared[11] = 'K';	/* after restore, for the parent */
	b_map[21] = 'L';
	z_map[31] = 'z';
	return 0;
}

int main(void)
{
	struct stat st;
	char buf[PAGE], link[256];
	pid_t kid;
	int bfd, cfd, dfd, zfd, status, i;
	ssize_t n;

	wl_setup(0);
	afd = make_deleted("a.dat", 0640, A_SIZE, 1, O_RDWR);
	bfd = make_deleted("b.dat", 0600, B_SIZE, 2, O_RDWR);
	cfd = make_deleted("c.dat", 0644, PAGE, 3, O_RDONLY);
	dfd = make_deleted("d.dat", 0604, PAGE, 4, O_RDONLY);
	zfd = open("/dev/zero", O_RDWR);
	if (zfd < 0)
		wl_die("/dev/zero");
	a_shared = mmap(NULL, A_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, afd, 0);
	a_private = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE, afd, PAGE);
	b_map = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, bfd, PAGE);
	c_map = mmap(NULL, PAGE, PROT_READ, MAP_SHARED, cfd, 0);
	d_map = mmap(NULL, PAGE, PROT_READ, MAP_PRIVATE, dfd, 0);
	d_map2 = mmap(NULL, PAGE, PROT_READ, MAP_PRIVATE, dfd, 0);
	z_map = mmap(NULL, 3 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, zfd, 0);
	if (a_shared == MAP_FAILED || a_private == MAP_FAILED || b_map == MAP_FAILED || c_map == MAP_FAILED ||
	    d_map == MAP_FAILED || d_map2 == MAP_FAILED || z_map == MAP_FAILED)
		wl_die("mmap");
	close(bfd);
	close(cfd);
	close(dfd);
	close(zfd);
	if (mprotect(b_map + PAGE, PAGE, PROT_READ))
		wl_die("mprotect");
	handshake = z_map + 2 * PAGE;
	a_shared[0] = 'S';
	memcpy(a_private + PAGE, "private-cow-page", 16);	/* COW copy of file page 2 */
	memcpy(z_map, "dev-zero-shared", 15);
	kid = fork();
	if (kid < 0)
		wl_die("fork");
	if (!kid)
		_exit(child());
	while (!handshake[0])
		usleep(1000);
	for (i = 0; i < NMAPS; i++) {
		maps_lines(*maps[i].addr, maps[i].len, maps[i].maps_before, sizeof(maps[i].maps_before));
		maps[i].sum = wl_cksum(*maps[i].addr, maps[i].len);
	}
	wl_ready();
	wl_wait();

	for (i = 0; i < NMAPS; i++) {
		maps_lines(*maps[i].addr, maps[i].len, maps[i].maps_after, sizeof(maps[i].maps_after));
		wl_check(!strcmp(maps[i].maps_before, maps[i].maps_after), "mapping %d: maps was '%s', now '%s'",
			 i, maps[i].maps_before, maps[i].maps_after);
		wl_check(wl_cksum(*maps[i].addr, maps[i].len) == maps[i].sum, "mapping %d: contents changed", i);
	}
	/* the files: deleted, sizes and modes */
	snprintf(buf, sizeof(buf), "/proc/self/fd/%d", afd);
	n = readlink(buf, link, sizeof(link) - 1);
	link[n > 0 ? n : 0] = 0;
	wl_check(n > 0 && strstr(link, "/a.dat (deleted)"), "A's fd link is '%s'", link);
	wl_check(!fstat(afd, &st) && st.st_size == A_SIZE && st.st_nlink == 0 && (st.st_mode & 07777) == 0640,
		 "A: size %ld links %ld mode %o", (long)st.st_size, (long)st.st_nlink, st.st_mode);
	wl_check(!map_stat(b_map, PAGE, &st) && st.st_size == B_SIZE && st.st_nlink == 0 &&
		 (st.st_mode & 07777) == 0600, "B: size %ld links %ld mode %o",
		 (long)st.st_size, (long)st.st_nlink, st.st_mode);
	wl_check(!map_stat(d_map, PAGE, &st) && st.st_size == PAGE && (st.st_mode & 07777) == 0604,
		 "D: size %ld mode %o", (long)st.st_size, st.st_mode);
	{
		struct stat s2;

		wl_check(!map_stat(d_map2, PAGE, &s2) && s2.st_ino == st.st_ino && s2.st_dev == st.st_dev,
			 "D's two mappings are two files now");
	}
	wl_check(!map_stat(a_shared, 5 * PAGE, &st) && !fstat(afd, (struct stat *)buf) &&
		 st.st_ino == ((struct stat *)buf)->st_ino, "A's mapping and fd are two files now");
	/* C can never be writable; the read-only half of B can become writable again */
	wl_check(mprotect(c_map, PAGE, PROT_READ | PROT_WRITE) < 0 && errno == EACCES,
		 "C (opened read-only) can be made writable");
	wl_check(mprotect(b_map + PAGE, PAGE, PROT_READ | PROT_WRITE) == 0, "B: mprotect writable: %s",
		 strerror(errno));

	/* contents follow the files */
	wl_check(a_shared[0] == 'S', "A's shared mapping lost byte 0");
	wl_check(!memcmp(a_private + PAGE, "private-cow-page", 16), "private COW page lost");
	wl_check(pread(afd, buf, 16, 2 * PAGE) == 16 && memcmp(buf, "private-cow-page", 16),
		 "the private page leaked into the file");
	wl_check(!memcmp(z_map, "dev-zero-shared", 15), "/dev/zero mapping lost its bytes");
	wl_check(pwrite(afd, "P", 1, 10) == 1 && a_shared[10] == 'P', "A: fd write not seen in the mapping");
	a_shared[PAGE + 12] = 'M';
	wl_check(pread(afd, buf, 1, PAGE + 12) == 1 && buf[0] == 'M', "A: mapping write not seen through the fd");
	wl_check(a_private[12] == 'M', "A: unwritten private page no longer follows the file");
	b_map[20] = 'Q';
	z_map[30] = 'Z';
	wl_check(kill(kid, SIGTERM) == 0 && waitpid(kid, &status, 0) == kid, "child %d", (int)kid);
	wl_check(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %#x", status);
	wl_check(a_shared[11] == 'K' && b_map[21] == 'L' && z_map[31] == 'z',
		 "the child's writes after restore not seen");
	return wl_finish();
}
