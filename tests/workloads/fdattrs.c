/*
 * fdattrs MODE: attributes of open files that are easy to lose on restore.
 * Each mode records everything the kernel shows about its objects before
 * the dump and compares it after restore:
 *
 *   owner     F_SETOWN / F_SETOWN_EX (pid, pgrp, tid) and F_SETSIG owners,
 *             (owner-user: the same, the process then running as uid 1000)
 *             O_ASYNC: F_GETFL, F_GETOWN_EX, F_GETSIG, fdinfo "flags:" per
 *             fd, then the signals are really delivered (with the right
 *             si_fd / si_code for an F_SETSIG signal).
 *   memfd     memfd status flags: O_APPEND, O_NONBLOCK, read-only and
 *             write-only opens of one memfd (F_GETFL, fdinfo, positions).
 *   pipesize  a pipe resized with F_SETPIPE_SZ (smaller and bigger than the
 *             default) holding data: sizes and contents.
 *   unixperm  a bound unix socket whose file was chmod'ed and chown'ed.
 *   ptyowner  a pty slave chown'ed / chmod'ed: its owner, group and mode.
 *   inotify   an inotify instance with 100 watches: the fdinfo lines.
 *   ttys      /dev/console, /dev/tty1 and a pty of its own open, none of them
 *             its controlling terminal (it has none): the same devices,
 *             flags and settings come back, and still no controlling terminal;
 *             the pty master (O_ASYNC, F_SETSIG) signals its owner again.
 *   procfiles /proc/self/stat, /proc/self/status (read part-way), the
 *             /proc/self folder, /proc/sys files read to their end and
 *             part-way: they show the restored process, at the same offsets.
 *   procdead  (refused) /proc/PID of a child that died and was reaped.
 *   packets   (refused) a packet-mode (O_DIRECT) pipe with two packets in it.
 */
#include "wl.h"
#include <pty.h>
#include <sys/inotify.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>

#define FDINFO_MAX 16384

/* fdinfo of one fd without its "pos:" line (positions are compared apart). */
static void fdinfo(int fd, char *buf, size_t size)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	if (wl_read_file(path, buf, size) < 0)
		wl_die("fdinfo");
}

static char *fdinfo_line(char *info, const char *key, char *out, size_t size)
{
	char *p = strstr(info, key), *end;

	out[0] = '\0';
	if (!p)
		return out;
	end = strchr(p, '\n');
	snprintf(out, size, "%.*s", (int)(end ? end - p : (long)strlen(p)), p);
	return out;
}

/* --- owner ---------------------------------------------------------------- */

#define OWNED 5
static volatile sig_atomic_t got_sig[OWNED];
static volatile int got_fd[OWNED], got_code[OWNED], got_signo[OWNED];
static int owned_fd[OWNED];

static void on_sigio(int sig, siginfo_t *si, void *uc)
{
	int i;

	(void)uc;
	for (i = 0; i < OWNED; i++) {
		/* F_SETSIG signals carry si_fd; plain SIGIO does not (SI_KERNEL): fds 1 and 2 use it */
		if (sig == SIGIO ? i != 1 && i != 2 : si->si_fd != owned_fd[i])
			continue;
		got_sig[i]++;
		got_fd[i] = si->si_fd;
		got_code[i] = si->si_code;
		got_signo[i] = sig;
	}
}

struct owner_state {
	int fl, type, owner, sig;
	char flags[64];
};

static void owner_state(int fd, struct owner_state *st)
{
	struct f_owner_ex ex;
	char info[FDINFO_MAX];

	st->fl = fcntl(fd, F_GETFL);
	if (fcntl(fd, F_GETOWN_EX, &ex))
		wl_die("F_GETOWN_EX");
	st->type = ex.type;
	st->owner = ex.pid;
	st->sig = fcntl(fd, F_GETSIG);
	fdinfo(fd, info, sizeof(info));
	fdinfo_line(info, "flags:", st->flags, sizeof(st->flags));
}

static void set_owner(int fd, int type, int who, int sig, int async)
{
	struct f_owner_ex ex = { .type = type, .pid = who };

	if (fcntl(fd, F_SETOWN_EX, &ex) || fcntl(fd, F_SETSIG, sig) ||
	    (async && fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_ASYNC | O_NONBLOCK)))
		wl_die("owner");
}

