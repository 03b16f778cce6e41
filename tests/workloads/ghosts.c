/*
 * ghosts: files deleted while open ("ghosts") and file times, chosen by argv[1].
 * Every fd is compared before and after in full: fstat (mode, owner, size,
 * blocks, links, device, atime, mtime; ctime and inode too for files that
 * still have a name: a deleted file can only come back as a new inode, whose
 * ctime user space cannot set), F_GETFL, F_GETFD, offset, the map of data
 * and holes (SEEK_DATA/SEEK_HOLE), /proc/self/fdinfo and the fd's link.
 *   sparse   a 1 GiB sparse deleted file (mode 0641, owner 1234:5678, old
 *            times) with three small data extents; a file with two hard
 *            links, both removed, then shrunk and grown (a hole at its end);
 *            a file that still has its name, with old times
 *   shared   one deleted file open twice (two descriptions) in a parent and
 *            inherited by a forked child, which opens it a third time:
 *            still one file (writes seen across), offsets shared or not as
 *            before
 *   tmpfile  O_TMPFILE files (shown as DIR/#INO (deleted)), one of them
 *            with O_APPEND; still linkable after restore
 *   deldir   deleted files inside deleted directories (one and two levels)
 *            and an O_DIRECTORY fd on a removed directory; nothing left
 *            behind in the working directory; a directory read part way
 *            (its offset, and what getdents returns from there)
 *   mapped   a file mapped MAP_PRIVATE (and open) whose atime is not newer
 *            than its ctime: mapping it again at restore must not touch it
 *   linked   (refused) a file opened as "a", linked as "b", "a" removed:
 *            its fd shows a deleted name but the file has a link elsewhere
 *   mounted  (refused) a file open in a folder something is mounted over
 *            since: its path leads to another file now
 *   outside  (refused) a deleted file also held by a process outside the
 *            dumped tree (an orphaned grandchild): restored, they would
 *            hold two different files
 *   deleted-exe  (refused) the program runs from a copy of itself that it
 *            deleted: its executable cannot be mapped again
 */
#include "wl.h"

#include <dirent.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#define MAXFDS 8
#define GIB (1024LL * 1024 * 1024)
#define OWNER_UID 1234
#define OWNER_GID 5678

struct fdstate {
	int flags, fdflags;
	off_t pos;
	struct stat st;
	char link[512];
	char fdinfo[1024];
	char extents[512];
};

static struct {
	int fd;
	const char *name;
	int ghost;		/* deleted: new inode and ctime after restore */
	struct fdstate before, after;
} fds[MAXFDS];
static int nfds;
static char listing_before[2048], listing_after[2048];

/* The data extents of fd as "start-end,..." */
static void read_extents(int fd, char *out, size_t size)
{
	off_t off = 0, data, hole;
	size_t len = 0;

	out[0] = '\0';
	for (;;) {
		data = lseek(fd, off, SEEK_DATA);
		if (data < 0)
			break;
		hole = lseek(fd, data, SEEK_HOLE);
		len += snprintf(out + len, size - len, "%lld-%lld,", (long long)data, (long long)hole);
		if (len >= size || hole <= data)
			break;
		off = hole;
	}
}

