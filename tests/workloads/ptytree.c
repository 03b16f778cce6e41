/*
 * ptytree: a process tree with its own pseudo-terminal, like screen or tmux.
 *
 * The root R opens /dev/ptmx (not as its controlling terminal), gives the
 * pair raw-ish termios with some changed c_cc, a window size and packet
 * mode. Its child C starts a session on the slave (TIOCSCTTY; slave on fd
 * 0), puts it in exclusive mode (TIOCEXCL) and forks G, which leads its own
 * process group, made the terminal's foreground group by C; then R locks
 * the slave against new opens (TIOCSPTLCK). After restore:
 *   R checks the master: the same index (ptsname), termios, window size,
 *     packet mode, the lock, the slave's session (C) and foreground group (G);
 *   C checks its controlling terminal (ttyname, tcgetsid, tcgetpgrp, and
 *     /dev/tty, which it holds open), exclusive mode, termios and window
 *     size through the slave;
 *   G checks it is in the foreground, reads "ping" that R writes to the
 *     master and answers "pong", which R reads back (after the packet-mode
 *     header byte): bytes flow both ways.
 * Only R prints PASS/FAIL; C and G report through their exit status.
 *
 * Modes (argv[1]), for refusal tests and odd states:
 *   unread    R writes "ping" before READY: bytes wait in the slave's input
 *             (pyckpt must give them back, in the running pty after a dump
 *             with -R too); the flow is then the same.
 *   pktstatus C flushes the slave's input (tcflush): a packet-mode status
 *             byte waits at the master (refused); R reads it first after.
 *   outside   the master is handed to a process outside the tree (a
 *             grandchild whose parent exited); R keeps only the slave.
 *   slave-outside  the same with the slave handed out; R keeps the master.
 */
#include "wl.h"
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <termios.h>

#define ROWS 37
#define COLS 101

static int master = -1;
static char slave_name[64];
static pid_t c_pid, g_pid;
static int ready[2];		/* child -> root: set up */

static void make_termios(struct termios *t)
{
	t->c_iflag &= ~(ICRNL | IXON | INLCR | IGNCR);
	t->c_oflag &= ~OPOST;
	t->c_lflag &= ~(ECHO | ECHONL | ICANON | ISIG | IEXTEN);
	t->c_cc[VMIN] = 1;
	t->c_cc[VTIME] = 0;
	t->c_cc[VINTR] = 0x07;
	t->c_cc[VERASE] = 0x08;
	cfsetispeed(t, B9600);
	cfsetospeed(t, B9600);
}

/* Are termios and the window size of the terminal at fd as set up? */
static int settings_ok(int fd, const char *who)
{
	struct termios t;
	struct winsize ws;
	int ok = 1;

	if (tcgetattr(fd, &t) || ioctl(fd, TIOCGWINSZ, &ws)) {
		wl_fail("%s: tcgetattr/TIOCGWINSZ: %s", who, strerror(errno));
		return 0;
	}
	if ((t.c_lflag & (ECHO | ICANON | ISIG)) || (t.c_oflag & OPOST) || (t.c_iflag & (ICRNL | IXON)) ||
	    t.c_cc[VMIN] != 1 || t.c_cc[VINTR] != 0x07 || t.c_cc[VERASE] != 0x08 ||
	    cfgetospeed(&t) != B9600)
		ok = 0;
	if (ws.ws_row != ROWS || ws.ws_col != COLS || ws.ws_xpixel != 5 || ws.ws_ypixel != 7)
		ok = 0;
	if (!ok && !strcmp(who, "root"))
		wl_fail("%s: termios lflag %#x oflag %#x iflag %#x VMIN %d VINTR %#x VERASE %#x; winsize %dx%d %dx%d",
			who, t.c_lflag, t.c_oflag, t.c_iflag, t.c_cc[VMIN], t.c_cc[VINTR], t.c_cc[VERASE],
			ws.ws_row, ws.ws_col, ws.ws_xpixel, ws.ws_ypixel);
	return ok;
}

