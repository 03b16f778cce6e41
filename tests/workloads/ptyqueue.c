/*
 * ptyqueue: bytes waiting in a pty, both ways, on a canonical terminal with echo.
 * The process holds both ends (not as its controlling terminal). Typed into
 * the master: "abc\n", "def\n", and "ghi" pushed by the EOF character (no
 * newline), their echo read off the master already; written to the slave:
 * "out\n", waiting at the master as "out\r\n" (ONLCR). After restore (or a
 * dump with -R: the bytes are read and written back into the running pty)
 * the slave reads the same three lines, one per read, then nothing; the
 * master reads "out\r\n" and nothing more (no echo of anything written
 * back); termios is as it was; a new line typed is echoed and read as usual.
 */
#include "wl.h"
#include <poll.h>
#include <termios.h>

static int master, slave;

static ssize_t read_now(int fd, char *buf, size_t size)
{
	struct pollfd p = { fd, POLLIN, 0 };
	ssize_t n;

	if (poll(&p, 1, 2000) != 1)
		return -2;
	n = read(fd, buf, size - 1);
	buf[n > 0 ? n : 0] = 0;
	return n;
}

static void expect_line(int fd, const char *want, const char *what)
{
	char buf[64];
	ssize_t n = read_now(fd, buf, sizeof(buf));

	wl_check(n == (ssize_t)strlen(want) && !strcmp(buf, want), "%s: read %zd '%s', want '%s'", what, n, buf, want);
}

static void expect_empty(int fd, const char *what)
{
	struct pollfd p = { fd, POLLIN, 0 };

	wl_check(poll(&p, 1, 100) == 0, "%s: more bytes waiting", what);
}

int main(void)
{
	struct termios before, after;
	char buf[64], typed[16];
	size_t echoed = 0;
	ssize_t n;

	wl_setup(0);
	master = posix_openpt(O_RDWR | O_NOCTTY);
	if (master < 0 || grantpt(master) || unlockpt(master))
		wl_die("posix_openpt");
	slave = open(ptsname(master), O_RDWR | O_NOCTTY);
	if (slave < 0 || tcgetattr(slave, &before))
		wl_die("open slave");
	if (!(before.c_lflag & ICANON) || !(before.c_lflag & ECHO))
		wl_die("not canonical with echo");
	snprintf(typed, sizeof(typed), "ghi%c", before.c_cc[VEOF]);
	if (write(master, "abc\ndef\n", 8) != 8 || write(master, typed, 4) != 4)
		wl_die("type");
	while (echoed < strlen("abc\r\ndef\r\nghi")) {	/* the echo, off the master */
		n = read_now(master, buf, sizeof(buf));
		if (n <= 0)
			wl_die("echo");
		echoed += n;
	}
	if (write(slave, "out\n", 4) != 4)
		wl_die("write slave");
	wl_ready();
	wl_wait();

	wl_check(!tcgetattr(slave, &after) && !memcmp(&before, &after, sizeof(before)), "termios changed");
	expect_line(slave, "abc\n", "slave line 1");
	expect_line(slave, "def\n", "slave line 2");
	expect_line(slave, "ghi", "slave line 3 (EOF push)");
	expect_empty(slave, "slave");
	expect_line(master, "out\r\n", "master");
	expect_empty(master, "master");
	/* the terminal goes on as before: echo and a line */
	wl_check(write(master, "x\n", 2) == 2, "type x");
	expect_line(master, "x\r\n", "echo of x");
	expect_line(slave, "x\n", "line x");
	return wl_finish();
}
