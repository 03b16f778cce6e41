/*
 * unixsk: AF_UNIX sockets with state that must survive a checkpoint.
 *
 *   pairs   a socketpair of each type (stream, dgram, seqpacket) with data
 *           queued both ways (several writes; message boundaries, an empty
 *           datagram); a stream pair shut down for writing one way; a
 *           stream socket whose peer was closed after sending.
 *   listen  a stream listener on a relative path and a seqpacket listener
 *           on an abstract name, each with an accepted connection (data
 *           queued both ways) and a connection not yet accepted.
 *   dgram   a datagram server bound to a path with datagrams queued from two
 *           named clients (path and abstract), one of them connected.
 *   tree    a parent and its child talking over a stream and a seqpacket
 *           socketpair (the parent keeps an inherited copy of the child's
 *           end too), data queued both ways.
 *
 *   pending-data    connections not yet accepted whose clients sent data
 *                   (kmod backend only: user space cannot read it).
 *   outside FD      holds a socket whose peer the test keeps (refused).
 *   ext-dgram NAME  a datagram socket connected to the test's server @NAME
 *                   (kept with --ext-unix-sk, reconnected by name).
 *
 * After restore: types, names (getsockname/getpeername), shutdown state and
 * queue contents exactly as queued, then every connection still works both
 * ways. ("listen" and "tree" print nothing extra; the harness only needs READY.)
 */
#include "wl.h"

#include <poll.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>

static char abstract_name[64];

static socklen_t make_addr(struct sockaddr_un *sa, const char *name, int abstract)
{
	size_t len = strlen(name);

	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	if (abstract) {
		memcpy(sa->sun_path + 1, name, len);
		return offsetof(struct sockaddr_un, sun_path) + 1 + len;
	}
	memcpy(sa->sun_path, name, len);
	return offsetof(struct sockaddr_un, sun_path) + len + 1;
}

/* Does the name `got` (from getsockname/getpeername) equal `name`? */
static int same_name(const struct sockaddr_un *got, socklen_t len, const char *name, int abstract)
{
	struct sockaddr_un want;
	socklen_t wlen = make_addr(&want, name, abstract);

	if (!abstract) /* the kernel may or may not count the NUL */
		return len >= wlen - 1 && !strcmp(got->sun_path, name);
	return len == wlen && !memcmp(got->sun_path, want.sun_path, wlen - offsetof(struct sockaddr_un, sun_path));
}

static void check_name(int fd, int peer, const char *name, int abstract, const char *what)
{
	struct sockaddr_un sa;
	socklen_t len = sizeof(sa);
	int r = peer ? getpeername(fd, (struct sockaddr *)&sa, &len) : getsockname(fd, (struct sockaddr *)&sa, &len);

	if (r) {
		wl_fail("%s: get%sname: %s", what, peer ? "peer" : "sock", strerror(errno));
		return;
	}
	if (!name)
		wl_check(len == offsetof(struct sockaddr_un, sun_path), "%s: %s name has length %d, want unnamed",
			 what, peer ? "peer" : "own", (int)len);
	else
		wl_check(same_name(&sa, len, name, abstract), "%s: %s name is not %s%s", what,
			 peer ? "peer" : "own", abstract ? "@" : "", name);
}

static void check_type(int fd, int type, const char *what)
{
	int got = -1;
	socklen_t len = sizeof(got);

	wl_check(!getsockopt(fd, SOL_SOCKET, SO_TYPE, &got, &len) && got == type, "%s: type %d, want %d",
		 what, got, type);
}

static void send_all(int fd, const char *msg, size_t len)
{
	if (send(fd, msg, len, 0) != (ssize_t)len)
		wl_die("send");
}

