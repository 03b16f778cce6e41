/*
 * epoll: an epoll instance watching a pipe (with data waiting, level
 * triggered), an eventfd (edge triggered, already signalled) and a second
 * pipe (nothing to read). After restore epoll_wait must report exactly the
 * ready ones with their data words, and every watched fd must still be
 * registered (EPOLL_CTL_ADD says EEXIST, EPOLL_CTL_MOD works).
 */
#include "wl.h"
#include <sys/epoll.h>
#include <sys/eventfd.h>

int main(void)
{
	int ep, ready[2], idle[2], efd, n, i, seen_pipe = 0, seen_efd = 0;
	struct epoll_event ev, got[8];

	wl_setup(0);
	ep = epoll_create1(EPOLL_CLOEXEC);
	efd = eventfd(0, EFD_NONBLOCK);
	if (ep < 0 || efd < 0 || pipe(ready) || pipe(idle))
		wl_die("create");
	ev.events = EPOLLIN;
	ev.data.u64 = 0x1111222233334444ULL;
	if (epoll_ctl(ep, EPOLL_CTL_ADD, ready[0], &ev))
		wl_die("add ready");
	ev.events = EPOLLIN | EPOLLET;
	ev.data.u64 = 0xeeee;
	if (epoll_ctl(ep, EPOLL_CTL_ADD, efd, &ev))
		wl_die("add eventfd");
	ev.events = EPOLLIN | EPOLLRDHUP;
	ev.data.u64 = 0x1d1e;
	if (epoll_ctl(ep, EPOLL_CTL_ADD, idle[0], &ev))
		wl_die("add idle");
	if (write(ready[1], "x", 1) != 1 || eventfd_write(efd, 1))
		wl_die("make ready");
	wl_ready();
	wl_wait();

	n = epoll_wait(ep, got, 8, 1000);
	for (i = 0; i < n; i++) {
		if (got[i].data.u64 == 0x1111222233334444ULL && got[i].events & EPOLLIN)
			seen_pipe++;
		else if (got[i].data.u64 == 0xeeee && got[i].events & EPOLLIN)
			seen_efd++;
		else
			wl_fail("unexpected event %#x data %#llx", got[i].events,
				(unsigned long long)got[i].data.u64);
	}
	wl_check(n == 2 && seen_pipe == 1 && seen_efd == 1, "epoll_wait gave %d events (pipe %d, eventfd %d)", n,
		 seen_pipe, seen_efd);
	/* edge triggered: the eventfd does not show up again until it changes */
	n = epoll_wait(ep, got, 8, 0);
	wl_check(n == 1 && got[0].data.u64 == 0x1111222233334444ULL, "second epoll_wait gave %d events", n);
	ev.events = EPOLLIN;
	wl_check(epoll_ctl(ep, EPOLL_CTL_ADD, idle[0], &ev) < 0 && errno == EEXIST, "idle pipe not registered");
	wl_check(epoll_ctl(ep, EPOLL_CTL_MOD, efd, &ev) == 0, "eventfd not registered");
	return wl_finish();
}
