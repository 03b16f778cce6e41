/*
 * oddfds: fds in states real programs leave behind, checked after restore
 * against what fdinfo, fstat and the file itself said before.
 *
 * Pipes:
 *   eof    only the read end left, with 70000 bytes queued in a 128 KiB pipe:
 *          the reader gets the bytes, then EOF.
 *   epipe  only the write end left (16 bytes still queued): a write fails
 *          with EPIPE and raises SIGPIPE (blocked, so it stays pending).
 *   twice  a pipe whose read end was opened again through /proc/self/fd
 *          (non-blocking, the first one blocking) and opened O_RDWR once
 *          more: four open files on one pipe, each with its own flags.
 * epoll (one instance):
 *   moved  a watch added through fd A, A dup'ed to B and closed: the watch
 *          is still keyed by number A (DEL through B says ENOENT; once A
 *          names the file again, MOD through A works).
 *   reused a watch (EPOLLET) added through fd C, C dup'ed and then reused
 *          for an eventfd: C names another file; DEL through C says ENOENT.
 *   excl   an EPOLLEXCLUSIVE watch (MOD on it says EINVAL).
 *   plain  a level-triggered watch with a 64-bit data word, ready.
 * Paths:
 *   symlink  O_PATH|O_NOFOLLOW fds of a symlink and of a dangling one: still
 *            the links themselves (lstat's inode, readlinkat through the fd).
 *   devnode  /dev/null's device made as a node in the cwd, opened, unlinked:
 *            a deleted character device, still that device (rdev, mode,
 *            owner, no links, same /proc/self/fd name; reads EOF, writes).
 * inotify:
 *   a watch on a file deleted while open (the watch lives until the last
 *   close): writing through the fd gives IN_MODIFY on it, the close
 *   IN_DELETE_SELF then IN_IGNORED.
 * Every fd's fdinfo (inode numbers replaced by which fd held them) is
 * compared as a whole, and epoll_wait must give the same events.
 *
 * Refused (argument), the process left running as it was:
 *   epoll-orphan   an epoll watching a pipe no fd of its process holds any
 *                  more (a child holds it: the watch lives as long as the file)
 *   oneshot-fired  an EPOLLONESHOT watch that has fired (disarmed)
 *   pidfd-outside  a pidfd of the parent (the harness), alive outside the dump
 */
#include "wl.h"
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <linux/kcmp.h>

#define EOF_BYTES 70000
#define NFDS 64

static int tracked[NFDS], ntracked;
static ino_t tracked_ino[NFDS];

static void track(int fd)
{
	tracked[ntracked++] = fd;
}

/* Inode numbers of the tracked fds, in order: their labels in fdinfo text. */
static void note_inodes(void)
{
	struct stat st;
	int i;

	for (i = 0; i < ntracked; i++)
		tracked_ino[i] = fstat(tracked[i], &st) ? 0 : st.st_ino;
}

static int label_of(unsigned long ino)
{
	int i;

	for (i = 0; i < ntracked; i++)
		if (tracked_ino[i] == ino)
			return tracked[i];
	return -1;
}

