/*
 * refused: holds one kind of state pyckpt does not checkpoint yet, chosen
 * by argv[1]; the dump must be refused naming it, and the process must go
 * on as if nothing happened (it PASSes on SIGTERM when its state is intact).
 *   seccomp      a seccomp filter (allow-all BPF)
 *   posix-timer  a POSIX timer (timer_create), armed far in the future
 *   lease-breaking  a read lease (F_SETLEASE) on a file, being broken: an
 *                open for writing (O_NONBLOCK, so it fails at once) started
 *                the break, which lasts lease-break-time (45 s by default)
 */
#include "wl.h"
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <time.h>

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "";
	timer_t timer;
	int fd = -1;

	wl_setup(0);
	if (!strcmp(mode, "seccomp")) {
		struct sock_filter allow = BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
		struct sock_fprog prog = { 1, &allow };

		if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) ||
		    prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0))
			wl_die("seccomp");
	} else if (!strcmp(mode, "posix-timer")) {
		struct sigevent ev = { .sigev_notify = SIGEV_SIGNAL, .sigev_signo = SIGUSR1 };
		struct itimerspec in = { { 0, 0 }, { 3600, 0 } };

		signal(SIGUSR1, SIG_IGN);
		if (timer_create(CLOCK_MONOTONIC, &ev, &timer) || timer_settime(timer, 0, &in, NULL))
			wl_die("timer");
	} else if (!strcmp(mode, "lease-breaking")) {
		signal(SIGIO, SIG_IGN);		/* the break notice */
		fd = open("leased", O_RDWR | O_CREAT, 0600);
		if (fd < 0 || close(fd))
			wl_die("create");
		fd = open("leased", O_RDONLY);
		if (fd < 0 || fcntl(fd, F_SETLEASE, F_RDLCK))
			wl_die("lease");
		if (open("leased", O_WRONLY | O_NONBLOCK) >= 0 || errno != EWOULDBLOCK)
			wl_die("breaking the lease");
	} else {
		errno = EINVAL;
		wl_die(mode);
	}
	wl_ready();
	wl_wait();
	if (fd >= 0)
		wl_check(fcntl(fd, F_GETLEASE) == F_UNLCK, "the lease was not being given up");
	return wl_finish();
}
