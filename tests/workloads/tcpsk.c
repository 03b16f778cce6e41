/*
 * tcpsk: TCP sockets that must survive a checkpoint.
 *
 *   listen  an IPv4 listener (SO_REUSEADDR, backlog 17, a set of options),
 *           an IPv6 one on ::1 (IPV6_V6ONLY, SO_REUSEPORT), a dual-stack
 *           one on :: (reached over IPv4: v4-mapped peer), a socket bound
 *           and not listening (IP_FREEBIND), one never bound (SO_LINGER,
 *           SO_RCVTIMEO). After restore: names and options as before, and
 *           each listener accepts a new connection that carries data.
 *   conn    (--tcp-established) a parent and its child connected over
 *           loopback IPv4, IPv6 (::1) and v4-mapped IPv6, with data
 *           queued unread both ways (a send queue beyond what the peer
 *           window takes, so some of it is unsent), options set on the
 *           connection and one side shut down for reading. After restore:
 *           names, options, every queued byte in order, then more data
 *           both ways.
 *   udp     UDP and UDP-Lite: an IPv4 socket bound with SO_BROADCAST and
 *           IP_TTL set, a datagram queued on it; an IPv6 socket connected to
 *           it over v4-mapped addresses; a UDP-Lite socket with
 *           UDPLITE_SEND_CSCOV; an IPv4 socket connected and shut down for
 *           reading. After restore: names and options as before, the queued
 *           datagram either dropped (restore) or intact (-R), then datagrams
 *           both ways.
 *   filter  a TCP listener with a classic BPF filter (SO_ATTACH_FILTER):
 *           refused; it still filters afterwards.
 *   outside PORT  (--tcp-established) connected to the test's server on
 *           127.0.0.1:PORT: sends "hello from pid" before the dump, after
 *           restore reads the test's 64 KiB (sent before the dump, unread),
 *           and sends back its checksum.
 */
#include "wl.h"

#include <arpa/inet.h>
#include <linux/filter.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>

#define BIG (1 << 20)

static int geti(int fd, int level, int name)
{
	int v = -1;
	socklen_t len = sizeof(v);

	if (getsockopt(fd, level, name, &v, &len))
		return -errno;
	return v;
}

static void seti(int fd, int level, int name, int v, const char *label)
{
	if (setsockopt(fd, level, name, &v, sizeof(v)))
		wl_fail("setsockopt %s: %s", label, strerror(errno));
}

/* Options read before the dump and compared after. */
struct opts {
	int vals[24];
	char cong[16];
	struct linger linger;
	struct timeval rcvtimeo;
	struct sockaddr_storage self, peer;
	socklen_t self_len, peer_len;
};

static const int OPT_LIST[][2] = {
	{ SOL_SOCKET, SO_REUSEADDR }, { SOL_SOCKET, SO_REUSEPORT }, { SOL_SOCKET, SO_KEEPALIVE },
	{ SOL_SOCKET, SO_PRIORITY }, { SOL_SOCKET, SO_MARK }, { SOL_SOCKET, SO_RCVLOWAT },
	{ SOL_SOCKET, SO_TYPE }, { SOL_SOCKET, SO_DOMAIN }, { IPPROTO_IP, IP_TOS }, { IPPROTO_IP, IP_TTL },
	{ IPPROTO_IP, IP_FREEBIND }, { IPPROTO_TCP, TCP_NODELAY }, { IPPROTO_TCP, TCP_KEEPIDLE },
	{ IPPROTO_TCP, TCP_KEEPINTVL }, { IPPROTO_TCP, TCP_KEEPCNT }, { IPPROTO_TCP, TCP_USER_TIMEOUT },
	{ IPPROTO_TCP, TCP_CORK }, { SOL_SOCKET, SO_ACCEPTCONN },
};
#define NOPTS (int)(sizeof(OPT_LIST) / sizeof(OPT_LIST[0]))

