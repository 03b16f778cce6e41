/*
 * scmrights: files in flight on unix sockets (SCM_RIGHTS), not received yet;
 * argv[1] "packets" or "stream".
 *   packets  dgram: "D1" carrying G, a file opened O_APPEND at offset 3
 *            whose fd was closed since (only the messages hold it), then
 *            "D2" carrying G again and F (held by an fd here, offset 5);
 *            seqpacket: "Q1" carrying F and /dev/null, then "Q2" carrying
 *            one end of a datagram socketpair (both ends still held here);
 *            a datagram socket whose peer sent "E1" carrying F, then was
 *            closed: still connected (getpeername answers), its next send
 *            fails with ECONNREFUSED and disconnects it; a seqpacket socket
 *            bound to the relative name "rel.sock" in "sub" (then the
 *            process went back up, keeping a directory fd on sub), never
 *            connected
 *   stream   "A1" sent alone, then "B1" carrying F and /dev/null, then
 *            "C1" carrying one end of a datagram socketpair. Where the
 *            segment carrying files begins only the kmod backend can see:
 *            the ptrace backend refuses this one by name.
 * After restore every message comes in the same order with the same bytes
 * and boundaries (a 1-byte read of the stream brings no files; the next
 * read stops after the segment that carries them), and every file received
 * is the one sent: F is the very description this process holds (a seek on
 * one moves the other), G has its path, flags and offset and both copies of
 * it are one description, /dev/null is the device, the socket is the one
 * held here (what is sent to its peer is read through either).
 */
#include "wl.h"
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>

static int send_with(int sock, const char *data, const int *fds, int nfds)
{
	char control[CMSG_SPACE(4 * sizeof(int))];
	struct iovec iov = { (void *)data, strlen(data) };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
	struct cmsghdr *cmsg;

	if (nfds) {
		memset(control, 0, sizeof(control));
		msg.msg_control = control;
		msg.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
		cmsg = CMSG_FIRSTHDR(&msg);
		cmsg->cmsg_level = SOL_SOCKET;
		cmsg->cmsg_type = SCM_RIGHTS;
		cmsg->cmsg_len = CMSG_LEN(nfds * sizeof(int));
		memcpy(CMSG_DATA(cmsg), fds, nfds * sizeof(int));
	}
	return sendmsg(sock, &msg, 0) == (ssize_t)strlen(data) ? 0 : -1;
}

/* One message: its bytes (NUL-terminated) and the files it brought; returns how many. */
static int recv_with(int sock, char *data, size_t size, int *fds, int max)
{
	char control[CMSG_SPACE(8 * sizeof(int))];
	struct iovec iov = { data, size - 1 };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control,
			      .msg_controllen = sizeof(control) };
	struct cmsghdr *cmsg;
	ssize_t n = recvmsg(sock, &msg, MSG_DONTWAIT);
	int got = 0;

	data[n > 0 ? n : 0] = 0;
	if (n < 0)
		return -1;
	for (cmsg = CMSG_FIRSTHDR(&msg); cmsg; cmsg = CMSG_NXTHDR(&msg, cmsg))
		if (cmsg->cmsg_level == SOL_SOCKET && cmsg->cmsg_type == SCM_RIGHTS) {
			int count = (cmsg->cmsg_len - CMSG_LEN(0)) / sizeof(int);

			if (count > max - got)
				count = max - got;
			memcpy(fds + got, CMSG_DATA(cmsg), count * sizeof(int));
			got += count;
		}
	return got;
}

static void expect(int sock, const char *what, size_t size, const char *data, int nfds, int *fds)
{
	char buf[64];
	int got = recv_with(sock, buf, size + 1, fds, 8);

	wl_check(got == nfds && !strcmp(buf, data), "%s: got '%s' with %d files, want '%s' with %d",
		 what, buf, got, data, nfds);
}

static void same_description(int a, int b, const char *what)
{
	off_t was = lseek(a, 0, SEEK_CUR);

	wl_check(lseek(b, 11, SEEK_SET) == 11 && lseek(a, 0, SEEK_CUR) == 11, "%s: not one description", what);
	lseek(b, was, SEEK_SET);
}

