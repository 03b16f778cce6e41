/*
 * fifo: a named pipe held open for reading and writing by the process, with
 * bytes waiting in it, and a second FIFO opened read-only non-blocking with
 * its writer in a child of the process (so the child's end and ours are
 * restored as the same pipe). After restore the waiting bytes come out in
 * order, and what the child writes afterwards reaches us.
 */
#include "wl.h"
#include <sys/stat.h>
#include <sys/wait.h>

int main(void)
{
	int rd, wr, rd2, status;
	pid_t child;
	char buf[64] = "";

	wl_setup(0);
	if (mkfifo("queue", 0600) || mkfifo("feed", 0600))
		wl_die("mkfifo");
	rd = open("queue", O_RDONLY | O_NONBLOCK);
	wr = open("queue", O_WRONLY);
	rd2 = open("feed", O_RDONLY | O_NONBLOCK);
	if (rd < 0 || wr < 0 || rd2 < 0 || write(wr, "first second", 12) != 12)
		wl_die("open/write");
	child = fork();
	if (!child) {
		int w = open("feed", O_WRONLY);

		wl_wait();
		_exit(w >= 0 && write(w, "from-child", 10) == 10 ? 0 : 1);
	}
	/* wait until the child holds its write end (read(2) then sees a writer) */
	for (;;) {
		char path[64], link[256];
		int fd, found = 0;

		for (fd = 0; fd < 16 && !found; fd++) {
			ssize_t n;

			snprintf(path, sizeof(path), "/proc/%d/fd/%d", (int)child, fd);
			n = readlink(path, link, sizeof(link) - 1);
			if (n > 5 && !memcmp(link + n - 5, "/feed", 5) && fd != rd2)
				found = 1;
		}
		if (found)
			break;
		usleep(1000);
	}
	wl_ready();
	wl_wait();

	wl_check(read(rd, buf, 6) == 6 && !memcmp(buf, "first ", 6), "queue gave '%s'", buf);
	memset(buf, 0, sizeof(buf));
	wl_check(read(rd, buf, sizeof(buf)) == 6 && !memcmp(buf, "second", 6), "queue gave '%s'", buf);
	kill(child, SIGTERM);
	wl_check(waitpid(child, &status, 0) == child && WIFEXITED(status) && !WEXITSTATUS(status),
		 "child status %#x", status);
	memset(buf, 0, sizeof(buf));
	wl_check(read(rd2, buf, sizeof(buf)) == 10 && !memcmp(buf, "from-child", 10), "feed gave '%s'", buf);
	return wl_finish();
}