static void read_opts(int fd, struct opts *o)
{
	socklen_t len;

	memset(o, 0, sizeof(*o));
	for (int i = 0; i < NOPTS; i++)
		o->vals[i] = geti(fd, OPT_LIST[i][0], OPT_LIST[i][1]);
	len = sizeof(o->cong);
	getsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, o->cong, &len);
	len = sizeof(o->linger);
	getsockopt(fd, SOL_SOCKET, SO_LINGER, &o->linger, &len);
	len = sizeof(o->rcvtimeo);
	getsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &o->rcvtimeo, &len);
	o->self_len = sizeof(o->self);
	getsockname(fd, (struct sockaddr *)&o->self, &o->self_len);
	o->peer_len = sizeof(o->peer);
	if (getpeername(fd, (struct sockaddr *)&o->peer, &o->peer_len))
		o->peer_len = 0;
}

static void check_opts(int fd, const struct opts *before, const char *what)
{
	struct opts now;

	read_opts(fd, &now);
	for (int i = 0; i < NOPTS; i++)
		wl_check(now.vals[i] == before->vals[i], "%s: option %d/%d is %d, was %d", what, OPT_LIST[i][0],
			 OPT_LIST[i][1], now.vals[i], before->vals[i]);
	wl_check(!strcmp(now.cong, before->cong), "%s: TCP_CONGESTION %s, was %s", what, now.cong, before->cong);
	wl_check(!memcmp(&now.linger, &before->linger, sizeof(now.linger)), "%s: SO_LINGER differs", what);
	wl_check(!memcmp(&now.rcvtimeo, &before->rcvtimeo, sizeof(now.rcvtimeo)), "%s: SO_RCVTIMEO differs", what);
	wl_check(now.self_len == before->self_len && !memcmp(&now.self, &before->self, now.self_len),
		 "%s: getsockname differs", what);
	wl_check(now.peer_len == before->peer_len && !memcmp(&now.peer, &before->peer, now.peer_len),
		 "%s: getpeername differs", what);
}

static int sock4(void)
{
	return socket(AF_INET, SOCK_STREAM, 0);
}

static socklen_t addr4(struct sockaddr_in *sa, const char *ip, int port)
{
	memset(sa, 0, sizeof(*sa));
	sa->sin_family = AF_INET;
	sa->sin_port = htons(port);
	inet_pton(AF_INET, ip, &sa->sin_addr);
	return sizeof(*sa);
}

static int port_of(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	getsockname(fd, (struct sockaddr *)&ss, &len);
	return ntohs(((struct sockaddr_in *)&ss)->sin_port);	/* same offset in sockaddr_in6 */
}

/* Connect to 127.0.0.1:port, accept on `listener`, send a line each way. */
static void exchange_through(int listener, const char *what)
{
	struct sockaddr_in sa;
	int c = sock4(), a;
	char buf[16] = "";

	if (connect(c, (struct sockaddr *)&sa, addr4(&sa, "127.0.0.1", port_of(listener)))) {
		wl_fail("%s: connect: %s", what, strerror(errno));
		close(c);
		return;
	}
	a = accept(listener, NULL, NULL);
	if (a < 0) {
		wl_fail("%s: accept: %s", what, strerror(errno));
		close(c);
		return;
	}
	wl_check(write(c, "ping", 4) == 4 && read(a, buf, sizeof(buf)) == 4 && !memcmp(buf, "ping", 4),
		 "%s: no data through the new connection", what);
	close(a);
	close(c);
}