static int mode_owner(int as_user)
{
	struct owner_state before[OWNED], after;
	int p1[2], p2[2], sk[2], sk2[2], i, sigrt = SIGRTMIN + 2, opath, opath_fl;
	struct sigaction sa;
	char c = 'x';

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_sigio;
	sa.sa_flags = SA_SIGINFO | SA_RESTART;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGIO, &sa, NULL) || sigaction(sigrt, &sa, NULL) || sigaction(SIGURG, &sa, NULL))
		wl_die("sigaction");
	if (pipe(p1) || pipe(p2) || socketpair(AF_UNIX, SOCK_STREAM, 0, sk) ||
	    socketpair(AF_UNIX, SOCK_DGRAM, 0, sk2))
		wl_die("pipe/socketpair");
	/* 0: pipe read end, thread owner, an RT signal: si_fd and POLL_IN */
	owned_fd[0] = p1[0];
	set_owner(p1[0], F_OWNER_TID, (int)syscall(SYS_gettid), sigrt, 1);
	/* 1: stream socket, owned by the process group, plain SIGIO */
	owned_fd[1] = sk[0];
	set_owner(sk[0], F_OWNER_PGRP, getpgrp(), 0, 1);
	/* 2: datagram socket, process owner (F_SETOWN), SIGIO */
	owned_fd[2] = sk2[0];
	if (fcntl(sk2[0], F_SETOWN, getpid()) || fcntl(sk2[0], F_SETFL, O_ASYNC | O_RDWR))
		wl_die("F_SETOWN");
	/* 3: pipe write end: an owner and a signal but no O_ASYNC (nothing is sent) */
	owned_fd[3] = p2[1];
	set_owner(p2[1], F_OWNER_PID, getpid(), SIGUSR2, 0);
	/* 4: pipe read end: O_ASYNC without an owner (nothing is sent) */
	owned_fd[4] = p2[0];
	if (fcntl(p2[0], F_SETFL, O_ASYNC))
		wl_die("O_ASYNC");
	/* owner-user: owners set by an unprivileged process (the kernel keeps its uid/euid) */
	if (as_user && (setresgid(1000, 1000, 1000) || setresuid(1000, 1000, 1000)))
		wl_die("setresuid");
	for (i = 0; i < OWNED; i++)
		owner_state(owned_fd[i], &before[i]);
	/* an O_PATH fd has no owner (fcntl refuses to look): it is kept as it is */
	opath = open("/", O_PATH | O_DIRECTORY);
	opath_fl = fcntl(opath, F_GETFL);
	if (opath < 0 || opath_fl < 0)
		wl_die("O_PATH");
	wl_ready();
	wl_wait();

	for (i = 0; i < OWNED; i++) {
		owner_state(owned_fd[i], &after);
		wl_check(after.fl == before[i].fl, "fd %d: F_GETFL %#x, was %#x", owned_fd[i], after.fl, before[i].fl);
		wl_check(after.type == before[i].type && after.owner == before[i].owner,
			 "fd %d: owner type %d id %d, was type %d id %d", owned_fd[i], after.type, after.owner,
			 before[i].type, before[i].owner);
		wl_check(after.sig == before[i].sig, "fd %d: F_GETSIG %d, was %d", owned_fd[i], after.sig,
			 before[i].sig);
		wl_check(!strcmp(after.flags, before[i].flags), "fd %d: fdinfo '%s', was '%s'", owned_fd[i],
			 after.flags, before[i].flags);
	}
	wl_check(fcntl(opath, F_GETFL) == opath_fl, "O_PATH fd: F_GETFL %#o, was %#o", fcntl(opath, F_GETFL), opath_fl);
	/* delivery: one event on each fd that has O_ASYNC and an owner */
	if (write(p1[1], &c, 1) != 1 || write(sk[1], &c, 1) != 1 || write(p2[1], &c, 1) != 1)
		wl_die("write");
	for (i = 0; i < 200 && !(got_sig[0] && got_sig[1]); i++)
		usleep(1000);
	wl_check(got_sig[0] == 1 && got_signo[0] == sigrt && got_fd[0] == p1[0] && got_code[0] == POLL_IN,
		 "pipe F_SETSIG: %d signal(s), signo %d si_fd %d si_code %d (want 1, %d, %d, %d)", got_sig[0],
		 got_signo[0], got_fd[0], got_code[0], sigrt, p1[0], POLL_IN);
	wl_check(got_sig[1] >= 1 && got_signo[1] == SIGIO, "socket SIGIO to the process group: %d signal(s)",
		 got_sig[1]);
	memset((void *)got_sig, 0, sizeof(got_sig));
	if (send(sk2[1], &c, 1, 0) != 1)
		wl_die("send");
	for (i = 0; i < 200 && !got_sig[2]; i++)
		usleep(1000);
	wl_check(got_sig[2] >= 1, "datagram socket: no SIGIO for its F_SETOWN owner");
	return wl_finish();
}