/* The next message (stream: exactly `len` bytes) is `want`; then nothing if `last`. */
static void expect(int fd, const char *want, size_t len, int last, const char *what)
{
	char buf[256];
	ssize_t n;

	memset(buf, 0, sizeof(buf));
	n = recv(fd, buf, len ? len : sizeof(buf), MSG_DONTWAIT);
	wl_check(n == (ssize_t)len && !memcmp(buf, want, len), "%s: read %zd bytes '%.*s', want '%.*s'", what, n,
		 n > 0 ? (int)n : 0, buf, (int)len, want);
	if (last) {
		n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
		wl_check(n < 0 && errno == EAGAIN, "%s: more queued than expected (%zd)", what, n);
	}
}

/* A new message each way still goes through. */
static void still_works(int a, int b, const char *what)
{
	send_all(a, "ping", 4);
	expect(b, "ping", 4, 1, what);
	send_all(b, "pong!", 5);
	expect(a, "pong!", 5, 1, what);
}

/* Queue "one", "" (datagrams only), "three" from a to b and "back" from b to a. */
static void fill_pair(int a, int b, int type)
{
	send_all(a, "one", 3);
	if (type != SOCK_STREAM)
		send_all(a, "", 0);
	send_all(a, "three", 5);
	send_all(b, "back", 4);
}

static void check_pair(int a, int b, int type, const char *what)
{
	check_type(a, type, what);
	check_type(b, type, what);
	if (type == SOCK_STREAM) {
		expect(b, "onethree", 8, 1, what);
	} else {
		expect(b, "one", 3, 0, what);
		expect(b, "", 0, 0, what);
		expect(b, "three", 5, 1, what);
	}
	expect(a, "back", 4, 1, what);
	still_works(a, b, what);
}

static int mode_pairs(void)
{
	static const int types[] = { SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET };
	int sp[3][2], sh[2], cl[2], i;
	char buf[16];

	for (i = 0; i < 3; i++) {
		if (socketpair(AF_UNIX, types[i], 0, sp[i]))
			wl_die("socketpair");
		fill_pair(sp[i][0], sp[i][1], types[i]);
	}
	/* shut down for writing one way, after data */
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sh) || send(sh[0], "bye", 3, 0) != 3 || shutdown(sh[0], SHUT_WR))
		wl_die("shutdown pair");
	/* the peer is gone; what it sent is still there, then end of file */
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, cl) || send(cl[1], "last words", 10, 0) != 10 || close(cl[1]))
		wl_die("closed pair");
	wl_ready();
	wl_wait();
	check_pair(sp[0][0], sp[0][1], SOCK_STREAM, "stream pair");
	check_pair(sp[1][0], sp[1][1], SOCK_DGRAM, "dgram pair");
	check_pair(sp[2][0], sp[2][1], SOCK_SEQPACKET, "seqpacket pair");
	for (i = 0; i < 3; i++) {
		check_name(sp[i][0], 0, NULL, 0, "socketpair");
		check_name(sp[i][0], 1, NULL, 0, "socketpair");
	}
	expect(sh[1], "bye", 3, 0, "shut pair");
	wl_check(recv(sh[1], buf, sizeof(buf), MSG_DONTWAIT) == 0, "shut pair: no end of file after the data");
	wl_check(send(sh[0], "x", 1, MSG_NOSIGNAL) < 0 && errno == EPIPE, "shut pair: the shut end can still send");
	send_all(sh[1], "reply", 5);
	expect(sh[0], "reply", 5, 1, "shut pair, other way");
	expect(cl[0], "last words", 10, 0, "closed peer");
	wl_check(recv(cl[0], buf, sizeof(buf), MSG_DONTWAIT) == 0, "closed peer: no end of file after the data");
	return wl_finish();
}