static int mode_listen(void)
{
	struct sockaddr_in sa;
	struct sockaddr_in6 s6;
	struct linger lg = { 1, 7 };
	struct timeval tv = { 3, 500000 };
	struct opts o[5];
	int l4 = sock4(), l6 = socket(AF_INET6, SOCK_STREAM, 0), dual = socket(AF_INET6, SOCK_STREAM, 0);
	int bound = sock4(), fresh = sock4();

	seti(l4, SOL_SOCKET, SO_REUSEADDR, 1, "SO_REUSEADDR");
	seti(l4, SOL_SOCKET, SO_KEEPALIVE, 1, "SO_KEEPALIVE");
	seti(l4, SOL_SOCKET, SO_PRIORITY, 5, "SO_PRIORITY");
	seti(l4, SOL_SOCKET, SO_MARK, 0x42, "SO_MARK");
	seti(l4, SOL_SOCKET, SO_RCVLOWAT, 3, "SO_RCVLOWAT");
	seti(l4, SOL_SOCKET, SO_RCVBUF, 50000, "SO_RCVBUF");
	seti(l4, IPPROTO_IP, IP_TOS, 0x10, "IP_TOS");
	seti(l4, IPPROTO_IP, IP_TTL, 33, "IP_TTL");
	seti(l4, IPPROTO_TCP, TCP_NODELAY, 1, "TCP_NODELAY");
	seti(l4, IPPROTO_TCP, TCP_KEEPIDLE, 77, "TCP_KEEPIDLE");
	seti(l4, IPPROTO_TCP, TCP_KEEPINTVL, 11, "TCP_KEEPINTVL");
	seti(l4, IPPROTO_TCP, TCP_KEEPCNT, 4, "TCP_KEEPCNT");
	seti(l4, IPPROTO_TCP, TCP_USER_TIMEOUT, 12345, "TCP_USER_TIMEOUT");
	if (setsockopt(l4, IPPROTO_TCP, TCP_CONGESTION, "reno", 4))
		wl_fail("TCP_CONGESTION reno: %s", strerror(errno));
	if (bind(l4, (struct sockaddr *)&sa, addr4(&sa, "127.0.0.1", 0)) || listen(l4, 17))
		wl_fail("v4 listener: %s", strerror(errno));

	seti(l6, IPPROTO_IPV6, IPV6_V6ONLY, 1, "IPV6_V6ONLY");
	seti(l6, SOL_SOCKET, SO_REUSEPORT, 1, "SO_REUSEPORT");
	memset(&s6, 0, sizeof(s6));
	s6.sin6_family = AF_INET6;
	s6.sin6_addr = in6addr_loopback;
	if (bind(l6, (struct sockaddr *)&s6, sizeof(s6)) || listen(l6, 5))
		wl_fail("v6 listener: %s", strerror(errno));

	seti(dual, IPPROTO_IPV6, IPV6_V6ONLY, 0, "IPV6_V6ONLY 0");
	s6.sin6_addr = in6addr_any;
	if (bind(dual, (struct sockaddr *)&s6, sizeof(s6)) || listen(dual, 3))
		wl_fail("dual-stack listener: %s", strerror(errno));

	seti(bound, IPPROTO_IP, IP_FREEBIND, 1, "IP_FREEBIND");
	seti(bound, IPPROTO_IP, IP_TOS, 0x10, "IP_TOS");	/* sets the priority too ... */
	seti(bound, SOL_SOCKET, SO_PRIORITY, 3, "SO_PRIORITY");	/* ... which this one overrides */
	if (bind(bound, (struct sockaddr *)&sa, addr4(&sa, "127.0.0.1", 0)))
		wl_fail("bound socket: %s", strerror(errno));
	setsockopt(fresh, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	setsockopt(fresh, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));

	int fds[5] = { l4, l6, dual, bound, fresh };
	const char *names[5] = { "v4 listener", "v6 listener", "dual-stack listener", "bound socket", "unbound socket" };
	for (int i = 0; i < 5; i++)
		read_opts(fds[i], &o[i]);
	wl_ready();
	wl_wait();
	for (int i = 0; i < 5; i++)
		check_opts(fds[i], &o[i], names[i]);
	exchange_through(l4, "v4 listener");
	exchange_through(dual, "dual-stack listener (v4-mapped)");
	{	/* the v6 listener over ::1 */
		int c = socket(AF_INET6, SOCK_STREAM, 0), a;

		s6.sin6_addr = in6addr_loopback;
		s6.sin6_port = htons(port_of(l6));
		wl_check(!connect(c, (struct sockaddr *)&s6, sizeof(s6)), "v6 connect: %s", strerror(errno));
		a = accept(l6, NULL, NULL);
		wl_check(a >= 0, "v6 accept: %s", strerror(errno));
		close(a);
		close(c);
	}
	if (listen(bound, 1) == 0)
		exchange_through(bound, "bound socket, listening after restore");
	else
		wl_fail("bound socket cannot listen after restore: %s", strerror(errno));
	return wl_finish();
}

/* Read exactly len bytes (blocking, with a poll timeout). */
static int read_all(int fd, void *buf, size_t len, const char *what)
{
	size_t got = 0;

	while (got < len) {
		struct pollfd p = { fd, POLLIN, 0 };
		ssize_t n;

		if (poll(&p, 1, 20000) <= 0) {
			wl_fail("%s: timed out after %zu of %zu bytes", what, got, len);
			return -1;
		}
		n = read(fd, (char *)buf + got, len - got);
		if (n <= 0) {
			wl_fail("%s: read %zd after %zu of %zu bytes: %s", what, n, got, len, strerror(errno));
			return -1;
		}
		got += n;
	}
	return 0;
}