/* --- memfd ---------------------------------------------------------------- */

static int mode_memfd(void)
{
	int fds[4], i, mfd;
	struct { int fl; off_t pos; struct stat st; char flags[64]; } before[4], after;
	char path[64], info[FDINFO_MAX], buf[32];

	mfd = memfd_create("fdattrs", MFD_ALLOW_SEALING);
	if (mfd < 0 || write(mfd, "0123456789", 10) != 10)
		wl_die("memfd");
	snprintf(path, sizeof(path), "/proc/self/fd/%d", mfd);
	fds[0] = mfd;
	fds[1] = open(path, O_RDONLY);
	fds[2] = open(path, O_WRONLY | O_APPEND);
	fds[3] = open(path, O_RDWR | O_NONBLOCK);
	if (fds[1] < 0 || fds[2] < 0 || fds[3] < 0)
		wl_die("reopen memfd");
	if (fcntl(mfd, F_SETFL, O_APPEND | O_NONBLOCK) || lseek(fds[1], 3, SEEK_SET) != 3 ||
	    lseek(fds[3], 7, SEEK_SET) != 7)
		wl_die("memfd flags");
	for (i = 0; i < 4; i++) {
		before[i].fl = fcntl(fds[i], F_GETFL);
		before[i].pos = lseek(fds[i], 0, SEEK_CUR);
		fstat(fds[i], &before[i].st);
		fdinfo(fds[i], info, sizeof(info));
		fdinfo_line(info, "flags:", before[i].flags, sizeof(before[i].flags));
	}
	wl_ready();
	wl_wait();

	for (i = 0; i < 4; i++) {
		after.fl = fcntl(fds[i], F_GETFL);
		after.pos = lseek(fds[i], 0, SEEK_CUR);
		fstat(fds[i], &after.st);
		fdinfo(fds[i], info, sizeof(info));
		fdinfo_line(info, "flags:", after.flags, sizeof(after.flags));
		wl_check(after.fl == before[i].fl, "memfd fd %d: F_GETFL %#o, was %#o", i, after.fl, before[i].fl);
		wl_check(!strcmp(after.flags, before[i].flags), "memfd fd %d: fdinfo '%s', was '%s'", i, after.flags,
			 before[i].flags);
		wl_check(after.pos == before[i].pos, "memfd fd %d: pos %ld, was %ld", i, (long)after.pos,
			 (long)before[i].pos);
		wl_check(after.st.st_mode == before[i].st.st_mode && after.st.st_size == 10, "memfd fd %d: mode %o size %ld",
			 i, after.st.st_mode, (long)after.st.st_size);
	}
	for (i = 1; i < 4; i++) {
		struct stat a, b;

		fstat(fds[0], &a);
		fstat(fds[i], &b);
		wl_check(a.st_ino == b.st_ino && a.st_dev == b.st_dev, "memfd fd %d is another object", i);
	}
	/* behaviour: read-only refuses writes, write-only refuses reads, O_APPEND appends */
	wl_check(write(fds[1], "x", 1) < 0 && errno == EBADF, "read-only memfd fd accepts writes");
	wl_check(read(fds[2], buf, 1) < 0 && errno == EBADF, "write-only memfd fd can be read");
	if (lseek(fds[2], 0, SEEK_SET) || write(fds[2], "AB", 2) != 2 || write(fds[0], "C", 1) != 1)
		wl_die("append");
	wl_check(pread(fds[1], buf, 13, 0) == 13 && !memcmp(buf, "0123456789ABC", 13), "memfd contents '%.13s'",
		 buf);
	return wl_finish();
}