static void check_file(int fd, const char *name, int flags, off_t pos, const char *what)
{
	char path[64], link[512], cwd[400];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	n = readlink(path, link, sizeof(link) - 1);
	link[n > 0 ? n : 0] = 0;
	if (!getcwd(cwd, sizeof(cwd)))
		cwd[0] = 0;
	snprintf(path, sizeof(path), "/%s", name);
	wl_check(n > 0 && !strncmp(link, cwd, strlen(cwd)) && !strcmp(link + strlen(cwd), path),
		 "%s: link '%s'", what, link);
	wl_check((fcntl(fd, F_GETFL) & (O_ACCMODE | O_APPEND)) == flags, "%s: flags %#x", what, fcntl(fd, F_GETFL));
	wl_check(lseek(fd, 0, SEEK_CUR) == pos, "%s: offset %ld, want %ld", what, (long)lseek(fd, 0, SEEK_CUR),
		 (long)pos);
}

static void check_pair_end(int received, int pair[2], const char *what)
{
	char buf[16];

	wl_check(send(pair[0], "ping", 4, 0) == 4 && recv(received, buf, sizeof(buf), MSG_DONTWAIT) == 4,
		 "%s: the socket received is not the other end of the pair", what);
	wl_check(send(pair[0], "pong", 4, 0) == 4 && recv(pair[1], buf, sizeof(buf), MSG_DONTWAIT) == 4,
		 "%s: the socket received is not the one held here", what);
}

