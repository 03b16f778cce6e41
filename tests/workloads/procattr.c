/*
 * procattr - process attributes come back: oom_score_adj (and the oom_adj
 * the kernel derives from it), /proc/self/loginuid, the child-subreaper
 * flag (and an orphan is reparented to the subreaper after restore),
 * membarrier registrations.
 *
 *   root R: oom_score_adj 345, loginuid 4242 (when the kernel has audit),
 *           child subreaper, membarrier registered for private expedited,
 *           private expedited sync-core and private expedited rseq (those
 *           this kernel supports)
 *   M, child of R: oom_score_adj 123, no registration, not a subreaper;
 *           its child G.
 * After restore R checks its attributes and M's (M reports over a pipe),
 * then M exits: G must be reparented to R (the subreaper), not to init.
 * sessionid is not compared: the kernel gives a new one to every write of
 * loginuid (README: what does not come back).
 */
#include "wl.h"

#include <linux/membarrier.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>

static const int private_cmds[][2] = {
	{ MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, MEMBARRIER_CMD_PRIVATE_EXPEDITED },
	{ MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_SYNC_CORE, MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE },
	{ MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_RSEQ, MEMBARRIER_CMD_PRIVATE_EXPEDITED_RSEQ },
};
#define NCMDS 3

static int membarrier(int cmd)
{
	return syscall(__NR_membarrier, cmd, 0, 0);
}

static void read_str(const char *path, char *buf, size_t size)
{
	if (wl_read_file(path, buf, size) < 0)
		snprintf(buf, size, "(unreadable: %s)", strerror(errno));
}

static void write_str(const char *path, const char *val)
{
	int fd = open(path, O_WRONLY);

	if (fd < 0 || write(fd, val, strlen(val)) != (ssize_t)strlen(val))
		wl_die(path);
	close(fd);
}

/* What a process reports about itself: "<oom_score_adj>|<oom_adj>|<subreaper>|<membarrier results>" */
static void describe(char *out, size_t size)
{
	char adj[32], oadj[32];
	int sub = -1, i, n;

	read_str("/proc/self/oom_score_adj", adj, sizeof(adj));
	read_str("/proc/self/oom_adj", oadj, sizeof(oadj));
	adj[strcspn(adj, "\n")] = 0;
	oadj[strcspn(oadj, "\n")] = 0;
	prctl(PR_GET_CHILD_SUBREAPER, &sub, 0, 0, 0);
	n = snprintf(out, size, "%s|%s|%d|", adj, oadj, sub);
	for (i = 0; i < NCMDS; i++)
		n += snprintf(out + n, size - n, "%d,", membarrier(private_cmds[i][1]) == 0 ? 0 : errno);
}

static ssize_t rd(int fd, char *buf, size_t size)
{
	ssize_t n = read(fd, buf, size - 1);

	buf[n > 0 ? n : 0] = 0;
	return n;
}

int main(void)
{
	int req[2], rep[2], gpipe[2], supported, i, status, has_audit;
	char before_r[256], before_m[256], after[256], buf[256], luid[32];
	pid_t m, g = 0, gp = -1;

	wl_setup(0);
	if (pipe(req) || pipe(rep) || pipe(gpipe))
		wl_die("pipe");
	supported = membarrier(MEMBARRIER_CMD_QUERY);
	if (supported < 0)
		supported = 0;
	m = fork();
	if (m < 0)
		wl_die("fork");
	if (!m) {
		write_str("/proc/self/oom_score_adj", "123");
		close(req[1]);
		close(rep[0]);
		g = fork();
		if (!g) {
			close(req[0]);
			close(rep[1]);
			close(gpipe[1]);
			for (;;)
				pause();
		}
		if (write(gpipe[1], &g, sizeof(g)) != sizeof(g))
			_exit(3);
		for (;;) {	/* each request: describe yourself; EOF: exit */
			if (rd(req[0], buf, sizeof(buf)) <= 0)
				_exit(0);
			describe(buf, sizeof(buf));
			if (write(rep[1], buf, strlen(buf)) < 0)
				_exit(3);
		}
	}
	if (read(gpipe[0], &g, sizeof(g)) != sizeof(g))
		wl_die("grandchild pid");
	write_str("/proc/self/oom_score_adj", "345");
	has_audit = access("/proc/self/loginuid", W_OK) == 0;
	if (has_audit)
		write_str("/proc/self/loginuid", "4242");
	if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0))
		wl_die("PR_SET_CHILD_SUBREAPER");
	for (i = 0; i < NCMDS; i++)
		if ((supported & private_cmds[i][0]) && membarrier(private_cmds[i][0]))
			wl_die("membarrier register");
	describe(before_r, sizeof(before_r));
	if (write(req[1], "?", 1) != 1 || rd(rep[0], before_m, sizeof(before_m)) <= 0)
		wl_die("ask M");
	wl_say("R %s M %s", before_r, before_m);
	wl_ready();
	wl_wait();

	describe(after, sizeof(after));
	wl_check(!strcmp(after, before_r), "R: oom_score_adj|oom_adj|subreaper|membarrier: '%s', was '%s'",
		 after, before_r);
	if (write(req[1], "?", 1) != 1 || rd(rep[0], after, sizeof(after)) <= 0)
		wl_die("ask M");
	wl_check(!strcmp(after, before_m), "M: oom_score_adj|oom_adj|subreaper|membarrier: '%s', was '%s'",
		 after, before_m);
	if (has_audit) {
		read_str("/proc/self/loginuid", luid, sizeof(luid));
		wl_check(!strcmp(luid, "4242"), "loginuid %s, was 4242", luid);
	}
	/* M goes: its child G is an orphan, reparented to the nearest subreaper, R. */
	close(req[1]);
	wl_check(waitpid(m, &status, 0) == m && WIFEXITED(status) && !WEXITSTATUS(status),
		 "M: status %#x", status);
	for (i = 0; i < 2000; i++) {
		char path[64], stat[512], *p;

		snprintf(path, sizeof(path), "/proc/%d/stat", (int)g);
		if (wl_read_file(path, stat, sizeof(stat)) < 0)
			break;
		p = strrchr(stat, ')');
		gp = p ? (pid_t)atoi(p + 4) : -1;
		if (gp != m)
			break;
		usleep(1000);
	}
	wl_check(gp == getpid(), "orphan %d was reparented to %d, not to the subreaper %d", (int)g, (int)gp,
		 (int)getpid());
	kill(g, SIGKILL);
	waitpid(g, NULL, 0);
	return wl_finish();
}
