/*
 * shares - processes sharing an fd table (clone CLONE_FILES) or a cwd/umask
 * (clone CLONE_FS) with their parent, as vfork-like helpers do.
 *
 *   P   the root, with a thread (which shares P's table, as threads do)
 *   A   clone(CLONE_FILES) of P: one table with P; it opened a file and set
 *       a POSIX lock on P's data file after the clone (the lock's pid is A)
 *   A1  clone(CLONE_FILES) of A: the same table (three processes share it)
 *   Z   clone(CLONE_FILES) of A that exited: a zombie (no table any more)
 *   F   fork() of P: a table and fs of its own, cwd dirF, umask 027
 *   G   clone(CLONE_FS | CLONE_SYSVSEM) of F: F's cwd, umask and semaphore
 *       undo list, a table of its own
 * Every helper dies with its parent (PR_SET_PDEATHSIG), whatever happens.
 * After restore: kcmp says exactly the same sharing (and no more); every fd
 * of P (so of A and A1) and of F is as it was (target, offset, flags,
 * close-on-exec, locks); an fd P opens is in A's table, an fd A closes is gone
 * from P's, an fd A opens is in P's; a chdir and umask in G are F's.
 */
#include "wl.h"

#include <dirent.h>
#include <linux/kcmp.h>
#include <pthread.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#define MAX_FDS 64
#define DUP_FD 101		/* a dup of the data file A closes after restore */

struct fd_state {
	int fd;
	char link[256];
	char info[512];		/* fdinfo lines that must not change: pos, flags, locks */
};

struct table {
	int n;
	struct fd_state fds[MAX_FDS];
};

static int cmd_a[2], ack_a[2], cmd_g[2], ack_g[2];
static pid_t tid_t;

static pid_t clone_with(unsigned long flags)
{
	pid_t parent = getpid(), p = syscall(SYS_clone, flags | SIGCHLD, 0, 0, 0, 0);

	if (p < 0)
		wl_die("clone");
	if (!p && (prctl(PR_SET_PDEATHSIG, SIGKILL) || getppid() != parent))
		_exit(9);
	return p;
}

static int kcmp(pid_t a, pid_t b, int type)
{
	return syscall(SYS_kcmp, a, b, type, 0, 0);
}

static void *thread_main(void *arg)
{
	(void)arg;
	tid_t = syscall(SYS_gettid);
	for (;;)
		pause();
	return NULL;
}

/* The fdinfo lines that describe the open file and its locks (lock numbers stripped). */
static void read_info(pid_t pid, int fd, char *out, size_t size)
{
	char path[64], buf[2048], *line, *save;
	size_t used = 0;
	int f, n;

	snprintf(path, sizeof(path), "/proc/%d/fdinfo/%d", (int)pid, fd);
	f = open(path, O_RDONLY | O_CLOEXEC);
	n = f < 0 ? -1 : read(f, buf, sizeof(buf) - 1);
	if (f >= 0)
		close(f);
	buf[n > 0 ? n : 0] = 0;
	out[0] = 0;
	for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		const char *keep = NULL;

		/* stdout and stderr: the log this prints to, at a moving offset */
		if ((!strncmp(line, "pos:", 4) && fd > 2) || !strncmp(line, "flags:", 6))
			keep = line;
		else if (!strncmp(line, "lock:", 5) && strchr(line + 5, ':'))
			keep = strchr(line + 5, ':') + 1;
		if (keep)
			used += snprintf(out + used, used < size ? size - used : 0, "%s|", keep);
	}
}

/* Every fd of pid (but the listing's own), with its link and fdinfo. */
static void snapshot(pid_t pid, struct table *t)
{
	char path[64];
	struct dirent *de;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	t->n = 0;
	d = opendir(path);
	if (!d)
		wl_die("opendir fd");
	while ((de = readdir(d)) && t->n < MAX_FDS) {
		struct fd_state *s = &t->fds[t->n];
		ssize_t len;
		char link[64];

		if (de->d_name[0] == '.' || atoi(de->d_name) == dirfd(d))
			continue;
		s->fd = atoi(de->d_name);
		snprintf(link, sizeof(link), "/proc/%d/fd/%d", (int)pid, s->fd);
		len = readlink(link, s->link, sizeof(s->link) - 1);
		s->link[len > 0 ? len : 0] = 0;
		read_info(pid, s->fd, s->info, sizeof(s->info));
		t->n++;
	}
	closedir(d);
}