static void check_null(int fd, const char *what)
{
	struct stat nb;

	wl_check(!fstat(fd, &nb) && S_ISCHR(nb.st_mode) && nb.st_rdev == makedev(1, 3),
		 "%s: the file is not /dev/null", what);
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "";
	int st[2], dg[2], sq[2], pair[2], lone[2], f, g, null, fds[8], rel = -1, sub = -1;
	struct sockaddr_un peer;
	socklen_t len = sizeof(peer);
	struct stat sb, nb;
	char buf[16];

	wl_setup(0);
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, st) || socketpair(AF_UNIX, SOCK_DGRAM, 0, dg) ||
	    socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sq) || socketpair(AF_UNIX, SOCK_DGRAM, 0, pair) ||
	    socketpair(AF_UNIX, SOCK_DGRAM, 0, lone))
		wl_die("socketpair");
	f = open("f.txt", O_RDWR | O_CREAT, 0644);
	g = open("g.txt", O_WRONLY | O_CREAT | O_APPEND, 0600);
	null = open("/dev/null", O_RDONLY);
	if (f < 0 || g < 0 || null < 0)
		wl_die("open");
	if (write(f, "0123456789abcdef", 16) != 16 || lseek(f, 5, SEEK_SET) != 5 || write(g, "xyz", 3) != 3)
		wl_die("write");
	fds[0] = f;
	fds[1] = null;
	if (!strcmp(mode, "stream")) {
		if (send_with(st[0], "A1", NULL, 0) || send_with(st[0], "B1", fds, 2) ||
		    send_with(st[0], "C1", &pair[1], 1))
			wl_die("send stream");
	} else if (!strcmp(mode, "packets")) {
		if (send_with(sq[0], "Q1", fds, 2) || send_with(sq[0], "Q2", &pair[1], 1))
			wl_die("send seqpacket");
		fds[0] = g;
		fds[1] = f;
		if (send_with(dg[0], "D1", &g, 1) || send_with(dg[0], "D2", fds, 2))
			wl_die("send dgram");
		if (send_with(lone[1], "E1", &f, 1) || close(lone[1]))
			wl_die("send dgram, then close");
		memset(&peer, 0, sizeof(peer));
		peer.sun_family = AF_UNIX;
		strcpy(peer.sun_path, "rel.sock");
		rel = socket(AF_UNIX, SOCK_SEQPACKET, 0);
		if (rel < 0 || mkdir("sub", 0755) || chdir("sub") ||
		    bind(rel, (struct sockaddr *)&peer, sizeof(peer)) || chdir(".."))
			wl_die("bind rel.sock");
		sub = open("sub", O_RDONLY | O_DIRECTORY);
		if (sub < 0)
			wl_die("open sub");
	} else {
		errno = EINVAL;
		wl_die(mode);
	}
	close(g);
	close(null);
	wl_ready();
	wl_wait();

	if (!strcmp(mode, "stream")) {
		/* a 1-byte read brings no files, the next stops after the segment with them */
		expect(st[1], "stream first byte", 1, "A", 0, fds);
		expect(st[1], "stream B1", 32, "1B1", 2, fds);
		if (wl_failures)
			return wl_finish();
		same_description(f, fds[0], "stream: F");
		check_null(fds[1], "stream");
		expect(st[1], "stream C1", 32, "C1", 1, fds);
		if (wl_failures)
			return wl_finish();
		check_pair_end(fds[0], pair, "stream");
		wl_check(recv(st[1], buf, sizeof(buf), MSG_DONTWAIT) < 0 && errno == EAGAIN, "stream: more queued");
		check_file(f, "f.txt", O_RDWR, 5, "F");
		return wl_finish();
	}
	/* dgram: G only in flight, twice; F */
	expect(dg[1], "dgram D1", 32, "D1", 1, fds);
	expect(dg[1], "dgram D2", 32, "D2", 2, fds + 1);
	if (wl_failures)
		return wl_finish();
	check_file(fds[0], "g.txt", O_WRONLY | O_APPEND, 3, "dgram: G");
	wl_check(!fstat(fds[0], &sb) && !fstat(fds[1], &nb) && sb.st_ino == nb.st_ino, "dgram: G twice");
	wl_check(lseek(fds[0], 1, SEEK_SET) == 1 && lseek(fds[1], 0, SEEK_CUR) == 1,
		 "dgram: the two copies of G are two descriptions");
	same_description(f, fds[2], "dgram: F");
	check_file(f, "f.txt", O_RDWR, 5, "F");
	/* seqpacket */
	expect(sq[1], "seqpacket Q1", 32, "Q1", 2, fds);
	if (wl_failures)
		return wl_finish();
	same_description(f, fds[0], "seqpacket: F");
	check_null(fds[1], "seqpacket");
	expect(sq[1], "seqpacket Q2", 32, "Q2", 1, fds);
	if (!wl_failures)
		check_pair_end(fds[0], pair, "seqpacket");
	wl_check(recv(dg[1], buf, sizeof(buf), MSG_DONTWAIT) < 0 && errno == EAGAIN, "dgram: more queued");
	/* the datagram socket whose peer was closed */
	wl_check(!getpeername(lone[0], (struct sockaddr *)&peer, &len) && len == sizeof(sa_family_t),
		 "closed peer: getpeername: %s, length %d", strerror(errno), (int)len);
	expect(lone[0], "closed peer E1", 32, "E1", 1, fds);
	if (!wl_failures)
		same_description(f, fds[0], "closed peer: F");
	wl_check(send(lone[0], "x", 1, 0) < 0 && errno == ECONNREFUSED, "closed peer: first send: %s",
		 strerror(errno));
	wl_check(send(lone[0], "x", 1, 0) < 0 && errno == ENOTCONN, "closed peer: second send: %s",
		 strerror(errno));
	/* the relative name */
	len = sizeof(peer);
	memset(&peer, 0, sizeof(peer));
	wl_check(!getsockname(rel, (struct sockaddr *)&peer, &len) && !strcmp(peer.sun_path, "rel.sock"),
		 "relative name: getsockname '%s'", peer.sun_path);
	wl_check(!fstatat(sub, "rel.sock", &sb, 0) && S_ISSOCK(sb.st_mode), "sub/rel.sock is not a socket");
	wl_check(access("rel.sock", F_OK) < 0, "rel.sock made in the working directory");
	{
		int probe = socket(AF_UNIX, SOCK_SEQPACKET, 0);

		strcpy(peer.sun_path, "sub/rel.sock");
		wl_check(connect(probe, (struct sockaddr *)&peer, sizeof(peer)) < 0 && errno == ECONNREFUSED,
			 "sub/rel.sock: connect: %s", strerror(errno));
		close(probe);
	}
	return wl_finish();
}