/* --- pipesize ------------------------------------------------------------- */

#define PIPES 4
static int mode_pipesize(void)
{
	/* full pipes of one page and of 1 MiB, a part-filled big one, a default one */
	static const int sizes[PIPES] = { 4096, 1 << 20, 1 << 19, 65536 };
	static const int fill[PIPES] = { 4096, 1 << 20, 300001, 10 };
	static char data[PIPES][1 << 20], back[1 << 20];
	int p[PIPES][2], i, n, got;

	for (i = 0; i < PIPES; i++) {
		if (pipe(p[i]) || fcntl(p[i][1], F_SETPIPE_SZ, sizes[i]) < 0)
			wl_die("pipe");
		wl_fill(data[i], fill[i], i + 1);
		fcntl(p[i][1], F_SETFL, O_NONBLOCK);
		for (n = 0; n < fill[i]; n += got) {
			/* small writes: the pipe's pages are shared by several writes */
			got = write(p[i][1], data[i] + n, fill[i] - n < 512 ? fill[i] - n : 512);
			if (got <= 0)
				wl_die("fill pipe");
		}
		fcntl(p[i][1], F_SETFL, 0);
	}
	wl_ready();
	wl_wait();

	for (i = 0; i < PIPES; i++) {
		int size = fcntl(p[i][0], F_GETPIPE_SZ), queued = -1;

		ioctl(p[i][0], FIONREAD, &queued);
		wl_check(size == sizes[i], "pipe %d: F_GETPIPE_SZ %d, was %d", i, size, sizes[i]);
		wl_check(queued == fill[i], "pipe %d: %d bytes queued, was %d", i, queued, fill[i]);
		fcntl(p[i][0], F_SETFL, O_NONBLOCK);
		for (n = 0; n < fill[i]; n += got) {
			got = read(p[i][0], back + n, fill[i] - n);
			if (got <= 0)
				break;
		}
		wl_check(n == fill[i] && !memcmp(back, data[i], fill[i]), "pipe %d: contents differ (%d bytes)", i, n);
		wl_check(read(p[i][0], back, 1) < 0 && errno == EAGAIN, "pipe %d: more bytes than written", i);
	}
	return wl_finish();
}

/* --- unixperm ------------------------------------------------------------- */

static int mode_unixperm(void)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	struct stat before[2], after;
	static const char *names[2] = { "sock-a", "sock-b" };
	int s[2], i;

	for (i = 0; i < 2; i++) {
		snprintf(a.sun_path, sizeof(a.sun_path), "%s", names[i]);
		s[i] = socket(AF_UNIX, i ? SOCK_DGRAM : SOCK_STREAM, 0);
		if (s[i] < 0 || bind(s[i], (struct sockaddr *)&a, sizeof(a)) || (!i && listen(s[i], 3)))
			wl_die("bind");
	}
	if (chmod(names[0], 0640) || chown(names[0], 1234, 5678) || chmod(names[1], 0711) ||
	    chown(names[1], 4321, 0))
		wl_die("chmod/chown");
	for (i = 0; i < 2; i++)
		stat(names[i], &before[i]);
	wl_ready();
	wl_wait();

	for (i = 0; i < 2; i++) {
		if (stat(names[i], &after)) {
			wl_fail("%s: %s", names[i], strerror(errno));
			continue;
		}
		wl_check(after.st_mode == before[i].st_mode, "%s: mode %o, was %o", names[i], after.st_mode,
			 before[i].st_mode);
		wl_check(after.st_uid == before[i].st_uid && after.st_gid == before[i].st_gid,
			 "%s: owner %d:%d, was %d:%d", names[i], after.st_uid, after.st_gid, before[i].st_uid,
			 before[i].st_gid);
	}
	return wl_finish();
}

/* --- ptyowner ------------------------------------------------------------- */