static const struct fd_state *find(const struct table *t, int fd)
{
	for (int i = 0; i < t->n; i++)
		if (t->fds[i].fd == fd)
			return &t->fds[i];
	return NULL;
}

/* Same fds, same files (pipes: same kind only, their inode is new), same fdinfo. */
static void compare(const char *who, const struct table *before, const struct table *after)
{
	wl_check(before->n == after->n, "%s: %d fds, was %d", who, after->n, before->n);
	for (int i = 0; i < before->n; i++) {
		const struct fd_state *b = &before->fds[i], *a = find(after, b->fd);

		if (!a) {
			wl_fail("%s: fd %d (%s) is gone", who, b->fd, b->link);
			continue;
		}
		if (strncmp(b->link, "pipe:", 5) || strncmp(a->link, "pipe:", 5))
			wl_check(!strcmp(a->link, b->link), "%s: fd %d is %s, was %s", who, b->fd, a->link, b->link);
		wl_check(!strcmp(a->info, b->info), "%s: fd %d fdinfo %s, was %s", who, b->fd, a->info, b->info);
	}
}

static void cloexec_of(int fd, int want)
{
	int flags = fcntl(fd, F_GETFD);

	wl_check(flags >= 0 && !!(flags & FD_CLOEXEC) == want, "fd %d: F_GETFD %d, want cloexec %d", fd, flags, want);
}

static int ends_with(const char *s, const char *tail)
{
	size_t n = strlen(s), m = strlen(tail);

	return n >= m && !strcmp(s + n - m, tail);
}

static void link_of(const char *path, char *buf, size_t size)
{
	ssize_t n = readlink(path, buf, size - 1);

	buf[n > 0 ? n : 0] = 0;
}

static unsigned umask_of(pid_t pid)
{
	char path[64], buf[4096], *p;
	unsigned mask = ~0u;
	int f, n;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = open(path, O_RDONLY | O_CLOEXEC);
	n = f < 0 ? -1 : read(f, buf, sizeof(buf) - 1);
	if (f >= 0)
		close(f);
	buf[n > 0 ? n : 0] = 0;
	p = strstr(buf, "Umask:");
	if (p)
		sscanf(p + 6, "%o", &mask);
	return mask;
}

/* One command to a helper, one int back. */
static int ask(int *cmd, int *ack, char c)
{
	int answer = -1;

	if (write(cmd[1], &c, 1) != 1 || read(ack[0], &answer, sizeof(answer)) != sizeof(answer))
		wl_fail("command %c: no answer", c);
	return answer;
}

/* A: serves P's commands through the shared table. */
static void a_main(void)
{
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 10 };
	int data = 3, answer;
	char c;

	if (open("opened-by-a", O_RDWR | O_CREAT | O_APPEND, 0640) < 0 || fcntl(data, F_SETLK, &fl))
		_exit(3);
	if (!clone_with(CLONE_FILES))		/* A1 */
		for (;;)
			pause();
	if (!clone_with(CLONE_FILES))		/* Z */
		_exit(7);
	while (read(cmd_a[0], &c, 1) == 1) {
		answer = c == 'c' ? close(DUP_FD) : open("opened-after", O_RDWR | O_CREAT, 0600);
		if (write(ack_a[1], &answer, sizeof(answer)) != sizeof(answer))
			_exit(4);
	}
	_exit(5);
}

/* G: F's fs; changes it on command. */
static void g_main(void)
{
	int answer;
	char c;

	while (read(cmd_g[0], &c, 1) == 1) {
		answer = chdir("sub");
		umask(077);
		if (write(ack_g[1], &answer, sizeof(answer)) != sizeof(answer))
			_exit(4);
	}
	_exit(5);
}

static pid_t child_of(pid_t parent, pid_t not)
{
	char path[64];
	int c1 = 0, c2 = 0, c3 = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/task/%d/children", (int)parent, (int)parent);
	f = fopen(path, "r");
	if (!f)
		wl_die("children");
	if (fscanf(f, "%d %d %d", &c1, &c2, &c3) < 1)
		c1 = 0;
	fclose(f);
	return c1 != not ? c1 : c2 != not ? c2 : c3;
}