static void write_all_nb(int fd, const char *buf, size_t len, size_t *sent)
{
	int fl = fcntl(fd, F_GETFL);

	fcntl(fd, F_SETFL, fl | O_NONBLOCK);
	*sent = 0;
	while (*sent < len) {
		ssize_t n = write(fd, buf + *sent, len - *sent);

		if (n <= 0)
			break;
		*sent += n;
	}
	fcntl(fd, F_SETFL, fl);
}

/* After restore: the peer's queued bytes (seed) are all there, then a round trip. */
static void check_stream(int fd, size_t expect, uint64_t seed, const char *what)
{
	char *want = malloc(expect), *got = malloc(expect);

	wl_fill(want, expect, seed);
	if (read_all(fd, got, expect, what) == 0)
		wl_check(!memcmp(want, got, expect), "%s: queued data differs", what);
	free(want);
	free(got);
}

static int mode_conn(void)
{
	struct sockaddr_in sa;
	struct sockaddr_in6 s6;
	int l = sock4(), l6 = socket(AF_INET6, SOCK_STREAM, 0), sv[2];
	int c, a, c6, a6, n6, m6, pfd[2];
	char *buf = malloc(BIG);
	size_t big_sent, small_sent;
	struct opts oc, oa, oc6, on6, om6;
	pid_t child;

	if (bind(l, (struct sockaddr *)&sa, addr4(&sa, "127.0.0.1", 0)) || listen(l, 4))
		wl_fail("listener: %s", strerror(errno));
	memset(&s6, 0, sizeof(s6));
	s6.sin6_family = AF_INET6;
	if (bind(l6, (struct sockaddr *)&s6, sizeof(s6)) || listen(l6, 4))
		wl_fail("v6 listener: %s", strerror(errno));
	c = sock4();
	seti(c, SOL_SOCKET, SO_RCVBUF, 32768, "SO_RCVBUF");	/* a small window: the sender keeps unsent data */
	seti(c, IPPROTO_TCP, TCP_NODELAY, 1, "TCP_NODELAY");
	seti(c, SOL_SOCKET, SO_REUSEADDR, 1, "SO_REUSEADDR");	/* leaving repair mode clears it */
	seti(c, SOL_SOCKET, SO_KEEPALIVE, 1, "SO_KEEPALIVE");
	seti(c, IPPROTO_TCP, TCP_KEEPIDLE, 99, "TCP_KEEPIDLE");
	if (connect(c, (struct sockaddr *)&sa, addr4(&sa, "127.0.0.1", port_of(l))))
		wl_fail("connect: %s", strerror(errno));
	a = accept(l, NULL, NULL);
	c6 = sock4();
	if (connect(c6, (struct sockaddr *)&sa, addr4(&sa, "127.0.0.1", port_of(l6))))
		wl_fail("connect v4-mapped: %s", strerror(errno));
	a6 = accept(l6, NULL, NULL);
	/* and a native IPv6 connection over ::1 */
	n6 = socket(AF_INET6, SOCK_STREAM, 0);
	s6.sin6_addr = in6addr_loopback;
	s6.sin6_port = htons(port_of(l6));
	if (connect(n6, (struct sockaddr *)&s6, sizeof(s6)))
		wl_fail("connect ::1: %s", strerror(errno));
	m6 = accept(l6, NULL, NULL);
	if (a < 0 || a6 < 0 || m6 < 0)
		wl_fail("accept: %s", strerror(errno));
	(void)sv;

	/* parent keeps a (and a6's peer c6); the child keeps c and a6 */
	if (pipe(pfd))
		wl_fail("pipe");
	wl_fill(buf, BIG, 1);
	write_all_nb(a, buf, BIG, &big_sent);		/* more than c's window: part unsent */
	wl_fill(buf, 1000, 2);
	write_all_nb(c, buf, 1000, &small_sent);
	wl_fill(buf, 5000, 3);
	if (write(c6, buf, 5000) != 5000)
		wl_fail("write c6");
	shutdown(a6, SHUT_RD);
	wl_fill(buf, 3000, 4);
	if (write(n6, buf, 3000) != 3000)
		wl_fail("write n6");
	wl_fill(buf, 7000, 5);
	if (write(m6, buf, 7000) != 7000)
		wl_fail("write m6");
	child = fork();
	if (child == 0) {
		wl_pid = getpid();
		close(a);
		close(c6);
		close(m6);
		read_opts(n6, &on6);
		read_opts(c, &oc);
		read_opts(a6, &oc6);
		close(pfd[0]);
		if (write(pfd[1], "x", 1) != 1)
			_exit(2);
		wl_wait();
		check_opts(c, &oc, "child: client");
		check_opts(a6, &oc6, "child: v4-mapped accepted");
		check_opts(n6, &on6, "child: IPv6 client");
		check_stream(n6, 7000, 5, "child: IPv6 client receive queue");
		check_stream(c, big_sent, 1, "child: client receive queue");
		if (write(c, "after", 5) != 5)
			wl_fail("child: write after restore");
		check_stream(a6, 5000, 3, "child: v4-mapped receive queue (shut down for reading)");
		{
			char b[8];
			wl_check(read(a6, b, 8) == 0, "child: the v6 socket shut down for reading reads more data");
		}
		_exit(wl_finish());
	}
	close(c);
	close(a6);
	close(n6);
	read_opts(m6, &om6);
	read_opts(a, &oa);
	close(pfd[1]);
	{
		char x;
		if (read(pfd[0], &x, 1) != 1)
			wl_fail("child did not start");
	}
	wl_say("queued %zu and %zu bytes", big_sent, small_sent);
	wl_ready();
	wl_wait();
	check_opts(a, &oa, "accepted");
	check_stream(a, small_sent, 2, "accepted receive queue");
	check_opts(m6, &om6, "IPv6 accepted");
	check_stream(m6, 3000, 4, "IPv6 accepted receive queue");
	kill(child, SIGTERM);
	{
		char b[5];
		if (read_all(a, b, 5, "accepted: data sent after restore") == 0)
			wl_check(!memcmp(b, "after", 5), "accepted: wrong data after restore");
	}
	{
		int st;
		waitpid(child, &st, 0);
		wl_check(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child failed (status %#x)", st);
	}
	return wl_finish();
}

#ifndef UDPLITE_SEND_CSCOV
#define UDPLITE_SEND_CSCOV 10
#endif
#define IPPROTO_UDPLITE_ 136

static int mode_udp(void)
{
	struct sockaddr_in sa;
	struct sockaddr_in6 s6;
	struct opts o[4];
	int u4 = socket(AF_INET, SOCK_DGRAM, 0), u6 = socket(AF_INET6, SOCK_DGRAM, 0);
	int lite = socket(AF_INET, SOCK_DGRAM, IPPROTO_UDPLITE_), shut = socket(AF_INET, SOCK_DGRAM, 0);
	int cscov = -1;
	char buf[64];
	ssize_t n;

	seti(u4, SOL_SOCKET, SO_BROADCAST, 1, "SO_BROADCAST");
	seti(u4, IPPROTO_IP, IP_TTL, 9, "IP_TTL");
	if (bind(u4, (struct sockaddr *)&sa, addr4(&sa, "127.0.0.1", 0)))
		wl_fail("bind u4: %s", strerror(errno));
	memset(&s6, 0, sizeof(s6));
	s6.sin6_family = AF_INET6;
	s6.sin6_port = htons(port_of(u4));
	inet_pton(AF_INET6, "::ffff:127.0.0.1", &s6.sin6_addr);
	if (connect(u6, (struct sockaddr *)&s6, sizeof(s6)))
		wl_fail("connect u6: %s", strerror(errno));
	if (send(u6, "queued", 6, 0) != 6)
		wl_fail("send queued: %s", strerror(errno));
	if (lite < 0)
		wl_fail("UDP-Lite socket: %s", strerror(errno));
	seti(lite, IPPROTO_UDPLITE_, UDPLITE_SEND_CSCOV, 20, "UDPLITE_SEND_CSCOV");
	if (bind(lite, (struct sockaddr *)&sa, addr4(&sa, "127.0.0.1", 0)))
		wl_fail("bind lite: %s", strerror(errno));
	if (connect(shut, (struct sockaddr *)&sa, addr4(&sa, "127.0.0.1", port_of(u4))) || shutdown(shut, SHUT_RD))
		wl_fail("connect/shutdown: %s", strerror(errno));
	int fds[4] = { u4, u6, lite, shut };
	const char *names[4] = { "UDP v4 bound", "UDP v6 connected (v4-mapped)", "UDP-Lite", "UDP shut down" };
	for (int i = 0; i < 4; i++)
		read_opts(fds[i], &o[i]);
	usleep(100000);
	wl_ready();
	wl_wait();
	for (int i = 0; i < 4; i++)
		check_opts(fds[i], &o[i], names[i]);
	cscov = geti(lite, IPPROTO_UDPLITE_, UDPLITE_SEND_CSCOV);
	wl_check(cscov == 20, "UDP-Lite: UDPLITE_SEND_CSCOV is %d, was 20", cscov);
	wl_check(geti(u4, SOL_SOCKET, SO_BROADCAST) == 1, "SO_BROADCAST lost");
	n = recv(u4, buf, sizeof(buf), MSG_DONTWAIT);
	wl_check((n < 0 && errno == EAGAIN) || (n == 6 && !memcmp(buf, "queued", 6)),
		 "the queued datagram is neither dropped nor intact (%zd)", n);
	wl_check(send(u6, "again", 5, 0) == 5, "send again: %s", strerror(errno));
	{
		struct pollfd p = { u4, POLLIN, 0 };
		poll(&p, 1, 5000);
	}
	n = recvfrom(u4, buf, sizeof(buf), MSG_DONTWAIT, NULL, NULL);
	wl_check(n == 5 && !memcmp(buf, "again", 5), "no datagram through after restore (%zd)", n);
	{
		struct pollfd p = { shut, POLLIN | POLLRDHUP, 0 };
		poll(&p, 1, 0);
		wl_check(p.revents & POLLRDHUP, "the socket shut down for reading is not (poll %#x)", p.revents);
	}
	return wl_finish();
}

static int mode_filter(void)
{
	struct sock_filter code[] = { { BPF_RET | BPF_K, 0, 0, 0xffff } };
	struct sock_fprog prog = { 1, code };
	struct sockaddr_in sa;
	int l = sock4();
	socklen_t len = 0;	/* 0: the kernel answers with the program's length */

	if (setsockopt(l, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof(prog)) ||
	    bind(l, (struct sockaddr *)&sa, addr4(&sa, "127.0.0.1", 0)) || listen(l, 1))
		wl_fail("filtered listener: %s", strerror(errno));
	wl_ready();
	wl_wait();
	wl_check(!getsockopt(l, SOL_SOCKET, SO_GET_FILTER, NULL, &len) && len == 1,
		 "the filter is gone (%d instructions)", (int)len);
	exchange_through(l, "filtered listener");
	return wl_finish();
}

static int mode_outside(int port)
{
	struct sockaddr_in sa;
	int c = sock4();
	char *buf = malloc(65536), reply[64];
	uint64_t sum;

	if (connect(c, (struct sockaddr *)&sa, addr4(&sa, "127.0.0.1", port)))
		wl_fail("connect: %s", strerror(errno));
	snprintf(reply, sizeof(reply), "hello from %d\n", (int)getpid());
	if (write(c, reply, strlen(reply)) != (ssize_t)strlen(reply))
		wl_fail("write hello");
	wl_ready();
	wl_wait();
	if (read_all(c, buf, 65536, "the test's data") == 0) {
		sum = wl_cksum(buf, 65536);
		snprintf(reply, sizeof(reply), "sum %llx\n", (unsigned long long)sum);
		wl_check(write(c, reply, strlen(reply)) == (ssize_t)strlen(reply), "write reply");
	}
	return wl_finish();
}

int main(int argc, char **argv)
{
	wl_setup(0);
	if (argc > 1 && !strcmp(argv[1], "listen"))
		return mode_listen();
	if (argc > 1 && !strcmp(argv[1], "conn"))
		return mode_conn();
	if (argc > 1 && !strcmp(argv[1], "filter"))
		return mode_filter();
	if (argc > 1 && !strcmp(argv[1], "udp"))
		return mode_udp();
	if (argc > 2 && !strcmp(argv[1], "outside"))
		return mode_outside(atoi(argv[2]));
	fprintf(stderr, "usage: tcpsk listen|conn|udp|outside PORT\n");
	return 2;
}