static int mode_listen(void)
{
	struct sockaddr_un sa;
	socklen_t len;
	int lst, lsq, c1, a1, p1, c2, a2, p2, n1, n2;

	snprintf(abstract_name, sizeof(abstract_name), "pyckpt-unixsk-%d", (int)getpid());
	lst = socket(AF_UNIX, SOCK_STREAM, 0);
	len = make_addr(&sa, "srv.sock", 0);
	if (lst < 0 || bind(lst, (struct sockaddr *)&sa, len) || listen(lst, 7))
		wl_die("stream listener");
	lsq = socket(AF_UNIX, SOCK_SEQPACKET, 0);
	len = make_addr(&sa, abstract_name, 1);
	if (lsq < 0 || bind(lsq, (struct sockaddr *)&sa, len) || listen(lsq, 5))
		wl_die("seqpacket listener");

	c1 = socket(AF_UNIX, SOCK_STREAM, 0);
	len = make_addr(&sa, "srv.sock", 0);
	if (c1 < 0 || connect(c1, (struct sockaddr *)&sa, len) || (a1 = accept(lst, NULL, NULL)) < 0)
		wl_die("stream connection");
	fill_pair(c1, a1, SOCK_STREAM);
	p1 = socket(AF_UNIX, SOCK_STREAM, 0);
	if (p1 < 0 || connect(p1, (struct sockaddr *)&sa, len))
		wl_die("pending stream connection");

	c2 = socket(AF_UNIX, SOCK_SEQPACKET, 0);
	len = make_addr(&sa, abstract_name, 1);
	if (c2 < 0 || connect(c2, (struct sockaddr *)&sa, len) || (a2 = accept(lsq, NULL, NULL)) < 0)
		wl_die("seqpacket connection");
	fill_pair(c2, a2, SOCK_SEQPACKET);
	p2 = socket(AF_UNIX, SOCK_SEQPACKET, 0);
	if (p2 < 0 || connect(p2, (struct sockaddr *)&sa, len))
		wl_die("pending seqpacket connection");

	wl_ready();
	wl_wait();
	check_name(lst, 0, "srv.sock", 0, "stream listener");
	check_name(lsq, 0, abstract_name, 1, "seqpacket listener");
	check_name(a1, 0, "srv.sock", 0, "accepted stream");
	check_name(c1, 1, "srv.sock", 0, "stream client");
	check_name(c1, 0, NULL, 0, "stream client");
	check_name(a2, 0, abstract_name, 1, "accepted seqpacket");
	check_name(c2, 1, abstract_name, 1, "seqpacket client");
	check_pair(c1, a1, SOCK_STREAM, "accepted stream");
	check_pair(c2, a2, SOCK_SEQPACKET, "accepted seqpacket");
	/* the pending connections are there to accept, and nothing else */
	if (fcntl(lst, F_SETFL, O_NONBLOCK) || fcntl(lsq, F_SETFL, O_NONBLOCK))
		wl_die("fcntl");
	n1 = accept(lst, NULL, NULL);
	n2 = accept(lsq, NULL, NULL);
	wl_check(n1 >= 0, "stream listener: no pending connection (%s)", strerror(errno));
	wl_check(n2 >= 0, "seqpacket listener: no pending connection (%s)", strerror(errno));
	wl_check(accept(lst, NULL, NULL) < 0 && errno == EAGAIN, "stream listener: extra connection");
	wl_check(accept(lsq, NULL, NULL) < 0 && errno == EAGAIN, "seqpacket listener: extra connection");
	if (n1 >= 0)
		still_works(p1, n1, "pending stream");
	if (n2 >= 0)
		still_works(p2, n2, "pending seqpacket");
	/* and new clients can connect */
	c1 = socket(AF_UNIX, SOCK_STREAM, 0);
	len = make_addr(&sa, "srv.sock", 0);
	wl_check(!connect(c1, (struct sockaddr *)&sa, len), "new stream client: %s", strerror(errno));
	return wl_finish();
}

static int bound_dgram(const char *name, int abstract)
{
	struct sockaddr_un sa;
	socklen_t len = make_addr(&sa, name, abstract);
	int fd = socket(AF_UNIX, SOCK_DGRAM, 0);

	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, len))
		wl_die("bind dgram");
	return fd;
}

static void expect_from(int fd, const char *want, const char *from, int abstract, const char *what)
{
	struct sockaddr_un sa;
	socklen_t len = sizeof(sa);
	char buf[64] = "";
	ssize_t n = recvfrom(fd, buf, sizeof(buf), MSG_DONTWAIT, (struct sockaddr *)&sa, &len);

	wl_check(n == (ssize_t)strlen(want) && !memcmp(buf, want, n), "%s: got '%.*s', want '%s'", what,
		 n > 0 ? (int)n : 0, buf, want);
	if (n >= 0)
		wl_check(same_name(&sa, len, from, abstract), "%s: '%s' not from %s%s", what, want,
			 abstract ? "@" : "", from);
}

