/*
 * wl.h - the protocol every pyckpt test workload follows.
 *
 * A workload is started by the test harness with its cwd in a fresh temp
 * dir, stdin on /dev/null and stdout+stderr appended to out.log there:
 *
 *   wl_setup(0);        SIGTERM handler installed, SIGTERM blocked
 *   ...build state...
 *   wl_ready();         prints "READY" (the harness may dump from now on)
 *   wl_wait();          sigsuspend() until SIGTERM arrives
 *   ...verify, wl_check()...
 *   return wl_finish(); prints "PASS" (exit 0) or ends with "FAIL: ..." (1)
 *
 * SIGTERM stays blocked outside wl_wait() so that it cannot interrupt a
 * syscall a workload is checking. Every failed check prints its own
 * "FAIL: <what differed>" line at once, so a crash later still leaves a
 * trace in out.log. Header-only on purpose: each workload is one .c file.
 */
#ifndef PYCKPT_WL_H
#define PYCKPT_WL_H

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

/* Helpers not every workload uses: no unused-function warnings. */
#define WL_FN static __attribute__((unused))

static volatile sig_atomic_t wl_term;	/* set by the SIGTERM handler */
static pid_t wl_pid;			/* getpid() at start */
static int wl_failures;
/* Extra copy of every protocol line (e.g. out.log when stdout is a tty). */
static int wl_mirror_fd = -1;
/* Called from the SIGTERM handler after the flag is set, if non-NULL. */
static void (*wl_term_hook)(void);
/* Static stdio buffer: printing must not change the heap between checks. */
static char wl_stdout_buf[4096];

WL_FN void wl_on_term(int sig)
{
	(void)sig;
	wl_term = 1;
	if (wl_term_hook)
		wl_term_hook();
}

/* Write one whole line to stdout (and the mirror), unbuffered by stdio. */
WL_FN void wl_say(const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if (n > (int)sizeof(line) - 2)
		n = sizeof(line) - 2;
	line[n++] = '\n';
	fflush(stdout);
	if (write(STDOUT_FILENO, line, n) < 0) {
		/* nothing sensible left to report to */
	}
	if (wl_mirror_fd >= 0 && write(wl_mirror_fd, line, n) < 0) {
		/* same */
	}
}

/* Install the SIGTERM handler (with extra sa_flags, e.g. SA_RESTART) and
 * block SIGTERM. */
WL_FN void wl_setup(int sa_flags)
{
	struct sigaction sa;
	sigset_t set;

	setvbuf(stdout, wl_stdout_buf, _IOLBF, sizeof(wl_stdout_buf));
	wl_pid = getpid();
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = wl_on_term;
	sa.sa_flags = sa_flags;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGTERM, &sa, NULL)) {
		perror("sigaction(SIGTERM)");
		exit(2);
	}
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigprocmask(SIG_BLOCK, &set, NULL);
}

WL_FN void wl_ready(void)
{
	wl_say("READY");
}

/* Sleep until SIGTERM has been handled. */
WL_FN void wl_wait(void)
{
	sigset_t wait_mask;

	sigprocmask(SIG_BLOCK, NULL, &wait_mask);
	sigdelset(&wait_mask, SIGTERM);
	while (!wl_term)
		sigsuspend(&wait_mask);
}

/* Unblock SIGTERM around a blocking call that is itself the wait. */
WL_FN void wl_term_unblock(int unblock)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigprocmask(unblock ? SIG_UNBLOCK : SIG_BLOCK, &set, NULL);
}

WL_FN void wl_fail(const char *fmt, ...)
{
	char msg[900];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* a cascade of failures must not drown out.log */
	if (++wl_failures <= 20)
		wl_say("FAIL: %s", msg);
	else if (wl_failures == 21)
		wl_say("FAIL: (further failures not shown)");
}

#define wl_check(cond, ...)			\
	do {					\
		if (!(cond))			\
			wl_fail(__VA_ARGS__);	\
	} while (0)

/* Abort a workload whose setup failed: this is not a checkpoint bug. */
#define wl_die(what)							\
	do {								\
		wl_say("FAIL: setup: %s: %s (%s:%d)", what,		\
		       strerror(errno), __FILE__, __LINE__);		\
		exit(2);						\
	} while (0)

/* Checks every workload makes, then the verdict; returns the exit code. */
WL_FN int wl_finish(void)
{
	pid_t now = getpid();

	wl_check(now == wl_pid, "pid is %d, was %d", (int)now, (int)wl_pid);
	if (wl_failures)
		return 1;
	wl_say("PASS");
	return 0;
}

/* A 64-bit checksum (FNV-1a style, word at a time); not cryptographic. */
WL_FN uint64_t wl_cksum(const void *buf, size_t len)
{
	const unsigned char *p = buf;
	uint64_t h = 0xcbf29ce484222325ULL, w;

	while (len >= 8) {
		memcpy(&w, p, 8);
		h = (h ^ w) * 0x100000001b3ULL;
		p += 8;
		len -= 8;
	}
	while (len--)
		h = (h ^ *p++) * 0x100000001b3ULL;
	return h;
}

/* Fill a buffer with a pattern that depends on seed and position. */
WL_FN void wl_fill(void *buf, size_t len, uint64_t seed)
{
	unsigned char *p = buf;
	uint64_t x = seed * 0x9e3779b97f4a7c15ULL + 1;
	size_t i;

	for (i = 0; i + 8 <= len; i += 8) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		memcpy(p + i, &x, 8);
	}
	for (; i < len; i++)
		p[i] = (unsigned char)(seed + i);
}

/* Read a whole small file (e.g. under /proc) into buf, NUL-terminated,
 * without stdio (no heap use). Returns the length or -1. */
WL_FN ssize_t wl_read_file(const char *path, char *buf, size_t size)
{
	ssize_t n, len = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -1;
	while ((size_t)len < size - 1) {
		n = read(fd, buf + len, size - 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += n;
	}
	close(fd);
	buf[len] = '\0';
	return len;
}

#endif /* PYCKPT_WL_H */
