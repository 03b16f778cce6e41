/*
 * unsupported: holds a netlink socket (AF_NETLINK, NETLINK_ROUTE), which
 * pyckpt cannot checkpoint. The dump must be refused, naming this fd and
 * its kind, and leave us running untouched: on SIGTERM the socket still
 * answers a request and the process PASSes. The fd number is printed
 * ("netlink fd N") so the test knows what to look for.
 */
#include "wl.h"

#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <sys/socket.h>

/* Send RTM_GETLINK (dump) and read one reply; 0 if the kernel answered. */
static int ask_links(int fd, unsigned int seq)
{
	struct {
		struct nlmsghdr nh;
		struct ifinfomsg ifi;
	} req;
	char reply[16384];
	struct nlmsghdr *nh = (struct nlmsghdr *)reply;
	ssize_t n;

	memset(&req, 0, sizeof(req));
	req.nh.nlmsg_len = sizeof(req);
	req.nh.nlmsg_type = RTM_GETLINK;
	req.nh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
	req.nh.nlmsg_seq = seq;
	req.ifi.ifi_family = AF_UNSPEC;
	if (send(fd, &req, sizeof(req), 0) != sizeof(req))
		return -1;
	n = recv(fd, reply, sizeof(reply), 0);
	if (n < (ssize_t)sizeof(*nh) || nh->nlmsg_seq != seq)
		return -1;
	/* drain the rest of the dump */
	while (nh->nlmsg_type != NLMSG_DONE && nh->nlmsg_type != NLMSG_ERROR) {
		n = recv(fd, reply, sizeof(reply), MSG_DONTWAIT);
		if (n <= 0)
			break;
		nh = (struct nlmsghdr *)reply;
	}
	return 0;
}

int main(void)
{
	struct sockaddr_nl sa, got;
	socklen_t len = sizeof(got);
	int fd;

	wl_setup(0);
	fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
	if (fd < 0)
		wl_die("socket(AF_NETLINK)");
	memset(&sa, 0, sizeof(sa));
	sa.nl_family = AF_NETLINK;
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)))
		wl_die("bind");
	wl_check(ask_links(fd, 1) == 0, "netlink socket does not answer");
	wl_say("netlink fd %d", fd);
	wl_ready();
	wl_wait();
	wl_check(getsockname(fd, (struct sockaddr *)&got, &len) == 0 &&
		 got.nl_family == AF_NETLINK,
		 "fd %d is no longer a netlink socket", fd);
	wl_check(ask_links(fd, 2) == 0, "netlink socket stopped answering");
	return wl_finish();
}