/* /proc/self/fdinfo/FD without its ino: line for ghosts (the inode is new). */
static void read_fdinfo(int fd, int ghost, char *out, size_t size)
{
	char path[64], raw[1024], *line, *save = NULL;
	size_t len = 0;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	out[0] = '\0';
	if (wl_read_file(path, raw, sizeof(raw)) < 0)
		return;
	for (line = strtok_r(raw, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		if (ghost && !strncmp(line, "ino:", 4))
			continue;
		len += snprintf(out + len, size - len, "%s|", line);
		if (len >= size)
			break;
	}
}

static void read_state(int i, struct fdstate *s)
{
	int fd = fds[i].fd;
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
	read_fdinfo(fd, fds[i].ghost, s->fdinfo, sizeof(s->fdinfo));
	if (S_ISREG(s->st.st_mode)) {
		read_extents(fd, s->extents, sizeof(s->extents));
		lseek(fd, s->pos, SEEK_SET);
	}
}

#define SAME(field, fmt)						\
	wl_check(b->field == a->field, "fd %d (%s): " #field " " fmt ", was " fmt, \
		 fds[i].fd, fds[i].name, b->field, a->field)
#define SAME_TS(field)							\
	wl_check(b->field.tv_sec == a->field.tv_sec && b->field.tv_nsec == a->field.tv_nsec, \
		 "fd %d (%s): " #field " %lld.%09ld, was %lld.%09ld", fds[i].fd, fds[i].name, \
		 (long long)b->field.tv_sec, b->field.tv_nsec, (long long)a->field.tv_sec, a->field.tv_nsec)
#define SAME_STR(field)							\
	wl_check(!strcmp(b->field, a->field), "fd %d (%s): " #field " '%s', was '%s'", \
		 fds[i].fd, fds[i].name, b->field, a->field)

/* A tmpfile's link is DIR/#INO (deleted): the inode number is its own. */
static void check_tmpfile_link(int i)
{
	char expect[600], dir[512];
	const char *hash = strrchr(fds[i].before.link, '#');

	if (!hash) {
		wl_fail("fd %d (%s): link '%s' has no #inode", fds[i].fd, fds[i].name, fds[i].before.link);
		return;
	}
	snprintf(dir, sizeof(dir), "%.*s", (int)(hash - fds[i].before.link), fds[i].before.link);
	snprintf(expect, sizeof(expect), "%s#%llu (deleted)", dir,
		 (unsigned long long)fds[i].after.st.st_ino);
	wl_check(!strcmp(fds[i].after.link, expect), "fd %d (%s): link '%s', expected '%s' (was '%s')",
		 fds[i].fd, fds[i].name, fds[i].after.link, expect, fds[i].before.link);
}

static void compare(int i)
{
	struct fdstate *a = &fds[i].before, *b = &fds[i].after;

	SAME(flags, "%#o");
	SAME(fdflags, "%#x");
	SAME(pos, "%lld");
	SAME(st.st_mode, "%o");
	SAME(st.st_uid, "%u");
	SAME(st.st_gid, "%u");
	SAME(st.st_size, "%lld");
	SAME(st.st_blocks, "%lld");
	SAME(st.st_nlink, "%lu");
	SAME(st.st_dev, "%lu");
	SAME(st.st_rdev, "%lu");
	SAME_TS(st.st_atim);
	SAME_TS(st.st_mtim);
	if (!fds[i].ghost) {
		SAME(st.st_ino, "%lu");
		SAME_TS(st.st_ctim);
	}
	if (strchr(a->link, '#') && strstr(a->link, "(deleted)"))
		check_tmpfile_link(i);
	else
		SAME_STR(link);
	SAME_STR(fdinfo);
	SAME_STR(extents);
}

static int add(int fd, const char *name, int ghost)
{
	if (fd < 0)
		wl_die(name);
	fds[nfds].fd = fd;
	fds[nfds].name = name;
	fds[nfds].ghost = ghost;
	return nfds++;
}

static void write_at(int fd, const char *what, off_t off, size_t len, uint64_t seed)
{
	static char buf[65536];

	wl_fill(buf, len, seed);
	if (pwrite(fd, buf, len, off) != (ssize_t)len)
		wl_die(what);
}

static int data_is(int fd, off_t off, size_t len, uint64_t seed)
{
	static char want[65536], got[65536];

	wl_fill(want, len, seed);
	return pread(fd, got, len, off) == (ssize_t)len && !memcmp(got, want, len);
}

/* Owner, mode and times set on purpose; times an hour or two ago (relatime
 * would not touch an atime newer than mtime and ctime: it is ctime now). */
static void set_attrs(int fd, mode_t mode, const char *what)
{
	struct timespec t[2];

	clock_gettime(CLOCK_REALTIME, &t[0]);
	t[0].tv_sec -= 3600;
	t[0].tv_nsec = 123456789;
	t[1] = t[0];
	t[1].tv_sec -= 3600;
	t[1].tv_nsec = 987654321;
	if (fchown(fd, OWNER_UID, OWNER_GID) || fchmod(fd, mode) || futimens(fd, t))
		wl_die(what);
}

static void read_listing(char *out, size_t size)
{
	DIR *d = opendir(".");
	struct dirent *e;
	size_t len = 0;

	out[0] = '\0';
	if (!d)
		wl_die("opendir .");
	while ((e = readdir(d)))
		if (len < size)
			len += snprintf(out + len, size - len, "%s ", e->d_name);
	closedir(d);
}

static void setup_sparse(void)
{
	int fd;

	fd = open("sparse.dat", O_RDWR | O_CREAT | O_EXCL, 0600);
	add(fd, "sparse.dat", 1);
	if (ftruncate(fd, GIB))
		wl_die("ftruncate 1 GiB");
	write_at(fd, "sparse 0", 0, 4096, 11);
	write_at(fd, "sparse 300M", 300LL << 20, 8192, 12);
	write_at(fd, "sparse end", GIB - 100, 100, 13);
	lseek(fd, 4000, SEEK_SET);
	if (unlink("sparse.dat"))
		wl_die("unlink sparse.dat");
	set_attrs(fd, 0641, "sparse attrs");

	fd = open("linked.dat", O_RDWR | O_CREAT | O_EXCL | O_APPEND, 0600);
	add(fd, "linked.dat", 1);
	write_at(fd, "linked", 0, 20000, 14);
	if (link("linked.dat", "linked2.dat") || unlink("linked.dat") || unlink("linked2.dat"))
		wl_die("link/unlink linked.dat");
	if (ftruncate(fd, 5000) || ftruncate(fd, 3 << 20))
		wl_die("resize linked.dat");
	set_attrs(fd, 0604, "linked attrs");

	fd = open("keep.dat", O_RDWR | O_CREAT | O_EXCL, 0600);
	add(fd, "keep.dat", 0);
	write_at(fd, "keep", 0, 5000, 15);
	lseek(fd, 10, SEEK_SET);
	set_attrs(fd, 0640, "keep attrs");
}

static void check_sparse(void)
{
	wl_check(data_is(fds[0].fd, 0, 4096, 11) && data_is(fds[0].fd, 300LL << 20, 8192, 12) &&
		 data_is(fds[0].fd, GIB - 100, 100, 13), "sparse.dat: data changed");
	wl_check(data_is(fds[1].fd, 0, 5000, 14), "linked.dat: data changed");
	wl_check(data_is(fds[2].fd, 0, 5000, 15), "keep.dat: data changed");
}

static pid_t child;
static int to_parent[2];

static void stop_child(void)
{
	if (child > 0)
		kill(child, SIGTERM);
}

/* The child: fds 0/1 of fds[] inherited, its own third open of the file. */
static int child_main(void)
{
	char path[64];
	int third, i;

	nfds = 2;
	fds[1].name = "shared.dat second open (child)";
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fds[0].fd);
	third = add(open(path, O_RDONLY | O_CLOEXEC), "shared.dat third open (child)", 1);
	lseek(fds[third].fd, 300, SEEK_SET);
	for (i = 0; i < nfds; i++)
		read_state(i, &fds[i].before);
	if (write(to_parent[1], "r", 1) != 1)
		wl_die("child ready");
	wl_wait();
	for (i = 0; i < nfds; i++)
		read_state(i, &fds[i].after);
	for (i = 0; i < nfds; i++)
		compare(i);
	for (i = 1; i < nfds; i++)
		wl_check(fds[i].after.st.st_ino == fds[0].after.st.st_ino,
			 "child: %s is another file than %s", fds[i].name, fds[0].name);
	wl_check(data_is(fds[third].fd, 0, 4096, 21), "child: shared.dat data changed");
	write_at(fds[1].fd, "child write", 8192, 4096, 22);
	lseek(fds[0].fd, 777, SEEK_SET);
	return wl_failures ? 1 : 0;
}

