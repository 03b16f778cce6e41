/*
 * files: open files come back with the same fd numbers, paths, offsets,
 * access modes and flags, and behave the same.
 *
 *  - rw.dat   O_RDWR, offset 1234        (and its dup() and a dup2() to fd
 *                                         100 sharing that one offset)
 *  - app.log  O_WRONLY|O_APPEND          (new writes still go to the end)
 *  - wo.dat   O_WRONLY, offset 77, FD_CLOEXEC
 *  - ro.dat   O_RDONLY, offset 500, mode 0604
 *  - gone.dat O_RDWR, unlinked while open: its data is still readable
 *                                         through the fd and it stays deleted
 *                                         (a restore can only make a copy of
 *                                         it, so its inode number may change)
 *  - /dev/null (write) and /dev/zero (read), FD_CLOEXEC on /dev/zero
 *  - a memfd with contents, an offset and seals
 *
 * For every fd: F_GETFL, F_GETFD, offset, inode, mode, size and the
 * /proc/self/fd link are equal before and after; the set of open fds is
 * equal too (nothing leaked from the restorer, nothing lost).
 */
#include "wl.h"

#include <dirent.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#define DATA_LEN 10000
#define GONE_LEN 5000

struct fdstate {
	int flags, fdflags;
	off_t pos;
	struct stat st;
	char link[512];
};

enum { RW, RW_DUP, RW_DUP2, APP, WO, RO, GONE, DNULL, DZERO, NFDS };
static const char *const fd_names[NFDS] = {
	"rw.dat", "rw.dat dup", "rw.dat dup2", "app.log", "wo.dat", "ro.dat",
	"gone.dat", "/dev/null", "/dev/zero",
};
static int fds[NFDS];
static struct fdstate before[NFDS], after[NFDS];
static char fdset_before[256], fdset_after[256];

static void read_state(int fd, struct fdstate *s)
{
	char path[64];
	ssize_t n;

	memset(s, 0, sizeof(*s));
	s->flags = fcntl(fd, F_GETFL);
	s->fdflags = fcntl(fd, F_GETFD);
	s->pos = lseek(fd, 0, SEEK_CUR);
	fstat(fd, &s->st);
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	n = readlink(path, s->link, sizeof(s->link) - 1);
	if (n >= 0)
		s->link[n] = '\0';
}

/* The open fd numbers, as a string such as "0 1 2 3 ". */
static void read_fdset(char *out, size_t size)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	char fdnums[256] = "";
	size_t len = 0;

	if (!d)
		wl_die("opendir /proc/self/fd");
	/* ascending order: readdir of /proc/self/fd is sorted */
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.' || atoi(e->d_name) == dirfd(d))
			continue;
		len += snprintf(fdnums + len, sizeof(fdnums) - len, "%s ",
				e->d_name);
		if (len >= sizeof(fdnums))
			break;
	}
	closedir(d);
	snprintf(out, size, "%s", fdnums);
}

static int xopen(const char *path, int flags, mode_t mode)
{
	int fd = open(path, flags, mode);

	if (fd < 0)
		wl_die(path);
	return fd;
}

static void write_all(int fd, const void *buf, size_t len)
{
	if (write(fd, buf, len) != (ssize_t)len)
		wl_die("write");
}

