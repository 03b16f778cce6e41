/*
 * memfdmap: memfd objects mapped into memory, shared by a parent and child.
 *   A "wl-map": fd kept, sealed against shrinking and growing, mapped
 *     MAP_SHARED (inherited by the child) and MAP_PRIVATE with one page
 *     written (a private copy-on-write page) and one only read;
 *   B "wl-nofd": mapped MAP_SHARED by the parent, its fd closed; the child
 *     maps it again (through /proc/PPID/map_files) at another address;
 *   C "wl-sealed": write-sealed, mapped MAP_PRIVATE read-only, fd kept.
 * After restore: every mapping and the fd of one object are still the same
 * object (a write through one shows in the others, in both processes),
 * names, sizes, seals and contents are as they were, the private page keeps
 * its own bytes while unwritten private pages still follow the object,
 * and each object's owner, mode and atime/mtime (fstat) are unchanged.
 * The child reports through its exit status; only the parent prints.
 */
#include "wl.h"
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>

#define PAGE 4096
#define A_SIZE (3 * PAGE + 100)
#define B_SIZE (2 * PAGE)

static int afd, cfd;
static char *a_shared, *a_private, *b_map, *c_private;
static struct stat a_before, b_before;

/* Give an object owner, mode and times of its own (restore must not leave its own). */
static void set_attrs(int fd, uid_t uid, mode_t mode, long sec)
{
	struct timespec times[2] = { { sec, 123456789 }, { sec + 1000, 987654321 } };

	if (fchown(fd, uid, uid + 1) || fchmod(fd, mode) || futimens(fd, times))
		wl_die("memfd attrs");
}

static void b_stat(struct stat *st)
{
	char path[128];

	snprintf(path, sizeof(path), "/proc/self/map_files/%lx-%lx",
		 (unsigned long)b_map, (unsigned long)b_map + B_SIZE);
	if (stat(path, st))
		wl_die("stat map_files");
}

static void check_attrs(const char *name, const struct stat *a, const struct stat *b)
{
	wl_check(a->st_mode == b->st_mode, "%s mode %o, was %o", name, b->st_mode, a->st_mode);
	wl_check(a->st_uid == b->st_uid && a->st_gid == b->st_gid, "%s owner %d:%d, was %d:%d", name,
		 (int)b->st_uid, (int)b->st_gid, (int)a->st_uid, (int)a->st_gid);
	wl_check(a->st_atim.tv_sec == b->st_atim.tv_sec && a->st_atim.tv_nsec == b->st_atim.tv_nsec,
		 "%s atime %ld.%09ld, was %ld.%09ld", name, (long)b->st_atim.tv_sec, b->st_atim.tv_nsec,
		 (long)a->st_atim.tv_sec, a->st_atim.tv_nsec);
	wl_check(a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec,
		 "%s mtime %ld.%09ld, was %ld.%09ld", name, (long)b->st_mtim.tv_sec, b->st_mtim.tv_nsec,
		 (long)a->st_mtim.tv_sec, a->st_mtim.tv_nsec);
}
static volatile char *handshake;	/* in A's shared mapping, last page */

static int check_name(int fd, const char *want)
{
	char path[64], link[256];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	n = readlink(path, link, sizeof(link) - 1);
	if (n < 0)
		return 0;
	link[n] = 0;
	return !strcmp(link, want);
}

static int child(void)
{
	char path[128];
	char *b2;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/map_files/%lx-%lx", (int)getppid(),
		 (unsigned long)b_map, (unsigned long)b_map + B_SIZE);
	fd = open(path, O_RDWR);
	if (fd < 0)
		return 40;
	b2 = mmap(NULL, B_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (b2 == MAP_FAILED)
		return 41;
	b2[PAGE] = 'c';		/* seen by the parent in b_map */
	handshake[0] = 1;
	wl_wait();
	/* the parent's writes after restore, through its fd and its mappings */
	if (a_shared[10] != 'P' || b2[20] != 'Q')
		return 42;
	if (b_map[PAGE] != 'c' || b2 == b_map)
		return 43;
	a_shared[11] = 'K';	/* after restore, for the parent */
	b2[21] = 'L';
	return 0;
}

