/*
 * tty: a shell job. stdin, stdout and stderr are a terminal (the test runs
 * us on a pty slave, in our own process group under a session leader);
 * pyckpt must be told --shell-job to dump or restore us. Protocol lines go
 * to the terminal and, as the harness reads files, also to out.log in the
 * cwd. After restore fds 0-2 must still be terminals we can use: termios
 * readable on each, and "TTY-WRITE <n>" written on stdout and stderr (the
 * test reads them from the pty master).
 */
#include "wl.h"

#include <termios.h>

int main(void)
{
	struct termios t;
	char line[64];
	int fd, n;

	wl_setup(0);
	wl_mirror_fd = open("out.log", O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	if (wl_mirror_fd < 0)
		wl_die("open out.log");
	for (fd = 0; fd < 3; fd++)
		if (!isatty(fd))
			wl_die("fd 0-2 must be a terminal");
	wl_say("TTY-WRITE before");
	wl_ready();
	wl_wait();
	for (fd = 0; fd < 3; fd++) {
		wl_check(isatty(fd), "fd %d is no longer a terminal", fd);
		wl_check(tcgetattr(fd, &t) == 0, "tcgetattr(%d): %s", fd,
			 strerror(errno));
	}
	for (fd = 1; fd < 3; fd++) {
		n = snprintf(line, sizeof(line), "TTY-WRITE after %d\n", fd);
		wl_check(write(fd, line, n) == n, "write to terminal fd %d: %s",
			 fd, strerror(errno));
	}
	return wl_finish();
}