static int cmp_lines(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* fdinfo of fd with every inode number replaced by "fd N" of a tracked fd
 * that has that inode (restore makes new pipes and eventfds), lines sorted
 * (an epoll lists its watches in the order of their files' addresses). */
static void fdinfo(int fd, char *out, size_t size)
{
	char path[64], raw[4096], lines[4096], *p, *line, *save = NULL, *sorted[64];
	size_t len = 0;
	int i, nlines = 0;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	if (wl_read_file(path, raw, sizeof(raw)) < 0)
		wl_die("fdinfo");
	out[0] = '\0';
	for (line = strtok_r(raw, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		p = strstr(line, "ino:");
		if (p) {
			/* top level "ino:\t<decimal>", epoll's and inotify's "ino:<hex>" */
			int hex = !strncmp(line, "tfd:", 4) || !strncmp(line, "inotify ", 8);
			char *handle = strstr(line, " f_handle:");

			if (handle)	/* the watched inode's handle: new with the inode */
				strcpy(handle, " f_handle:<of that inode>");
			unsigned long ino = strtoul(p + 4, NULL, hex ? 16 : 10);
			char *rest = p + 4;

			while (*rest == '\t' || *rest == ' ' || (*rest && strchr("0123456789abcdef", *rest)))
				rest++;
			*p = '\0';
			len += snprintf(out + len, size - len, "%sino:<fd %d>%s\n", line, label_of(ino), rest);
		} else {
			len += snprintf(out + len, size - len, "%s\n", line);
		}
		if (len >= size)
			wl_die("fdinfo too long");
	}
	memcpy(lines, out, len + 1);
	save = NULL;
	for (line = strtok_r(lines, "\n", &save); line && nlines < 64; line = strtok_r(NULL, "\n", &save))
		sorted[nlines++] = line;
	qsort(sorted, nlines, sizeof(sorted[0]), cmp_lines);
	for (len = 0, i = 0; i < nlines; i++)
		len += snprintf(out + len, size - len, "%s\n", sorted[i]);
}

static char before[NFDS][4096];

static int same_file(int a, int b)
{
	return syscall(SYS_kcmp, getpid(), getpid(), KCMP_FILE, a, b) == 0;
}

static int same_inode(int a, int b)
{
	struct stat sa, sb;

	return !fstat(a, &sa) && !fstat(b, &sb) && sa.st_ino == sb.st_ino && sa.st_dev == sb.st_dev;
}

static char pattern[EOF_BYTES];

/* The refused states: set up, wait, check the epoll still works as before. */
static int refused(const char *mode)
{
	int ep = epoll_create1(0), p[2], n;
	pid_t child = 0;
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = 77 }, got;

	if (ep < 0 || pipe(p) || write(p[1], "x", 1) != 1)
		wl_die("refused setup");
	if (!strcmp(mode, "pidfd-outside")) {
		int pidfd = syscall(SYS_pidfd_open, getppid(), 0);

		if (pidfd < 0)
			wl_die("pidfd_open");
		wl_ready();
		wl_wait();
		wl_check(syscall(SYS_pidfd_send_signal, pidfd, 0, NULL, 0) == 0, "pidfd of the parent: %s", strerror(errno));
		return wl_finish();
	}
	if (!strcmp(mode, "oneshot-fired"))
		ev.events |= EPOLLONESHOT;
	else if (strcmp(mode, "epoll-orphan"))
		wl_die("unknown mode");
	if (epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev))
		wl_die("add");
	if (!strcmp(mode, "oneshot-fired") && epoll_wait(ep, &got, 1, 0) != 1)
		wl_die("fire the one-shot watch");
	if (!strcmp(mode, "epoll-orphan")) {
		child = fork();
		if (child < 0)
			wl_die("fork");
		if (child == 0) {
			close(ep);
			for (;;)
				pause();
		}
		close(p[0]);
	}
	wl_ready();
	wl_wait();
	n = epoll_wait(ep, &got, 1, 0);
	if (child > 0) {
		kill(child, SIGKILL);
		waitpid(child, NULL, 0);
	}
	if (!strcmp(mode, "oneshot-fired"))
		wl_check(n == 0, "disarmed watch fired: %d", n);
	else
		wl_check(n == 1 && got.data.u64 == 77, "orphan watch: %d events", n);
	return wl_finish();
}

int main(int argc, char **argv)
{
	int eofp[2], epp[2], tw[2], r2, rw, ep, efd_b, efd_a, moved_a, pipe_c, reused_c, excl_fd[2], plain[2];
	int i, n, sl, dl, dev, gone, in, wd;
	struct stat sl_st, dev_st, st;
	char dev_name[256] = "", now_name[256] = "";
	struct epoll_event ev, got[8];
	char buf[4096], after[4096];
	sigset_t set;
	struct timespec zero = { 0, 0 };

	wl_setup(0);
	if (argc > 1)
		return refused(argv[1]);
	sigemptyset(&set);
	sigaddset(&set, SIGPIPE);
	sigprocmask(SIG_BLOCK, &set, NULL);

	/* eof: only the read end left */
	wl_fill(pattern, sizeof(pattern), 7);
	if (pipe(eofp) || fcntl(eofp[1], F_SETPIPE_SZ, 128 * 1024) < 0)
		wl_die("eof pipe");
	if (write(eofp[1], pattern, sizeof(pattern)) != sizeof(pattern))
		wl_die("fill eof pipe");
	close(eofp[1]);
	track(eofp[0]);

	/* epipe: only the write end left */
	if (pipe2(epp, O_NONBLOCK) || fcntl(epp[1], F_SETPIPE_SZ, 16 * 4096) < 0 || write(epp[1], "sixteen bytes!!!", 16) != 16)
		wl_die("epipe pipe");
	close(epp[0]);
	track(epp[1]);

	/* twice: four open files on one pipe */
	if (pipe(tw))
		wl_die("twice pipe");
	snprintf(buf, sizeof(buf), "/proc/self/fd/%d", tw[0]);
	r2 = open(buf, O_RDONLY | O_NONBLOCK);
	rw = open(buf, O_RDWR);
	if (r2 < 0 || rw < 0 || write(tw[1], "abc", 3) != 3)
		wl_die("twice reopen");
	track(tw[0]);
	track(tw[1]);
	track(r2);
	track(rw);

	/* epoll */
	ep = epoll_create1(0);
	efd_a = eventfd(5, EFD_NONBLOCK);
	if (ep < 0 || efd_a < 0 || pipe2(excl_fd, O_NONBLOCK) || pipe2(plain, O_NONBLOCK))
		wl_die("epoll setup");
	ev.events = EPOLLIN;
	ev.data.u64 = 0xa0a0a0a0a0a0a0a0ULL;
	if (epoll_ctl(ep, EPOLL_CTL_ADD, efd_a, &ev))
		wl_die("add moved");
	moved_a = efd_a;
	efd_b = dup(efd_a);
	close(efd_a);

	pipe_c = eofp[0] + 100;		/* a number of its own, then reused */
	if (dup2(plain[0], pipe_c) != pipe_c)
		wl_die("dup2 c");
	ev.events = EPOLLIN | EPOLLET | EPOLLRDHUP;
	ev.data.u64 = 0xc;
	if (epoll_ctl(ep, EPOLL_CTL_ADD, pipe_c, &ev))
		wl_die("add reused");
	close(pipe_c);
	reused_c = eventfd(0, 0);
	if (reused_c < 0 || dup2(reused_c, pipe_c) != pipe_c)
		wl_die("reuse c");
	close(reused_c);
	reused_c = pipe_c;

	ev.events = EPOLLIN | EPOLLEXCLUSIVE;
	ev.data.u64 = 0xe;
	if (epoll_ctl(ep, EPOLL_CTL_ADD, excl_fd[0], &ev))
		wl_die("add exclusive");
	ev.events = EPOLLIN | EPOLLPRI;
	ev.data.u64 = 0x123456789abcdef0ULL;
	if (epoll_ctl(ep, EPOLL_CTL_ADD, plain[0], &ev) || write(plain[1], "p", 1) != 1)
		wl_die("add plain");
	track(ep);
	track(efd_b);
	track(reused_c);
	track(excl_fd[0]);
	track(excl_fd[1]);
	track(plain[0]);
	track(plain[1]);

	/* symlinks */
	if (symlink("target-file", "link") || symlink("nowhere", "dangling"))
		wl_die("symlink");
	sl = open("link", O_PATH | O_NOFOLLOW);
	dl = open("dangling", O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (sl < 0 || dl < 0 || lstat("link", &sl_st))
		wl_die("open symlinks");
	track(sl);
	track(dl);

	/* a deleted character device */
	if (mknod("nulldev", S_IFCHR | 0640, makedev(1, 3)) || chown("nulldev", 1, 2))
		wl_die("mknod");
	dev = open("nulldev", O_RDWR);
	if (dev < 0 || unlink("nulldev") || fstat(dev, &dev_st))
		wl_die("open device");
	snprintf(buf, sizeof(buf), "/proc/self/fd/%d", dev);
	if (readlink(buf, dev_name, sizeof(dev_name) - 1) < 0)
		wl_die("readlink device");
	track(dev);

	/* inotify on a deleted file */
	gone = open("watched", O_RDWR | O_CREAT, 0600);
	in = inotify_init1(IN_NONBLOCK);
	if (gone < 0 || in < 0 || write(gone, "w", 1) != 1)
		wl_die("inotify setup");
	wd = inotify_add_watch(in, "watched", IN_MODIFY | IN_DELETE_SELF | IN_ATTRIB);
	if (wd < 0 || unlink("watched"))
		wl_die("inotify watch");
	n = read(in, buf, sizeof(buf));		/* IN_ATTRIB of the unlink */
	if (n <= 0)
		wl_die("inotify read");
	track(gone);
	track(in);

	note_inodes();
	for (i = 0; i < ntracked; i++)
		fdinfo(tracked[i], before[i], sizeof(before[i]));
	wl_ready();
	wl_wait();

	note_inodes();
	for (i = 0; i < ntracked; i++) {
		fdinfo(tracked[i], after, sizeof(after));
		wl_check(strcmp(before[i], after) == 0, "fd %d fdinfo was\n%s\nnow\n%s", tracked[i], before[i], after);
	}

	/* symlinks */
	wl_check(!fstat(sl, &st) && S_ISLNK(st.st_mode) && st.st_ino == sl_st.st_ino && st.st_dev == sl_st.st_dev,
		 "symlink fd: mode %#o inode %lu, want the link's %lu", st.st_mode, (unsigned long)st.st_ino,
		 (unsigned long)sl_st.st_ino);
	memset(buf, 0, sizeof(buf));
	wl_check(readlinkat(sl, "", buf, sizeof(buf) - 1) == 11 && !strcmp(buf, "target-file"), "readlinkat: %s", buf);
	memset(buf, 0, sizeof(buf));
	wl_check(readlinkat(dl, "", buf, sizeof(buf) - 1) == 7 && !strcmp(buf, "nowhere"), "dangling: %s", buf);
	wl_check(fcntl(sl, F_GETFD) == 0 && fcntl(dl, F_GETFD) == FD_CLOEXEC, "symlink fds' FD_CLOEXEC");

	/* the deleted device */
	wl_check(!fstat(dev, &st) && S_ISCHR(st.st_mode) && st.st_rdev == dev_st.st_rdev && st.st_mode == dev_st.st_mode &&
		 st.st_uid == 1 && st.st_gid == 2 && st.st_nlink == 0 && st.st_dev == dev_st.st_dev,
		 "deleted device: mode %#o rdev %#lx owner %d:%d links %lu", st.st_mode, (unsigned long)st.st_rdev,
		 (int)st.st_uid, (int)st.st_gid, (unsigned long)st.st_nlink);
	snprintf(buf, sizeof(buf), "/proc/self/fd/%d", dev);
	wl_check(readlink(buf, now_name, sizeof(now_name) - 1) > 0 && !strcmp(now_name, dev_name),
		 "deleted device's name: %s, was %s", now_name, dev_name);
	wl_check(access("nulldev", F_OK) < 0, "the device node is back in the directory");
	wl_check(write(dev, "abc", 3) == 3 && read(dev, buf, 1) == 0, "deleted device is not /dev/null");

	/* inotify on the deleted file */
	errno = 0;
	n = read(in, buf, sizeof(buf));
	wl_check(n < 0 && errno == EAGAIN, "inotify: %d bytes of events before any change", n);
	wl_check(write(gone, "x", 1) == 1, "write the deleted file");
	{
		struct inotify_event *e = (struct inotify_event *)buf;
		uint32_t want[3] = { IN_MODIFY, IN_DELETE_SELF, IN_IGNORED }, k = 0;
		char *p;

		n = read(in, buf, sizeof(buf));
		wl_check(n == (int)sizeof(*e) && e->wd == wd && e->mask == IN_MODIFY, "inotify: after a write %d bytes, "
			 "wd %d mask %#x", n, n > 0 ? e->wd : -1, n > 0 ? e->mask : 0);
		close(gone);
		n = read(in, buf, sizeof(buf));
		for (p = buf, k = 1; n > 0 && p < buf + n && k < 3; p += sizeof(*e) + e->len, k++) {
			e = (struct inotify_event *)p;
			wl_check(e->wd == wd && e->mask == want[k], "inotify: after the close, event %u: wd %d mask %#x",
				 k, e->wd, e->mask);
		}
		wl_check(k == 3 && p == buf + n, "inotify: %d bytes of events after the close", n);
	}

	/* eof */
	wl_check(fcntl(eofp[0], F_GETPIPE_SZ) == 128 * 1024, "eof pipe size %d", fcntl(eofp[0], F_GETPIPE_SZ));
	{
		static char got_bytes[EOF_BYTES + 1];
		size_t len = 0;
		ssize_t r;

		while ((r = read(eofp[0], got_bytes + len, sizeof(got_bytes) - len)) > 0)
			len += r;
		wl_check(r == 0, "eof pipe: read after the data gave %zd (%s), not EOF", r, strerror(errno));
		wl_check(len == EOF_BYTES && !memcmp(got_bytes, pattern, EOF_BYTES), "eof pipe: %zu bytes, different", len);
	}

	/* epipe */
	wl_check(fcntl(epp[1], F_GETPIPE_SZ) == 16 * 4096, "epipe pipe size %d", fcntl(epp[1], F_GETPIPE_SZ));
	wl_check(sigtimedwait(&set, NULL, &zero) < 0, "SIGPIPE pending before the write");
	errno = 0;
	wl_check(write(epp[1], "x", 1) < 0 && errno == EPIPE, "write with no reader: %s", strerror(errno));
	wl_check(sigtimedwait(&set, NULL, &zero) == SIGPIPE, "no SIGPIPE after the write");

	/* twice */
	wl_check(same_inode(tw[0], r2) && same_inode(tw[0], rw) && same_inode(tw[0], tw[1]), "twice: not one pipe");
	wl_check(!same_file(tw[0], r2) && !same_file(tw[0], rw) && !same_file(r2, rw) && !same_file(tw[1], rw),
		 "twice: open files merged");
	n = read(r2, buf, sizeof(buf));
	wl_check(n == 3 && !memcmp(buf, "abc", 3), "twice: read %d", n);
	close(tw[1]);
	errno = 0;
	n = read(r2, buf, sizeof(buf));
	wl_check(n < 0 && errno == EAGAIN, "twice: O_RDWR open is not a writer (read %d, %s)", n, strerror(errno));
	wl_check(write(rw, "zz", 2) == 2 && read(tw[0], buf, 2) == 2 && !memcmp(buf, "zz", 2), "twice: rw to r");

	/* epoll */
	n = epoll_wait(ep, got, 8, 0);
	{
		int seen_a = 0, seen_c = 0, seen_plain = 0;

		for (i = 0; i < n; i++) {
			if (got[i].data.u64 == 0xa0a0a0a0a0a0a0a0ULL && got[i].events == EPOLLIN)
				seen_a++;
			else if (got[i].data.u64 == 0xc && got[i].events == EPOLLIN)
				seen_c++;
			else if (got[i].data.u64 == 0x123456789abcdef0ULL && got[i].events == EPOLLIN)
				seen_plain++;
			else
				wl_fail("epoll: unexpected event %#x data %#llx", got[i].events,
					(unsigned long long)got[i].data.u64);
		}
		/* the pipe behind C had a byte before the watch was added (ready at once) */
		wl_check(n == 3 && seen_a == 1 && seen_c == 1 && seen_plain == 1, "epoll_wait: %d events (a %d c %d plain %d)",
			 n, seen_a, seen_c, seen_plain);
	}
	n = epoll_wait(ep, got, 8, 0);
	wl_check(n == 2, "second epoll_wait: %d events (edge triggered C must not come again)", n);
	errno = 0;
	wl_check(epoll_ctl(ep, EPOLL_CTL_DEL, efd_b, NULL) < 0 && errno == ENOENT, "moved: DEL through B: %s",
		 strerror(errno));
	errno = 0;
	wl_check(epoll_ctl(ep, EPOLL_CTL_DEL, reused_c, NULL) < 0 && errno == ENOENT, "reused: DEL through C: %s",
		 strerror(errno));
	ev.events = EPOLLOUT;
	wl_check(epoll_ctl(ep, EPOLL_CTL_MOD, excl_fd[0], &ev) < 0 && errno == EINVAL, "exclusive: MOD: %s",
		 strerror(errno));
	if (dup2(efd_b, moved_a) != moved_a)
		wl_die("dup2 a");
	wl_check(epoll_ctl(ep, EPOLL_CTL_MOD, moved_a, &ev) == 0, "moved: MOD through A again: %s", strerror(errno));
	return wl_finish();
}