static int mode_ptyowner(void)
{
	int master, slave, slave2;
	struct stat before, after, before2, after2;
	char name[64], name2[64];

	if (openpty(&master, &slave, name, NULL, NULL) || fchown(slave, 1234, 5678) || fchmod(slave, 0604))
		wl_die("openpty");
	/* a second pty left as devpts made it */
	if (openpty(&master, &slave2, name2, NULL, NULL))
		wl_die("openpty");
	fstat(slave, &before);
	fstat(slave2, &before2);
	wl_ready();
	wl_wait();

	fstat(slave, &after);
	fstat(slave2, &after2);
	wl_check(after.st_mode == before.st_mode, "%s: mode %o, was %o", name, after.st_mode, before.st_mode);
	wl_check(after.st_uid == before.st_uid && after.st_gid == before.st_gid, "%s: owner %d:%d, was %d:%d", name,
		 after.st_uid, after.st_gid, before.st_uid, before.st_gid);
	wl_check(after.st_rdev == before.st_rdev, "%s: rdev %lx, was %lx", name, (long)after.st_rdev,
		 (long)before.st_rdev);
	wl_check(after.st_mtim.tv_sec == before.st_mtim.tv_sec && after.st_atim.tv_sec == before.st_atim.tv_sec,
		 "%s: atime/mtime %ld/%ld, was %ld/%ld", name, (long)after.st_atim.tv_sec, (long)after.st_mtim.tv_sec,
		 (long)before.st_atim.tv_sec, (long)before.st_mtim.tv_sec);
	wl_check(after2.st_mode == before2.st_mode && after2.st_uid == before2.st_uid &&
		 after2.st_gid == before2.st_gid, "%s: %o %d:%d, was %o %d:%d", name2, after2.st_mode, after2.st_uid,
		 after2.st_gid, before2.st_mode, before2.st_uid, before2.st_gid);
	return wl_finish();
}

/* --- inotify -------------------------------------------------------------- */

#define WATCHES 100
static int mode_inotify(void)
{
	static char before[FDINFO_MAX], after[FDINFO_MAX];
	char name[32];
	int in, i, wd;

	if (mkdir("w", 0700))
		wl_die("mkdir");
	in = inotify_init1(IN_NONBLOCK);
	if (in < 0)
		wl_die("inotify_init1");
	for (i = 0; i < WATCHES; i++) {
		snprintf(name, sizeof(name), "w/%d", i);
		if (close(open(name, O_CREAT | O_WRONLY, 0600)))
			wl_die("create");
		wd = inotify_add_watch(in, name, (i % 3 ? IN_MODIFY : IN_ATTRIB | IN_CLOSE_WRITE) |
				       (i % 5 ? 0 : IN_ONESHOT) | (i % 7 ? 0 : IN_EXCL_UNLINK));
		if (wd < 0)
			wl_die("inotify_add_watch");
		if (i % 10 == 9 && inotify_rm_watch(in, wd))
			wl_die("inotify_rm_watch");
	}
	while (read(in, before, sizeof(before)) > 0)
		;
	fdinfo(in, before, sizeof(before));
	wl_ready();
	wl_wait();

	fdinfo(in, after, sizeof(after));
	/* pos: and the like are the same; the watch lines must be identical (same order too) */
	wl_check(!strcmp(strstr(after, "inotify") ?: "", strstr(before, "inotify") ?: ""),
		 "inotify fdinfo differs:\n--- before\n%.400s\n--- after\n%.400s", strstr(before, "inotify") ?: "",
		 strstr(after, "inotify") ?: "");
	if (close(open("w/3", O_WRONLY | O_APPEND)) || write(open("w/4", O_WRONLY), "x", 1) != 1)
		wl_die("touch");
	i = read(in, after, sizeof(after));
	wl_check(i > 0, "no inotify event after restore");
	return wl_finish();
}

/* --- ttys ----------------------------------------------------------------- */

#define TTYS 4
static int tty_nr(void)
{
	char stat[1024], *p;
	int nr = -1;

	if (wl_read_file("/proc/self/stat", stat, sizeof(stat)) > 0 && (p = strrchr(stat, ')')))
		sscanf(p + 2, "%*c %*d %*d %*d %d", &nr);
	return nr;
}