static void setup_shared(void)
{
	int first, second;
	char c;

	first = add(open("shared.dat", O_RDWR | O_CREAT | O_EXCL, 0600), "shared.dat", 1);
	second = add(open("shared.dat", O_RDWR), "shared.dat second open", 1);
	write_at(fds[first].fd, "shared", 0, 4096, 21);
	if (unlink("shared.dat"))
		wl_die("unlink shared.dat");
	set_attrs(fds[first].fd, 0640, "shared attrs");
	lseek(fds[first].fd, 100, SEEK_SET);
	lseek(fds[second].fd, 200, SEEK_SET);
	if (pipe(to_parent))
		wl_die("pipe");
	child = fork();
	if (child < 0)
		wl_die("fork");
	if (child == 0)
		exit(child_main());
	close(to_parent[1]);
	if (read(to_parent[0], &c, 1) != 1)
		wl_die("child setup");
	close(to_parent[0]);
}

/* After the parent compared its own state: then the child checks and writes. */
static void check_shared(void)
{
	int status;
	struct stat st;

	stop_child();
	if (waitpid(child, &status, 0) != child)
		wl_fail("waitpid child: %s", strerror(errno));
	else
		wl_check(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the child failed (status %#x)", status);
	wl_check(fstat(fds[1].fd, &st) == 0 && st.st_ino == fds[0].after.st.st_ino,
		 "the two opens of shared.dat are two files");
	wl_check(data_is(fds[1].fd, 8192, 4096, 22), "the child's write is not seen by the parent");
	wl_check(lseek(fds[0].fd, 0, SEEK_CUR) == 777, "offset not shared with the child (%lld)",
		 (long long)lseek(fds[0].fd, 0, SEEK_CUR));
	wl_check(lseek(fds[1].fd, 0, SEEK_CUR) == 200, "second open's offset moved (%lld)",
		 (long long)lseek(fds[1].fd, 0, SEEK_CUR));
}

static void setup_tmpfile(void)
{
	int fd;

	fd = add(open(".", O_TMPFILE | O_RDWR, 0600), "tmpfile", 1);
	fd = fds[fd].fd;
	write_at(fd, "tmpfile", 0, 30000, 31);
	lseek(fd, 1000, SEEK_SET);
	set_attrs(fd, 0640, "tmpfile attrs");
	fd = add(open(".", O_TMPFILE | O_WRONLY | O_APPEND | O_CLOEXEC, 0600), "tmpfile append", 1);
	fd = fds[fd].fd;
	write_at(fd, "tmpfile append", 0, 100, 32);
	set_attrs(fd, 0600, "tmpfile append attrs");
}

static void check_tmpfile(void)
{
	char path[64];

	wl_check(data_is(fds[0].fd, 0, 30000, 31), "tmpfile: data changed");
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fds[0].fd);
	if (linkat(AT_FDCWD, path, AT_FDCWD, "tmpfile-linked", AT_SYMLINK_FOLLOW))
		wl_fail("tmpfile is no longer linkable: %s", strerror(errno));
	else
		unlink("tmpfile-linked");
}

static int listed_fd;
static char rest_before[4096];

/* The names getdents returns from fd's offset on. */
static void read_rest(int fd, char *out, size_t size)
{
	char buf[4096];
	size_t len = 0;
	long n, off;

	out[0] = '\0';
	while ((n = getdents64(fd, buf, sizeof(buf))) > 0)
		for (off = 0; off < n; off += ((struct dirent64 *)(buf + off))->d_reclen)
			len += snprintf(out + len, len < size ? size - len : 0, "%s ",
					((struct dirent64 *)(buf + off))->d_name);
}

static void setup_deldir(void)
{
	char buf[200], path[32];
	int fd, i, again;

	if (mkdir("d", 0755) || mkdir("p", 0700) || mkdir("p/q", 0700) || mkdir("e", 0700))
		wl_die("mkdir");
	fd = add(open("d/gone", O_RDWR | O_CREAT | O_EXCL, 0600), "d/gone", 1);
	write_at(fds[fd].fd, "d/gone", 0, 5000, 41);
	fd = add(open("p/q/gone", O_RDONLY | O_CREAT | O_EXCL, 0644), "p/q/gone", 1);
	fd = add(open("e", O_RDONLY | O_DIRECTORY), "e (dir)", 1);
	set_attrs(fds[fd].fd, 0751, "e attrs");
	if (unlink("d/gone") || rmdir("d") || unlink("p/q/gone") || rmdir("p/q") || rmdir("p") || rmdir("e"))
		wl_die("remove");
	/* a directory of 40 entries, read part way (a buffer for a few) */
	if (mkdir("many", 0755))
		wl_die("mkdir many");
	for (i = 0; i < 40; i++) {
		snprintf(path, sizeof(path), "many/entry-%02d", i);
		if (close(open(path, O_WRONLY | O_CREAT, 0600)))
			wl_die(path);
	}
	fd = add(open("many", O_RDONLY | O_DIRECTORY), "many (dir, read part way)", 0);
	listed_fd = fds[fd].fd;
	if (getdents64(listed_fd, buf, sizeof(buf)) <= 0)
		wl_die("getdents many");
	again = open("many", O_RDONLY | O_DIRECTORY);
	if (again < 0 || lseek(again, lseek(listed_fd, 0, SEEK_CUR), SEEK_SET) < 0)
		wl_die("many again");
	read_rest(again, rest_before, sizeof(rest_before));
	close(again);
}

static void check_deldir(void)
{
	char buf[256];
	static char rest_after[4096];

	wl_check(data_is(fds[0].fd, 0, 5000, 41), "d/gone: data changed");
	errno = 0;
	wl_check(getdents64(fds[2].fd, buf, sizeof(buf)) < 0 && errno == ENOENT,
		 "reading the removed directory: %s, expected ENOENT", strerror(errno));
	wl_check(openat(fds[2].fd, "x", O_RDWR | O_CREAT, 0600) < 0 && errno == ENOENT,
		 "creating a file in the removed directory: %s, expected ENOENT", strerror(errno));
	read_rest(listed_fd, rest_after, sizeof(rest_after));
	wl_check(rest_before[0] && !strcmp(rest_after, rest_before),
		 "directory read part way goes on with '%s', went on with '%s'", rest_after, rest_before);
}

static const char *mapped;

static void setup_mapped(void)
{
	int i = add(open("mapped.dat", O_RDWR | O_CREAT | O_EXCL, 0600), "mapped.dat", 0);

	write_at(fds[i].fd, "mapped", 0, 8192, 51);
	mapped = mmap(NULL, 8192, PROT_READ, MAP_PRIVATE, fds[i].fd, 0);
	if (mapped == MAP_FAILED)
		wl_die("mmap");
	set_attrs(fds[i].fd, 0600, "mapped attrs");	/* after mmap, which touches atime */
}

static void setup_linked(void)
{
	int fd = open("a", O_RDWR | O_CREAT | O_EXCL, 0600);

	add(fd, "a (linked as b)", 0);
	if (link("a", "b") || unlink("a"))
		wl_die("link");
	wl_say("linked fd %d", fd);
}

static void setup_mounted(void)
{
	if (mkdir("m", 0755))
		wl_die("mkdir m");
	add(open("m/f", O_RDWR | O_CREAT | O_EXCL, 0600), "m/f", 0);
	if (mount("none", "m", "tmpfs", 0, "size=64k"))
		wl_die("mount");
	wl_say("mounted fd %d", fds[0].fd);
}

/* An orphan (outside the tree dumped from us) holding the deleted file until we are gone. */
static void setup_outside(void)
{
	char path[64], stat[256];
	pid_t parent = getpid(), mid;
	int fd = add(open("held", O_RDWR | O_CREAT | O_EXCL, 0600), "held (also outside)", 1);

	if (unlink("held"))
		wl_die("unlink held");
	mid = fork();
	if (mid < 0)
		wl_die("fork");
	if (mid == 0) {
		if (fork() != 0)
			_exit(0);
		snprintf(path, sizeof(path), "/proc/%d/stat", (int)parent);
		while (wl_read_file(path, stat, sizeof(stat)) > 0 && !strstr(stat, ") Z"))
			usleep(50000);
		_exit(0);
	}
	if (waitpid(mid, NULL, 0) != mid)
		wl_die("waitpid");
	wl_say("outside fd %d", fds[fd].fd);
}

/* Run again from a copy of this program, deleted once it runs. */
static void run_from_deleted_copy(char **argv)
{
	char self[512], copy[] = "ghosts-copy";
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	int in, out;
	static char buf[65536];

	if (n < 0)
		wl_die("readlink exe");
	self[n] = '\0';
	in = open(self, O_RDONLY);
	out = open(copy, O_WRONLY | O_CREAT | O_TRUNC, 0700);
	if (in < 0 || out < 0)
		wl_die("copy");
	while ((n = read(in, buf, sizeof(buf))) > 0)
		if (write(out, buf, n) != n)
			wl_die("copy");
	close(in);
	close(out);
	execl(copy, argv[0], "deleted-exe-run", (char *)NULL);
	wl_die("exec copy");
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "";
	int i;

	if (!strcmp(mode, "deleted-exe"))
		run_from_deleted_copy(argv);
	if (!strcmp(mode, "deleted-exe-run") && unlink("ghosts-copy"))
		wl_die("unlink copy");
	wl_setup(0);
	/* a folder of its own: the harness writes its images and logs beside out.log */
	if (mkdir("w", 0755) || chdir("w"))
		wl_die("w");
	if (!strcmp(mode, "sparse"))
		setup_sparse();
	else if (!strcmp(mode, "shared"))
		setup_shared();
	else if (!strcmp(mode, "tmpfile"))
		setup_tmpfile();
	else if (!strcmp(mode, "deldir"))
		setup_deldir();
	else if (!strcmp(mode, "mapped"))
		setup_mapped();
	else if (!strcmp(mode, "linked"))
		setup_linked();
	else if (!strcmp(mode, "mounted"))
		setup_mounted();
	else if (!strcmp(mode, "outside"))
		setup_outside();
	else if (!strcmp(mode, "deleted-exe-run"))
		wl_say("running from a deleted copy");
	else {
		errno = EINVAL;
		wl_die(mode);
	}
	for (i = 0; i < nfds; i++)
		read_state(i, &fds[i].before);
	read_listing(listing_before, sizeof(listing_before));

	wl_ready();
	wl_wait();

	if (!strcmp(mode, "mounted") && umount2("m", MNT_DETACH))
		wl_fail("umount: %s", strerror(errno));
	for (i = 0; i < nfds; i++)
		read_state(i, &fds[i].after);
	read_listing(listing_after, sizeof(listing_after));
	for (i = 0; i < nfds; i++)
		compare(i);
	wl_check(!strcmp(listing_before, listing_after), "working directory holds '%s', held '%s'",
		 listing_after, listing_before);
	if (!strcmp(mode, "sparse"))
		check_sparse();
	else if (!strcmp(mode, "shared"))
		check_shared();
	else if (!strcmp(mode, "tmpfile"))
		check_tmpfile();
	else if (!strcmp(mode, "deldir"))
		check_deldir();
	else if (!strcmp(mode, "mapped")) {
		static char want[8192];

		wl_fill(want, sizeof(want), 51);
		wl_check(!memcmp(mapped, want, sizeof(want)), "mapped.dat: mapping changed");
	}
	return wl_finish();
}