static char state_of(pid_t pid, pid_t *ppid)
{
	char path[64], buf[512], *p;
	char state = '?';
	int f, n;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = open(path, O_RDONLY | O_CLOEXEC);
	n = f < 0 ? -1 : read(f, buf, sizeof(buf) - 1);
	if (f >= 0)
		close(f);
	buf[n > 0 ? n : 0] = 0;
	p = strrchr(buf, ')');
	if (p)
		sscanf(p + 2, "%c %d", &state, (int *)ppid);
	return state;
}

static void check_sharing(pid_t p, pid_t a, pid_t a1, pid_t f, pid_t g, const char *when)
{
	wl_check(kcmp(p, a, KCMP_FILES) == 0 && kcmp(p, a1, KCMP_FILES) == 0 && kcmp(p, tid_t, KCMP_FILES) == 0,
		 "%s: P, A, A1 and P's thread do not share one fd table", when);
	wl_check(kcmp(p, f, KCMP_FILES) != 0 && kcmp(f, g, KCMP_FILES) != 0 && kcmp(p, g, KCMP_FILES) != 0,
		 "%s: F or G shares an fd table it should not", when);
	wl_check(kcmp(f, g, KCMP_FS) == 0, "%s: F and G do not share cwd/umask", when);
	/* A has no undo list; F's (shared with G) is not P's (shared with P's thread) */
	wl_check(kcmp(f, g, KCMP_SYSVSEM) == 0 && kcmp(f, a, KCMP_SYSVSEM) != 0 && kcmp(p, f, KCMP_SYSVSEM) != 0 &&
		 kcmp(p, tid_t, KCMP_SYSVSEM) == 0, "%s: semaphore undo lists shared otherwise", when);
	wl_check(kcmp(p, f, KCMP_FS) != 0 && kcmp(p, a, KCMP_FS) != 0 && kcmp(a, a1, KCMP_FS) != 0,
		 "%s: P, A, A1 or F share an fs they should not", when);
	wl_check(kcmp(p, a, KCMP_VM) != 0 && kcmp(p, a, KCMP_SIGHAND) != 0, "%s: P and A share memory", when);
}

