/*
 * syscalls MODE [SECONDS]: frozen in the middle of a blocking syscall.
 * READY is printed just before the syscall is entered, so a dump taken
 * right after READY catches the process inside it.
 *
 *  sleep      sleep(3) in a loop, SIGTERM unblocked: sleep() may only return
 *             early because SIGTERM arrived, never because of the freeze.
 *  read       read() on an empty pipe whose both ends we hold; the SIGTERM
 *             handler (SA_RESTART) writes one byte into it. The read must be
 *             restarted across the freeze and return exactly that byte.
 *  nanosleep  nanosleep(SECONDS, default 5) with SIGTERM blocked: returns 0
 *             and at least SECONDS of CLOCK_MONOTONIC have passed.
 */
#include "wl.h"

#include <time.h>

static int pipefd[2];

static void write_wakeup_byte(void)
{
	int saved = errno;

	if (write(pipefd[1], "T", 1) != 1) {
		/* the read then never returns: the harness times out */
	}
	errno = saved;
}

static void do_sleep(void)
{
	unsigned int left;

	wl_ready();
	wl_term_unblock(1);
	while (!wl_term) {
		left = sleep(3);
		if (left && !wl_term) {
			wl_fail("sleep() returned early (%u s left) without a signal",
				left);
			break;
		}
	}
	wl_term_unblock(0);
}

static void do_read(void)
{
	char c = 0;
	ssize_t n;

	if (pipe(pipefd))
		wl_die("pipe");
	wl_setup(SA_RESTART);
	wl_term_hook = write_wakeup_byte;
	wl_ready();
	wl_term_unblock(1);
	n = read(pipefd[0], &c, 1);
	wl_term_unblock(0);
	if (n < 0)
		wl_fail("read() on the pipe failed: %s", strerror(errno));
	else
		wl_check(n == 1 && c == 'T',
			 "read() returned %zd byte(s) '%c', expected 'T'", n, c);
	wl_check(wl_term, "read() returned before SIGTERM");
}

static void do_nanosleep(double seconds)
{
	struct timespec req, t0, t1;
	double elapsed;
	int ret;

	req.tv_sec = (time_t)seconds;
	req.tv_nsec = (long)((seconds - req.tv_sec) * 1e9);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	wl_ready();
	ret = nanosleep(&req, NULL);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	wl_check(ret == 0, "nanosleep() returned %d (%s)", ret,
		 ret ? strerror(errno) : "");
	elapsed = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
	wl_check(elapsed >= seconds, "nanosleep(%g s) returned after %.3f s",
		 seconds, elapsed);
	wl_wait();
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "";

	wl_setup(0);
	if (!strcmp(mode, "sleep"))
		do_sleep();
	else if (!strcmp(mode, "read"))
		do_read();
	else if (!strcmp(mode, "nanosleep"))
		do_nanosleep(argc > 2 ? atof(argv[2]) : 5.0);
	else {
		wl_say("usage: %s sleep|read|nanosleep [SECONDS]", argv[0]);
		return 2;
	}
	return wl_finish();
}