static int mode_ttys(void)
{
	static const char *paths[TTYS] = { "/dev/console", "/dev/tty1", "pty master", "pty slave" };
	struct { struct stat st; int fl; struct termios t; } before[TTYS], after;
	struct sigaction sa;
	int fds[TTYS], i;

	fds[0] = open(paths[0], O_RDWR | O_NOCTTY | O_NONBLOCK);
	fds[1] = open(paths[1], O_RDONLY | O_NOCTTY);
	if (fds[0] < 0 || fds[1] < 0 || openpty(&fds[2], &fds[3], NULL, NULL, NULL))
		wl_die("open terminals");
	/* the pty master signals its owner (F_SETSIG: with si_fd) when the slave writes */
	owned_fd[0] = fds[2];
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_sigio;
	sa.sa_flags = SA_SIGINFO | SA_RESTART;
	if (sigaction(SIGRTMIN + 3, &sa, NULL) || fcntl(fds[2], F_SETFL, O_ASYNC | O_NONBLOCK) ||
	    fcntl(fds[2], F_SETOWN, getpid()) || fcntl(fds[2], F_SETSIG, SIGRTMIN + 3))
		wl_die("pty O_ASYNC");
	for (i = 0; i < TTYS; i++) {
		fstat(fds[i], &before[i].st);
		before[i].fl = fcntl(fds[i], F_GETFL);
		if (tcgetattr(fds[i], &before[i].t))
			wl_die("tcgetattr");
	}
	wl_check(tty_nr() == 0, "a controlling terminal before the dump: %#x", tty_nr());
	wl_ready();
	wl_wait();

	for (i = 0; i < TTYS; i++) {
		fstat(fds[i], &after.st);
		after.fl = fcntl(fds[i], F_GETFL);
		wl_check(after.st.st_rdev == before[i].st.st_rdev && after.st.st_mode == before[i].st.st_mode,
			 "%s: rdev %#lx mode %o, was %#lx %o", paths[i], (long)after.st.st_rdev, after.st.st_mode,
			 (long)before[i].st.st_rdev, before[i].st.st_mode);
		wl_check(after.fl == before[i].fl, "%s: F_GETFL %#o, was %#o", paths[i], after.fl, before[i].fl);
		wl_check(!tcgetattr(fds[i], &after.t) && after.t.c_iflag == before[i].t.c_iflag &&
			 after.t.c_oflag == before[i].t.c_oflag && after.t.c_cflag == before[i].t.c_cflag &&
			 after.t.c_lflag == before[i].t.c_lflag && !memcmp(after.t.c_cc, before[i].t.c_cc, NCCS),
			 "%s: termios differ", paths[i]);
	}
	wl_check(tty_nr() == 0, "a controlling terminal after restore: %#x", tty_nr());
	wl_check(fcntl(fds[2], F_GETOWN) == getpid() && fcntl(fds[2], F_GETSIG) == SIGRTMIN + 3,
		 "pty master owner %d signal %d", fcntl(fds[2], F_GETOWN), fcntl(fds[2], F_GETSIG));
	wl_check(write(fds[3], "x\n", 2) == 2, "write to the pty slave");
	for (i = 0; i < 500 && !got_sig[0]; i++)
		usleep(1000);
	wl_check(got_sig[0] >= 1 && got_fd[0] == fds[2], "pty master: %d signal(s), si_fd %d (want fd %d)",
		 got_sig[0], got_fd[0], fds[2]);
	wl_check(read(fds[2], &after, 1) == 1, "the pty does not carry bytes");
	return wl_finish();
}

/* --- procfiles, procdead ---------------------------------------------------- */