static int mode_dgram(void)
{
	struct sockaddr_un sa;
	socklen_t len;
	int srv, c1, c2;
	char buf[16];

	snprintf(abstract_name, sizeof(abstract_name), "pyckpt-unixsk-c2-%d", (int)getpid());
	srv = bound_dgram("dgram.sock", 0);
	c1 = bound_dgram("c1.sock", 0);
	c2 = bound_dgram(abstract_name, 1);
	len = make_addr(&sa, "dgram.sock", 0);
	if (connect(c1, (struct sockaddr *)&sa, len))
		wl_die("connect c1");
	send_all(c1, "a-from-c1", 9);
	if (sendto(c2, "b-from-c2", 9, 0, (struct sockaddr *)&sa, len) != 9)
		wl_die("sendto");
	send_all(c1, "c-from-c1", 9);
	/* and one to c2 from the server */
	len = make_addr(&sa, abstract_name, 1);
	if (sendto(srv, "to-c2", 5, 0, (struct sockaddr *)&sa, len) != 5)
		wl_die("sendto c2");
	wl_ready();
	wl_wait();
	check_name(srv, 0, "dgram.sock", 0, "dgram server");
	check_name(c1, 0, "c1.sock", 0, "client 1");
	check_name(c1, 1, "dgram.sock", 0, "client 1");
	check_name(c2, 0, abstract_name, 1, "client 2");
	expect_from(srv, "a-from-c1", "c1.sock", 0, "server queue");
	expect_from(srv, "b-from-c2", abstract_name, 1, "server queue");
	expect_from(srv, "c-from-c1", "c1.sock", 0, "server queue");
	wl_check(recv(srv, buf, sizeof(buf), MSG_DONTWAIT) < 0 && errno == EAGAIN, "server: more queued");
	expect_from(c2, "to-c2", "dgram.sock", 0, "client 2 queue");
	send_all(c1, "again", 5);
	expect_from(srv, "again", "c1.sock", 0, "after restore");
	return wl_finish();
}

static int mode_tree(void)
{
	int st[2], sq[2], status;
	pid_t child;

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, st) || socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sq))
		wl_die("socketpair");
	fill_pair(st[0], st[1], SOCK_STREAM);
	child = fork();
	if (child < 0)
		wl_die("fork");
	if (!child) {
		close(st[0]);
		close(sq[0]);
		send_all(sq[1], "from-child", 10);
		wl_wait();
		expect(st[1], "onethree", 8, 1, "child stream");
		expect(sq[1], "from-parent", 11, 1, "child seqpacket");
		send_all(st[1], "child-after", 11);
		_exit(wl_failures ? 1 : 0);
	}
	send_all(sq[0], "from-parent", 11);
	/* sq[1] stays open here too: one socket held by both processes */
	{
		struct pollfd pfd = { .fd = sq[0], .events = POLLIN };

		if (poll(&pfd, 1, 10000) != 1) /* the child's message is queued */
			wl_die("poll");
	}
	wl_ready();
	wl_wait();
	expect(st[0], "back", 4, 1, "parent stream");
	expect(sq[0], "from-child", 10, 1, "parent seqpacket");
	kill(child, SIGTERM);
	wl_check(waitpid(child, &status, 0) == child && WIFEXITED(status) && !WEXITSTATUS(status),
		 "child status %#x", status);
	expect(st[0], "child-after", 11, 1, "parent stream after");
	send_all(sq[1], "shared", 6);
	expect(sq[0], "shared", 6, 1, "inherited end");
	return wl_finish();
}

