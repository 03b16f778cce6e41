/*
 * anonfds: eventfd (a counter, and one in semaphore mode), signalfd (its
 * mask, and a queued signal read through it after restore) and timerfd (one
 * counting down, one that already expired and was not read).
 */
#include "wl.h"
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <time.h>

int main(void)
{
	int counter, sem, sfd, running, expired;
	struct itimerspec run = { { 50, 0 }, { 100, 0 } }, once = { { 0, 0 }, { 0, 1000000 } }, left;
	struct signalfd_siginfo si;
	sigset_t mask;
	uint64_t value;

	wl_setup(0);
	counter = eventfd(3, EFD_NONBLOCK);
	sem = eventfd(5, EFD_SEMAPHORE);
	sigemptyset(&mask);
	sigaddset(&mask, SIGUSR1);
	sigaddset(&mask, SIGUSR2);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	sfd = signalfd(-1, &mask, SFD_NONBLOCK);
	running = timerfd_create(CLOCK_MONOTONIC, 0);
	expired = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
	if (counter < 0 || sem < 0 || sfd < 0 || running < 0 || expired < 0)
		wl_die("create");
	if (timerfd_settime(running, 0, &run, NULL) || timerfd_settime(expired, 0, &once, NULL))
		wl_die("settime");
	usleep(50 * 1000);
	kill(getpid(), SIGUSR2);
	wl_ready();
	wl_wait();

	wl_check(read(counter, &value, 8) == 8 && value == 3, "eventfd counter %llu", (unsigned long long)value);
	wl_check(read(counter, &value, 8) < 0 && errno == EAGAIN, "eventfd not non-blocking/empty");
	wl_check(read(sem, &value, 8) == 8 && value == 1, "semaphore eventfd gave %llu", (unsigned long long)value);
	wl_check(read(sem, &value, 8) == 8 && value == 1, "semaphore eventfd gave %llu", (unsigned long long)value);
	wl_check(read(sfd, &si, sizeof(si)) == sizeof(si) && si.ssi_signo == SIGUSR2,
		 "signalfd gave signal %u", si.ssi_signo);
	wl_check(read(sfd, &si, sizeof(si)) < 0 && errno == EAGAIN, "signalfd had more than one signal");
	kill(getpid(), SIGUSR1);
	wl_check(read(sfd, &si, sizeof(si)) == sizeof(si) && si.ssi_signo == SIGUSR1,
		 "signalfd mask lost SIGUSR1 (got %u)", si.ssi_signo);
	wl_check(!timerfd_gettime(running, &left) && left.it_value.tv_sec > 0 && left.it_value.tv_sec < 100 &&
		 left.it_interval.tv_sec == 50, "running timerfd: %ld s left, interval %ld",
		 (long)left.it_value.tv_sec, (long)left.it_interval.tv_sec);
	wl_check(read(expired, &value, 8) == 8 && value == 1, "expired timerfd: %llu ticks",
		 (unsigned long long)value);
	return wl_finish();
}