int main(void)
{
	static char data[DATA_LEN], gone[GONE_LEN], buf[DATA_LEN];
	struct stat st;
	off_t pos;
	int i, memfd;
	char path[64], memfd_link[256] = "", link_now[256];
	ssize_t memfd_link_len;

	wl_setup(0);
	wl_fill(data, sizeof(data), 1);
	wl_fill(gone, sizeof(gone), 2);

	fds[RW] = xopen("rw.dat", O_RDWR | O_CREAT | O_TRUNC, 0640);
	write_all(fds[RW], data, DATA_LEN);
	lseek(fds[RW], 1234, SEEK_SET);
	fds[RW_DUP] = dup(fds[RW]);
	fds[RW_DUP2] = dup2(fds[RW], 100);

	fds[APP] = xopen("app.log", O_WRONLY | O_APPEND | O_CREAT, 0600);
	write_all(fds[APP], "first\n", 6);

	fds[WO] = xopen("wo.dat", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	write_all(fds[WO], data, 300);
	lseek(fds[WO], 77, SEEK_SET);

	i = xopen("ro.dat", O_WRONLY | O_CREAT | O_TRUNC, 0604);
	fchmod(i, 0604);	/* whatever the umask */
	write_all(i, data, DATA_LEN);
	close(i);
	fds[RO] = xopen("ro.dat", O_RDONLY, 0);
	lseek(fds[RO], 500, SEEK_SET);

	fds[GONE] = xopen("gone.dat", O_RDWR | O_CREAT | O_TRUNC, 0600);
	write_all(fds[GONE], gone, GONE_LEN);
	lseek(fds[GONE], 321, SEEK_SET);
	if (unlink("gone.dat"))
		wl_die("unlink");

	fds[DNULL] = xopen("/dev/null", O_WRONLY, 0);
	fds[DZERO] = xopen("/dev/zero", O_RDONLY | O_CLOEXEC, 0);

	/* a memfd with contents, an offset and seals */
	memfd = memfd_create("wl-memfd", MFD_ALLOW_SEALING);
	if (memfd < 0)
		wl_die("memfd_create");
	write_all(memfd, gone, GONE_LEN);
	lseek(memfd, 99, SEEK_SET);
	if (fcntl(memfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW))
		wl_die("F_ADD_SEALS");
	snprintf(path, sizeof(path), "/proc/self/fd/%d", memfd);
	memfd_link_len = readlink(path, memfd_link, sizeof(memfd_link) - 1);

	for (i = 0; i < NFDS; i++)
		read_state(fds[i], &before[i]);
	read_fdset(fdset_before, sizeof(fdset_before));

	wl_ready();
	wl_wait();

	read_fdset(fdset_after, sizeof(fdset_after));
	for (i = 0; i < NFDS; i++)
		read_state(fds[i], &after[i]);

	wl_check(!strcmp(fdset_before, fdset_after), "open fds are '%s', were '%s'",
		 fdset_after, fdset_before);
	for (i = 0; i < NFDS; i++) {
		struct fdstate *a = &before[i], *b = &after[i];
		const char *n = fd_names[i];
		int fd = fds[i];

		wl_check(b->flags == a->flags, "fd %d (%s): flags %#o, were %#o",
			 fd, n, b->flags, a->flags);
		wl_check(b->fdflags == a->fdflags,
			 "fd %d (%s): fd flags %#x, were %#x (close-on-exec)",
			 fd, n, b->fdflags, a->fdflags);
		wl_check(b->pos == a->pos, "fd %d (%s): offset %lld, was %lld",
			 fd, n, (long long)b->pos, (long long)a->pos);
		/* a deleted file can only come back as a copy: a new inode */
		wl_check(i == GONE || (b->st.st_ino == a->st.st_ino &&
				       b->st.st_dev == a->st.st_dev),
			 "fd %d (%s): another file (inode)", fd, n);
		wl_check(b->st.st_mode == a->st.st_mode,
			 "fd %d (%s): mode %o, was %o", fd, n,
			 b->st.st_mode, a->st.st_mode);
		wl_check(b->st.st_size == a->st.st_size,
			 "fd %d (%s): size %lld, was %lld", fd, n,
			 (long long)b->st.st_size, (long long)a->st.st_size);
		wl_check(!strcmp(b->link, a->link), "fd %d (%s): link '%s', was '%s'",
			 fd, n, b->link, a->link);
	}

	/* dup'ed fds share one offset: reading through one moves the others */
	wl_check(read(fds[RW_DUP], buf, 100) == 100 &&
		 !memcmp(buf, data + 1234, 100),
		 "rw.dat: wrong data at offset 1234");
	pos = lseek(fds[RW_DUP2], 0, SEEK_CUR);
	wl_check(pos == 1334 && lseek(fds[RW], 0, SEEK_CUR) == 1334,
		 "dup'ed fds no longer share an offset (%lld)", (long long)pos);
	write_all(fds[RW], "XY", 2);
	wl_check(pread(fds[RW], buf, 2, 1334) == 2 && !memcmp(buf, "XY", 2),
		 "rw.dat: write after restore not readable");

	/* O_APPEND still appends */
	lseek(fds[APP], 0, SEEK_SET);
	write_all(fds[APP], "second\n", 7);
	wl_check(stat("app.log", &st) == 0 && st.st_size == 13,
		 "app.log is %lld bytes, expected 13 (O_APPEND lost?)",
		 (long long)st.st_size);

	/* write-only stays write-only, read-only stays read-only */
	wl_check(read(fds[WO], buf, 1) < 0 && errno == EBADF,
		 "wo.dat readable through its O_WRONLY fd");
	wl_check(write(fds[RO], "x", 1) < 0 && errno == EBADF,
		 "ro.dat writable through its O_RDONLY fd");
	wl_check(read(fds[RO], buf, 10) == 10 && !memcmp(buf, data + 500, 10),
		 "ro.dat: wrong data at offset 500");

	/* the deleted file: data there, still deleted */
	wl_check(pread(fds[GONE], buf, GONE_LEN, 0) == GONE_LEN &&
		 !memcmp(buf, gone, GONE_LEN),
		 "deleted file's content not readable through its fd");
	wl_check(fstat(fds[GONE], &st) == 0 && st.st_nlink == 0,
		 "deleted file has %d links", (int)st.st_nlink);
	wl_check(access("gone.dat", F_OK) < 0, "gone.dat exists again");
	wl_check(strstr(after[GONE].link, "(deleted)") != NULL,
		 "deleted file's link is '%s'", after[GONE].link);

	/* devices */
	wl_check(fstat(fds[DNULL], &st) == 0 && S_ISCHR(st.st_mode) &&
		 st.st_rdev == makedev(1, 3), "fd %d is not /dev/null", fds[DNULL]);
	wl_check(write(fds[DNULL], "x", 1) == 1, "cannot write to /dev/null");
	memset(buf, 1, 64);
	wl_check(read(fds[DZERO], buf, 64) == 64 && !buf[0] && !buf[63],
		 "/dev/zero does not read zeros");

	/* memfd */
	memset(buf, 0, GONE_LEN);
	wl_check(pread(memfd, buf, GONE_LEN, 0) == GONE_LEN && !memcmp(buf, gone, GONE_LEN),
		 "memfd contents changed");
	wl_check(lseek(memfd, 0, SEEK_CUR) == 99, "memfd offset %ld", (long)lseek(memfd, 0, SEEK_CUR));
	wl_check(fcntl(memfd, F_GET_SEALS) == (F_SEAL_SHRINK | F_SEAL_GROW), "memfd seals %#x",
		 fcntl(memfd, F_GET_SEALS));
	memset(link_now, 0, sizeof(link_now));
	wl_check(readlink(path, link_now, sizeof(link_now) - 1) == memfd_link_len &&
		 !strcmp(link_now, memfd_link), "memfd is now '%s', was '%s'", link_now, memfd_link);
	return wl_finish();
}