static int mode_procfiles(void)
{
	static const char *names[4] = { "/proc/self/stat", "/proc/self/status", "/proc/sys/kernel/ostype",
					"/proc/sys/kernel/hostname" };
	static const int reads[4] = { 5, 20, 3, 4096 };
	char buf[4096], want[64];
	off_t pos[4];
	int fds[4], dir, i, n;

	for (i = 0; i < 4; i++) {
		fds[i] = open(names[i], O_RDONLY);
		if (fds[i] < 0 || read(fds[i], buf, reads[i]) <= 0)
			wl_die(names[i]);
		pos[i] = lseek(fds[i], 0, SEEK_CUR);
	}
	/* the hostname file read to its end, then moved past it */
	if (read(fds[3], buf, sizeof(buf)) != 0 || lseek(fds[3], 1000, SEEK_SET) != 1000)
		wl_die("hostname EOF");
	pos[3] = 1000;
	dir = open("/proc/self", O_RDONLY | O_DIRECTORY);
	if (dir < 0)
		wl_die("/proc/self");
	wl_ready();
	wl_wait();

	for (i = 0; i < 4; i++)
		wl_check(lseek(fds[i], 0, SEEK_CUR) == pos[i], "%s: offset %ld, was %ld", names[i],
			 (long)lseek(fds[i], 0, SEEK_CUR), (long)pos[i]);
	n = pread(fds[0], buf, sizeof(buf) - 1, 0);
	snprintf(want, sizeof(want), "%d (fdattrs) ", (int)getpid());
	wl_check(n > 0 && !strncmp(buf, want, strlen(want)), "/proc/self/stat fd shows '%.30s'", n > 0 ? buf : "");
	n = pread(fds[1], buf, sizeof(buf) - 1, 0);
	buf[n > 0 ? n : 0] = '\0';
	snprintf(want, sizeof(want), "\nPid:\t%d\n", (int)getpid());
	wl_check(strstr(buf, want) != NULL, "/proc/self/status fd is not this process's");
	n = read(fds[2], buf, sizeof(buf));
	wl_check(n == 3 && !memcmp(buf, "ux\n", 3), "ostype from offset 3: %d bytes '%.*s'", n, n > 0 ? n : 0, buf);
	wl_check(read(fds[3], buf, sizeof(buf)) == 0, "hostname fd is no longer at its end");
	n = openat(dir, "comm", O_RDONLY);
	wl_check(n >= 0 && read(n, buf, 8) == 8 && !memcmp(buf, "fdattrs\n", 8), "/proc/self folder fd: comm");
	return wl_finish();
}

static int mode_procdead(void)
{
	char path[64];
	pid_t child = fork();
	int dir;

	if (child < 0)
		wl_die("fork");
	if (!child)
		_exit(0);
	snprintf(path, sizeof(path), "/proc/%d", (int)child);
	dir = open(path, O_RDONLY | O_DIRECTORY);
	if (dir < 0 || waitpid(child, NULL, 0) != child)
		wl_die("child");
	wl_ready();
	wl_wait();
	wl_check(openat(dir, "comm", O_RDONLY) < 0 && errno == ESRCH, "the dead child's folder works again");
	return wl_finish();
}

static int mode_packets(void)
{
	char buf[16];
	int p[2];

	if (pipe2(p, O_DIRECT) || write(p[1], "one", 3) != 3 || write(p[1], "two!", 4) != 4)
		wl_die("packet pipe");
	wl_ready();
	wl_wait();
	wl_check(read(p[0], buf, sizeof(buf)) == 3 && read(p[0], buf, sizeof(buf)) == 4, "packets merged");
	return wl_finish();
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "";

	wl_setup(0);
	if (!strcmp(mode, "owner") || !strcmp(mode, "owner-user"))
		return mode_owner(!strcmp(mode, "owner-user"));
	if (!strcmp(mode, "memfd"))
		return mode_memfd();
	if (!strcmp(mode, "pipesize"))
		return mode_pipesize();
	if (!strcmp(mode, "unixperm"))
		return mode_unixperm();
	if (!strcmp(mode, "ptyowner"))
		return mode_ptyowner();
	if (!strcmp(mode, "inotify"))
		return mode_inotify();
	if (!strcmp(mode, "ttys"))
		return mode_ttys();
	if (!strcmp(mode, "procfiles"))
		return mode_procfiles();
	if (!strcmp(mode, "procdead"))
		return mode_procdead();
	if (!strcmp(mode, "packets"))
		return mode_packets();
	wl_say("FAIL: unknown mode '%s'", mode);
	return 2;
}