static int grandchild(void)
{
	char buf[8] = "";
	struct pollfd p = { .fd = 0, .events = POLLIN };

	close(ready[1]);
	wl_wait();
	if (getsid(0) != c_pid || getpgid(0) != getpid())
		return 40;
	if (tcgetpgrp(0) != getpid())
		return 41;
	if (poll(&p, 1, 30000) != 1 || read(0, buf, 4) != 4 || memcmp(buf, "ping", 4))
		return 42;
	if (write(0, "pong", 4) != 4)
		return 43;
	return 0;
}

static int child(const char *mode)
{
	int slave, dev_tty, status, excl = 0;
	const char *name;

	c_pid = getpid();
	close(master);
	close(ready[0]);
	if (setsid() < 0)
		return 20;
	slave = open(slave_name, O_RDWR | O_NOCTTY);
	if (slave < 0 || ioctl(slave, TIOCSCTTY, 0) || dup2(slave, 0) != 0)
		return 21;
	dev_tty = open("/dev/tty", O_RDWR);
	if (dev_tty < 0 || ioctl(slave, TIOCEXCL))
		return 25;
	g_pid = fork();
	if (g_pid < 0)
		return 22;
	if (!g_pid) {
		setpgid(0, 0);
		_exit(grandchild());
	}
	setpgid(g_pid, g_pid);
	/* packet mode: flushing the slave's input queues a status byte for the
	 * master (done while C is still in the foreground) */
	if (!strcmp(mode, "pktstatus") && tcflush(0, TCIFLUSH))
		return 26;
	if (tcsetpgrp(0, g_pid))
		return 23;
	if (write(ready[1], "r", 1) != 1)	/* tell the root the tree is set up */
		return 24;
	close(ready[1]);
	wl_wait();
	name = ttyname(0);
	if (getsid(0) != getpid() || tcgetsid(0) != getpid())
		return 30;
	if (tcgetpgrp(slave) != g_pid)
		return 31;
	if (!name || strcmp(name, slave_name))
		return 32;
	if (tcgetsid(dev_tty) != getpid())
		return 36;
	if (ioctl(slave, TIOCGEXCL, &excl) || !excl)
		return 37;
	if (!settings_ok(slave, "child"))
		return 33;
	if (kill(g_pid, SIGTERM) || waitpid(g_pid, &status, 0) != g_pid)
		return 34;
	if (!WIFEXITED(status))
		return 35;
	return WEXITSTATUS(status);
}

/* Modes "outside", "slave-outside": a process outside the tree holds `give`
 * (reading it) until the other end, `keep`, is gone. */