/* Connections not yet accepted whose clients already sent data (stream, seqpacket). */
static int mode_pending_data(void)
{
	struct sockaddr_un sa;
	socklen_t len;
	int lst, lsq, p1, p2, n1, n2;

	snprintf(abstract_name, sizeof(abstract_name), "pyckpt-unixsk-pd-%d", (int)getpid());
	lst = socket(AF_UNIX, SOCK_STREAM, 0);
	len = make_addr(&sa, "pd.sock", 0);
	if (lst < 0 || bind(lst, (struct sockaddr *)&sa, len) || listen(lst, 4))
		wl_die("stream listener");
	p1 = socket(AF_UNIX, SOCK_STREAM, 0);
	if (p1 < 0 || connect(p1, (struct sockaddr *)&sa, len))
		wl_die("stream connect");
	send_all(p1, "early ", 6);
	send_all(p1, "bird", 4);
	lsq = socket(AF_UNIX, SOCK_SEQPACKET, 0);
	len = make_addr(&sa, abstract_name, 1);
	if (lsq < 0 || bind(lsq, (struct sockaddr *)&sa, len) || listen(lsq, 4))
		wl_die("seqpacket listener");
	p2 = socket(AF_UNIX, SOCK_SEQPACKET, 0);
	if (p2 < 0 || connect(p2, (struct sockaddr *)&sa, len))
		wl_die("seqpacket connect");
	send_all(p2, "first", 5);
	send_all(p2, "second", 6);
	wl_say("pending fds %d %d", p1, p2);
	wl_ready();
	wl_wait();
	if (fcntl(lst, F_SETFL, O_NONBLOCK) || fcntl(lsq, F_SETFL, O_NONBLOCK))
		wl_die("fcntl");
	n1 = accept(lst, NULL, NULL);
	n2 = accept(lsq, NULL, NULL);
	wl_check(n1 >= 0 && n2 >= 0, "no pending connection to accept (%s)", strerror(errno));
	if (n1 >= 0) {
		expect(n1, "early bird", 10, 1, "pending stream");
		still_works(p1, n1, "pending stream");
	}
	if (n2 >= 0) {
		expect(n2, "first", 5, 0, "pending seqpacket");
		expect(n2, "second", 6, 1, "pending seqpacket");
		still_works(p2, n2, "pending seqpacket");
	}
	return wl_finish();
}

/* Hold fd `fd` (a socket the test passed us, its peer outside); it must still be one afterwards. */
static int mode_outside(int fd)
{
	int type;
	socklen_t len = sizeof(type);

	wl_say("outside fd %d", fd);
	wl_ready();
	wl_wait();
	wl_check(!getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len), "fd %d is no longer a socket", fd);
	return wl_finish();
}

/* A datagram socket connected to the outside server @name (a logger, say): it still reaches it. */
static int mode_ext_dgram(const char *name)
{
	struct sockaddr_un sa;
	socklen_t len = make_addr(&sa, name, 1);
	int fd = socket(AF_UNIX, SOCK_DGRAM, 0);

	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, len))
		wl_die("connect to the outside server");
	send_all(fd, "before", 6);
	wl_say("client fd %d", fd);
	wl_ready();
	wl_wait();
	check_name(fd, 1, name, 1, "client");
	wl_check(send(fd, "after", 5, 0) == 5, "client: send after restore: %s", strerror(errno));
	return wl_finish();
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "";

	wl_setup(0);
	if (!strcmp(mode, "pairs"))
		return mode_pairs();
	if (!strcmp(mode, "listen"))
		return mode_listen();
	if (!strcmp(mode, "dgram"))
		return mode_dgram();
	if (!strcmp(mode, "tree"))
		return mode_tree();
	if (!strcmp(mode, "pending-data"))
		return mode_pending_data();
	if (!strcmp(mode, "outside") && argc > 2)
		return mode_outside(atoi(argv[2]));
	if (!strcmp(mode, "ext-dgram") && argc > 2)
		return mode_ext_dgram(argv[2]);
	fprintf(stderr, "usage: unixsk pairs|listen|dgram|tree|pending-data|outside FD|ext-dgram NAME\n");
	return 2;
}
