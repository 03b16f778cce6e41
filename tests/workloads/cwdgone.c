/*
 * cwdgone - current directories that are not plain paths.
 *
 *   A   cwd is a directory removed after A entered it ("... (deleted)")
 *   A2  child of A: the same removed directory (inherited)
 *   B   cwd is /proc/<A>, the /proc directory of a process of the tree
 * After restore: /proc/X/cwd reads the same for each; A's and A2's cwd is
 * one directory (same device and inode), removed (st_nlink 0), with the same
 * mode and owner; B's cwd is the /proc directory of the restored A.
 */
#include "wl.h"

#include <sys/stat.h>
#include <sys/wait.h>

static void link_of(pid_t pid, char *buf, size_t size)
{
	char path[64];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%d/cwd", (int)pid);
	n = readlink(path, buf, size - 1);
	buf[n > 0 ? n : 0] = 0;
}

static int stat_cwd(pid_t pid, struct stat *st)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/%d/cwd", (int)pid);
	return stat(path, st);
}

static pid_t child(int (*fn)(void *), void *arg)
{
	pid_t p = fork();

	if (p < 0)
		wl_die("fork");
	if (!p)
		_exit(fn(arg));
	return p;
}

static int idle(void *arg)
{
	(void)arg;
	for (;;)
		pause();
	return 0;
}

static int in_gone(void *arg)
{
	int *go = arg;

	if (chdir("gone"))
		_exit(3);
	child(idle, NULL);
	if (write(go[1], "x", 1) != 1)
		_exit(4);
	for (;;)
		pause();
	return 0;
}

static pid_t a_pid;

static int in_proc(void *arg)
{
	char path[64];

	(void)arg;
	snprintf(path, sizeof(path), "/proc/%d", (int)a_pid);
	if (chdir(path))
		_exit(3);
	for (;;)
		pause();
	return 0;
}

int main(void)
{
	int go[2], i;
	pid_t a2 = 0, b, pids[3];
	char before[3][256], after[256], path[64];
	struct stat st_before[3], st, procdir;
	FILE *f;

	wl_setup(0);
	if (pipe(go) || mkdir("gone", 0710))
		wl_die("setup");
	a_pid = child(in_gone, go);
	if (read(go[0], path, 1) != 1)
		wl_die("wait A");
	if (rmdir("gone"))
		wl_die("rmdir");
	/* A's child: the only child of A */
	snprintf(path, sizeof(path), "/proc/%d/task/%d/children", (int)a_pid, (int)a_pid);
	f = fopen(path, "r");
	if (!f || fscanf(f, "%d", &a2) != 1)
		wl_die("children of A");
	fclose(f);
	b = child(in_proc, NULL);
	pids[0] = a_pid;
	pids[1] = a2;
	pids[2] = b;
	for (i = 0; i < 3; i++) {
		do {
			link_of(pids[i], before[i], sizeof(before[i]));
		} while (i == 2 && strncmp(before[i], "/proc/", 6) && !usleep(1000));
		if (stat_cwd(pids[i], &st_before[i]))
			wl_die("stat cwd");
	}
	wl_say("A %s | B %s", before[0], before[2]);
	wl_ready();
	wl_wait();

	for (i = 0; i < 3; i++) {
		link_of(pids[i], after, sizeof(after));
		wl_check(!strcmp(after, before[i]), "process %d: cwd '%s', was '%s'", (int)pids[i], after,
			 before[i]);
	}
	for (i = 0; i < 2; i++) {
		if (stat_cwd(pids[i], &st))
			wl_die("stat cwd");
		wl_check(st.st_nlink == 0, "process %d: cwd has %lu links, was removed", (int)pids[i],
			 (unsigned long)st.st_nlink);
		wl_check(st.st_mode == st_before[i].st_mode && st.st_uid == st_before[i].st_uid &&
			 st.st_gid == st_before[i].st_gid, "process %d: cwd mode %o owner %d:%d, was %o %d:%d",
			 (int)pids[i], st.st_mode, st.st_uid, st.st_gid, st_before[i].st_mode,
			 st_before[i].st_uid, st_before[i].st_gid);
	}
	if (stat_cwd(a_pid, &st_before[0]) || stat_cwd(a2, &st))
		wl_die("stat cwd");
	wl_check(st.st_dev == st_before[0].st_dev && st.st_ino == st_before[0].st_ino,
		 "A and its child no longer share one removed cwd");
	snprintf(path, sizeof(path), "/proc/%d", (int)a_pid);
	if (stat(path, &procdir) || stat_cwd(b, &st))
		wl_die("stat /proc/A");
	wl_check(st.st_dev == procdir.st_dev && st.st_ino == procdir.st_ino,
		 "B's cwd is not the /proc directory of the restored A");
	kill(a2, SIGKILL);
	kill(a_pid, SIGKILL);
	kill(b, SIGKILL);
	waitpid(a_pid, NULL, 0);
	waitpid(b, NULL, 0);
	return wl_finish();
}