int main(void)
{
	struct table before_p, before_f, after;
	char buf[256], path[64], cwd_f[256], cwd_g[256];
	pthread_t thread;
	pid_t me, a, a1, z, f, g, zp = 0;
	int data, fd;

	wl_setup(0);
	me = getpid();
	data = open("data", O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (data != 3 || write(data, "0123456789abcdef", 16) != 16 || lseek(data, 5, SEEK_SET) != 5)
		wl_die("data");
	if (pipe(cmd_a) || pipe(ack_a) || pipe2(cmd_g, O_CLOEXEC) || pipe(ack_g))
		wl_die("pipe");
	if (dup3(data, DUP_FD, O_CLOEXEC) != DUP_FD || open("/dev/null", O_WRONLY | O_APPEND) < 0)
		wl_die("dup");
	if (mkdir("dirF", 0755) || mkdir("dirF/sub", 0700))
		wl_die("mkdir");
	if (pthread_create(&thread, NULL, thread_main, NULL))
		wl_die("pthread_create");
	while (!tid_t)
		usleep(1000);
	a = clone_with(CLONE_FILES);
	if (!a)
		a_main();
	f = clone_with(0);
	if (!f) {
		close(DUP_FD);
		if (chdir("dirF") || open("only-f", O_RDONLY | O_CREAT, 0600) < 0)
			_exit(3);
		umask(027);
		if (!clone_with(CLONE_FS | CLONE_SYSVSEM))
			g_main();
		for (;;)
			pause();
	}
	/* wait for A's open, lock and children, and for G */
	for (int i = 0; i < 2000 && !((a1 = child_of(a, 0)) && (z = child_of(a, a1)) && (g = child_of(f, 0))); i++)
		usleep(1000);
	if (!a1 || !z || !g)
		wl_die("helpers did not start");
	/* which of A's two children is the zombie, once it is one */
	for (int i = 0; i < 2000 && state_of(z, &zp) != 'Z' && state_of(a1, &zp) != 'Z'; i++)
		usleep(1000);
	if (state_of(z, &zp) != 'Z') {
		pid_t t = a1;
		a1 = z;
		z = t;
	}
	for (int i = 0; i < 2000 && umask_of(g) != 027; i++)
		usleep(1000);
	usleep(100000);		/* A's lock is set before its children exist: all settled */
	check_sharing(me, a, a1, f, g, "before");
	snapshot(me, &before_p);
	snapshot(f, &before_f);
	wl_check(find(&before_p, 3) && strstr(find(&before_p, 3)->info, "POSIX"), "A's lock is not on fd 3");
	wl_say("P %d A %d A1 %d Z %d F %d G %d", (int)me, (int)a, (int)a1, (int)z, (int)f, (int)g);
	if (wl_failures)
		return wl_finish();
	wl_ready();
	wl_wait();

	check_sharing(me, a, a1, f, g, "after");
	snapshot(me, &after);
	compare("P", &before_p, &after);
	snapshot(a, &after);
	compare("A", &before_p, &after);
	snapshot(a1, &after);
	compare("A1", &before_p, &after);
	snapshot(f, &after);
	compare("F", &before_f, &after);
	snprintf(buf, sizeof(buf), "POSIX  ADVISORY  WRITE %d ", (int)a);
	snapshot(me, &after);
	wl_check(find(&after, 3) && strstr(find(&after, 3)->info, buf), "fd 3: lock not A's: %s",
		 find(&after, 3) ? find(&after, 3)->info : "-");
	cloexec_of(3, 0);
	cloexec_of(DUP_FD, 1);
	cloexec_of(cmd_g[1], 1);
	wl_check(state_of(z, &zp) == 'Z' && zp == a, "Z %d: not a zombie child of A", (int)z);

	/* one table: an open in P is in A's; a close and an open in A are P's */
	fd = open("opened-by-p", O_RDONLY | O_CREAT, 0600);
	snprintf(path, sizeof(path), "/proc/%d/fd/%d", (int)a, fd);
	link_of(path, buf, sizeof(buf));
	wl_check(fd >= 0 && ends_with(buf, "/opened-by-p"), "P's new fd %d is %s in A", fd, buf);
	wl_check(ask(cmd_a, ack_a, 'c') == 0, "A could not close fd %d", DUP_FD);
	wl_check(fcntl(DUP_FD, F_GETFD) < 0 && errno == EBADF, "fd %d closed by A is still open in P", DUP_FD);
	fd = ask(cmd_a, ack_a, 'o');
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	link_of(path, buf, sizeof(buf));
	wl_check(fd >= 0 && ends_with(buf, "/opened-after"), "A's new fd %d is %s in P", fd, buf);

	/* one fs: G's chdir and umask are F's */
	snprintf(path, sizeof(path), "/proc/%d/cwd", (int)f);
	link_of(path, cwd_f, sizeof(cwd_f));
	snprintf(path, sizeof(path), "/proc/%d/cwd", (int)g);
	link_of(path, cwd_g, sizeof(cwd_g));
	wl_check(ends_with(cwd_f, "/dirF") && !strcmp(cwd_f, cwd_g) && umask_of(f) == 027 && umask_of(g) == 027,
		 "F and G: cwd %s and %s, umask %o and %o", cwd_f, cwd_g, umask_of(f), umask_of(g));
	wl_check(ask(cmd_g, ack_g, 'd') == 0, "G could not chdir");
	snprintf(path, sizeof(path), "/proc/%d/cwd", (int)f);
	link_of(path, cwd_f, sizeof(cwd_f));
	wl_check(ends_with(cwd_f, "/dirF/sub") && umask_of(f) == 077, "G's chdir/umask not F's: %s %o",
		 cwd_f, umask_of(f));
	link_of("/proc/self/cwd", buf, sizeof(buf));
	wl_check(!ends_with(buf, "/sub") && !ends_with(buf, "/dirF") && umask_of(me) != 077, "P's fs moved too");

	kill(a, SIGKILL);
	kill(a1, SIGKILL);
	kill(f, SIGKILL);
	kill(g, SIGKILL);
	return wl_finish();
}