static void hand_outside(int give, int keep)
{
	pid_t x = fork(), y;
	char buf[64];

	if (x < 0)
		wl_die("fork");
	if (!x) {
		y = fork();
		if (y < 0)
			_exit(1);
		if (y) {
			char pid_s[16];
			int n = snprintf(pid_s, sizeof(pid_s), "%d", (int)y);

			if (write(ready[1], pid_s, n) != n)
				_exit(1);
			_exit(0);
		}
		/* reparented to the harness: outside the dumped tree */
		close(keep);
		close(ready[1]);
		close(ready[0]);
		while (read(give, buf, sizeof(buf)) > 0)
			;
		_exit(0);
	}
	if (waitpid(x, NULL, 0) != x)
		wl_die("waitpid");
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "";
	struct termios t;
	struct winsize ws = { .ws_row = ROWS, .ws_col = COLS, .ws_xpixel = 5, .ws_ypixel = 7 };
	int one = 1, pkt = 0, locked = 0, status, slave = -1;
	pid_t sid = 0, pgrp = 0;
	char buf[16], *name;
	struct pollfd p;

	wl_setup(0);
	master = posix_openpt(O_RDWR | O_NOCTTY);
	if (master < 0 || grantpt(master) || unlockpt(master))
		wl_die("posix_openpt");
	name = ptsname(master);
	if (!name)
		wl_die("ptsname");
	snprintf(slave_name, sizeof(slave_name), "%s", name);
	if (tcgetattr(master, &t))
		wl_die("tcgetattr");
	make_termios(&t);
	if (tcsetattr(master, TCSANOW, &t) || ioctl(master, TIOCSWINSZ, &ws) || ioctl(master, TIOCPKT, &one))
		wl_die("termios");
	if (pipe(ready))
		wl_die("pipe");

	if (!strcmp(mode, "outside") || !strcmp(mode, "slave-outside")) {
		int give_master = !strcmp(mode, "outside");

		slave = open(slave_name, O_RDWR | O_NOCTTY);
		if (slave < 0)
			wl_die("open slave");
		hand_outside(give_master ? master : slave, give_master ? slave : master);
		close(ready[1]);
		memset(buf, 0, sizeof(buf));
		if (read(ready[0], buf, sizeof(buf) - 1) <= 0)
			wl_die("outside pid");
		close(ready[0]);
		close(give_master ? master : slave);
		wl_say("outside holder %s", buf);
		wl_ready();
		wl_wait();
		if (give_master) {
			wl_check(ttyname(slave) && !strcmp(ttyname(slave), slave_name), "slave is %s, want %s",
				 ttyname(slave), slave_name);
		} else {
			name = ptsname(master);
			wl_check(name && !strcmp(name, slave_name), "master is for %s, want %s", name, slave_name);
		}
		close(give_master ? slave : master);
		return wl_finish();
	}

	c_pid = fork();
	if (c_pid < 0)
		wl_die("fork");
	if (!c_pid)
		_exit(child(mode));
	close(ready[1]);
	if (read(ready[0], buf, 1) != 1)
		wl_die("child setup");
	close(ready[0]);
	if (ioctl(master, TIOCSPTLCK, &one))
		wl_die("lock");
	wl_say("pty %s", slave_name);
	if (!strcmp(mode, "unread") && write(master, "ping", 4) != 4)
		wl_die("write ping");
	wl_ready();
	wl_wait();

	name = ptsname(master);
	wl_check(name && !strcmp(name, slave_name), "master is for %s, was %s", name ? name : "?", slave_name);
	settings_ok(master, "root");
	wl_check(!ioctl(master, TIOCGPKT, &pkt) && pkt == 1, "packet mode %d", pkt);
	/* (not tried by opening the slave: a refused open sets TTY_IO_ERROR on it) */
	wl_check(!ioctl(master, TIOCGPTLCK, &locked) && locked == 1, "lock %d", locked);
	wl_check(!ioctl(master, TIOCGSID, &sid) && sid == c_pid, "slave's session %d, want %d", (int)sid, (int)c_pid);
	wl_check(!ioctl(master, TIOCGPGRP, &pgrp) && pgrp != c_pid && pgrp > 0 && getpgid(pgrp) == pgrp,
		 "foreground group %d (child %d)", (int)pgrp, (int)c_pid);
	p.fd = master;
	p.events = POLLIN;
	memset(buf, 0, sizeof(buf));
	if (!strcmp(mode, "pktstatus"))
		wl_check(poll(&p, 1, 30000) == 1 && read(master, buf, sizeof(buf)) == 1 && (buf[0] & TIOCPKT_FLUSHREAD),
			 "packet status %#x, want TIOCPKT_FLUSHREAD", buf[0]);
	if (kill(c_pid, SIGTERM))
		wl_fail("kill child: %s", strerror(errno));
	if (strcmp(mode, "unread") && write(master, "ping", 4) != 4)
		wl_fail("write ping: %s", strerror(errno));
	p.fd = master;
	p.events = POLLIN;
	memset(buf, 0, sizeof(buf));
	/* packet mode: a header byte (TIOCPKT_DATA, 0) before the data */
	wl_check(poll(&p, 1, 30000) == 1 && read(master, buf, sizeof(buf)) == 5 && buf[0] == TIOCPKT_DATA &&
		 !memcmp(buf + 1, "pong", 4), "read back '%.5s' from the master", buf + 1);
	wl_check(waitpid(c_pid, &status, 0) == c_pid && WIFEXITED(status) && WEXITSTATUS(status) == 0,
		 "child: status %#x", status);
	return wl_finish();
}