int main(void)
{
	struct stat st;
	char buf[PAGE], expect[PAGE];
	pid_t kid;
	int bfd, status, seals;

	wl_setup(0);
	afd = memfd_create("wl-map", MFD_ALLOW_SEALING);
	bfd = memfd_create("wl-nofd", 0);
	cfd = memfd_create("wl-sealed", MFD_ALLOW_SEALING);
	if (afd < 0 || bfd < 0 || cfd < 0)
		wl_die("memfd_create");
	if (ftruncate(afd, A_SIZE) || ftruncate(bfd, B_SIZE))
		wl_die("ftruncate");
	wl_fill(buf, PAGE, 1);
	if (pwrite(afd, buf, PAGE, PAGE) != PAGE || pwrite(cfd, "sealed-contents", 15, 0) != 15)
		wl_die("pwrite");
	if (fcntl(afd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) ||
	    fcntl(cfd, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_SEAL))
		wl_die("F_ADD_SEALS");
	a_shared = mmap(NULL, A_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, afd, 0);
	a_private = mmap(NULL, 3 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE, afd, 0);
	b_map = mmap(NULL, B_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, bfd, 0);
	c_private = mmap(NULL, PAGE, PROT_READ, MAP_PRIVATE, cfd, 0);
	if (a_shared == MAP_FAILED || a_private == MAP_FAILED || b_map == MAP_FAILED ||
	    c_private == MAP_FAILED)
		wl_die("mmap");
	close(bfd);
	handshake = a_shared + 3 * PAGE;
	a_shared[0] = 'S';
	memcpy(a_private + 2 * PAGE, "private-cow-page", 16);	/* COW copy */
	wl_check(a_private[PAGE + 5] == buf[5], "private mapping does not show the object");
	kid = fork();
	if (kid < 0)
		wl_die("fork");
	if (!kid)
		_exit(child());
	while (!handshake[0])
		usleep(1000);
	/* after every write (a write through a mapping may touch mtime) */
	set_attrs(afd, 1234, 0640, 1000000000);
	{
		char path[128];
		int bfd2;

		snprintf(path, sizeof(path), "/proc/self/map_files/%lx-%lx",
			 (unsigned long)b_map, (unsigned long)b_map + B_SIZE);
		bfd2 = open(path, O_RDONLY);
		if (bfd2 < 0)
			wl_die("open map_files");
		set_attrs(bfd2, 4321, 0604, 1200000000);
		close(bfd2);
	}
	if (fstat(afd, &a_before))
		wl_die("fstat");
	b_stat(&b_before);
	wl_ready();
	wl_wait();

	{
		struct stat a_after, b_after;

		wl_check(!fstat(afd, &a_after), "fstat wl-map");
		b_stat(&b_after);
		check_attrs("wl-map", &a_before, &a_after);
		check_attrs("wl-nofd", &b_before, &b_after);
	}

	/* names, sizes, seals */
	wl_check(check_name(afd, "/memfd:wl-map (deleted)"), "fd %d is not memfd wl-map", afd);
	wl_check(check_name(cfd, "/memfd:wl-sealed (deleted)"), "fd %d is not memfd wl-sealed", cfd);
	wl_check(!fstat(afd, &st) && st.st_size == A_SIZE, "wl-map size %ld", (long)st.st_size);
	seals = fcntl(afd, F_GET_SEALS);
	wl_check(seals == (F_SEAL_SHRINK | F_SEAL_GROW), "wl-map seals %#x", seals);
	seals = fcntl(cfd, F_GET_SEALS);
	wl_check(seals == (F_SEAL_WRITE | F_SEAL_SEAL), "wl-sealed seals %#x", seals);
	wl_check(write(cfd, "x", 1) < 0 && errno == EPERM, "wl-sealed is writable again");
	wl_check(!memcmp(c_private, "sealed-contents", 15), "wl-sealed mapping lost its contents");

	/* contents */
	wl_check(a_shared[0] == 'S', "A's shared mapping lost byte 0");
	wl_check(!memcmp(a_shared + PAGE, buf, PAGE), "A's page 1 changed");
	wl_check(!memcmp(a_private + 2 * PAGE, "private-cow-page", 16), "private COW page lost");
	memset(expect, 0, sizeof(expect));
	wl_check(pread(afd, expect, 16, 2 * PAGE) == 16 && expect[0] == 0,
		 "the private page leaked into the object");
	wl_check(b_map[PAGE] == 'c', "B: the child's write is gone");

	/* still one object: the fd, the shared mappings, the child's mappings */
	wl_check(pwrite(afd, "P", 1, 10) == 1 && a_shared[10] == 'P', "A: fd write not seen in the mapping");
	a_shared[12] = 'M';
	wl_check(pread(afd, expect, 1, 12) == 1 && expect[0] == 'M', "A: mapping write not seen through the fd");
	wl_check(a_private[12] == 'M', "A: unwritten private page no longer follows the object");
	b_map[20] = 'Q';
	wl_check(kill(kid, SIGTERM) == 0 && waitpid(kid, &status, 0) == kid, "child %d", (int)kid);
	wl_check(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %#x", status);
	wl_check(a_shared[11] == 'K' && b_map[21] == 'L', "the child's writes after restore not seen");
	return wl_finish();
}
