/*
 * attrs: process attributes a user would notice.
 *
 *  - cwd: a subdirectory of the start dir (getcwd() and a relative open);
 *  - umask 027 (and a file created after restore gets the masked mode);
 *  - comm "wl-attrs-comm" via PR_SET_NAME (/proc/self/comm too);
 *  - rlimits: soft limits of NOFILE, CORE, STACK, NPROC, MSGQUEUE lowered;
 *    every getrlimit() equal before and after;
 *  - credentials (when started as root): supplementary groups {4001,4002},
 *    real/effective/saved gid 3001/3002/0 and uid 2001/2002/0, i.e. not
 *    root any more but root kept in the saved ids, as a daemon that may
 *    take its privileges back would; the dumpable flag is set back to 1
 *    (changing ids clears it). getres[ug]id(), getgroups(), fsuid/fsgid
 *    and PR_GET_DUMPABLE equal before and after.
 */
#include "wl.h"

#include <grp.h>
#include <sys/fsuid.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>

#define COMM "wl-attrs-comm"

struct ids {
	uid_t ruid, euid, suid, fsuid;
	gid_t rgid, egid, sgid, fsgid;
	int ngroups;
	gid_t groups[64];
	int dumpable;
};

static const struct {
	int res;
	const char *name;
	rlim_t soft;		/* lowered soft limit */
} limits[] = {
	{ RLIMIT_NOFILE, "NOFILE", 200 },
	{ RLIMIT_CORE, "CORE", 0 },
	{ RLIMIT_STACK, "STACK", 4u << 20 },
	{ RLIMIT_NPROC, "NPROC", 1000 },
	{ RLIMIT_MSGQUEUE, "MSGQUEUE", 4096 },
};
#define NLIMITS (sizeof(limits) / sizeof(limits[0]))
#define NRES RLIM_NLIMITS

static void read_ids(struct ids *ids)
{
	getresuid(&ids->ruid, &ids->euid, &ids->suid);
	getresgid(&ids->rgid, &ids->egid, &ids->sgid);
	ids->fsuid = setfsuid(-1);
	ids->fsgid = setfsgid(-1);
	ids->ngroups = getgroups(64, ids->groups);
	ids->dumpable = prctl(PR_GET_DUMPABLE);
}

static void compare_ids(const struct ids *a, const struct ids *b)
{
	int i;

	wl_check(a->ruid == b->ruid && a->euid == b->euid && a->suid == b->suid,
		 "uids %d/%d/%d, were %d/%d/%d", b->ruid, b->euid, b->suid,
		 a->ruid, a->euid, a->suid);
	wl_check(a->rgid == b->rgid && a->egid == b->egid && a->sgid == b->sgid,
		 "gids %d/%d/%d, were %d/%d/%d", b->rgid, b->egid, b->sgid,
		 a->rgid, a->egid, a->sgid);
	wl_check(a->fsuid == b->fsuid && a->fsgid == b->fsgid,
		 "fsuid/fsgid %d/%d, were %d/%d", b->fsuid, b->fsgid,
		 a->fsuid, a->fsgid);
	wl_check(a->dumpable == b->dumpable, "dumpable %d, was %d",
		 b->dumpable, a->dumpable);
	if (a->ngroups != b->ngroups) {
		wl_fail("%d supplementary groups, were %d", b->ngroups, a->ngroups);
		return;
	}
	for (i = 0; i < a->ngroups; i++)
		wl_check(a->groups[i] == b->groups[i],
			 "supplementary group %d is %d, was %d", i,
			 b->groups[i], a->groups[i]);
}

int main(void)
{
	char cwd_before[4096], cwd_after[4096], comm[32], proc_comm[64];
	struct rlimit rl_before[NRES], rl_after[NRES];
	struct ids ids_before, ids_after;
	gid_t groups[2] = { 4001, 4002 };
	struct stat st;
	mode_t um;
	size_t i;
	int fd;

	wl_setup(0);
	/* world-writable: files are created in it after the ids change */
	if (mkdir("subdir", 0755) || chmod("subdir", 01777) || chdir("subdir"))
		wl_die("mkdir/chdir subdir");
	fd = open("here.txt", O_WRONLY | O_CREAT, 0644);
	if (fd < 0)
		wl_die("open here.txt");
	close(fd);
	umask(027);
	if (prctl(PR_SET_NAME, COMM))
		wl_die("PR_SET_NAME");
	for (i = 0; i < NLIMITS; i++) {
		struct rlimit rl;

		getrlimit(limits[i].res, &rl);
		if (rl.rlim_max == RLIM_INFINITY || limits[i].soft < rl.rlim_max)
			rl.rlim_cur = limits[i].soft;
		if (setrlimit(limits[i].res, &rl))
			wl_die(limits[i].name);
	}
	if (geteuid() == 0) {
		if (setgroups(2, groups) || setresgid(3001, 3002, 0) ||
		    setresuid(2001, 2002, 0))
			wl_die("dropping ids");
		prctl(PR_SET_DUMPABLE, 1);
	} else {
		wl_say("not root: credentials are not changed");
	}

	if (!getcwd(cwd_before, sizeof(cwd_before)))
		wl_die("getcwd");
	for (i = 0; i < NRES; i++)
		getrlimit(i, &rl_before[i]);
	read_ids(&ids_before);

	wl_ready();
	wl_wait();

	read_ids(&ids_after);
	compare_ids(&ids_before, &ids_after);
	for (i = 0; i < NRES; i++) {
		getrlimit(i, &rl_after[i]);
		wl_check(rl_after[i].rlim_cur == rl_before[i].rlim_cur &&
			 rl_after[i].rlim_max == rl_before[i].rlim_max,
			 "rlimit %zu is %llu/%llu, was %llu/%llu", i,
			 (unsigned long long)rl_after[i].rlim_cur,
			 (unsigned long long)rl_after[i].rlim_max,
			 (unsigned long long)rl_before[i].rlim_cur,
			 (unsigned long long)rl_before[i].rlim_max);
	}
	if (!getcwd(cwd_after, sizeof(cwd_after)))
		wl_fail("getcwd after restore: %s", strerror(errno));
	else
		wl_check(!strcmp(cwd_before, cwd_after), "cwd is %s, was %s",
			 cwd_after, cwd_before);
	wl_check(access("here.txt", F_OK) == 0,
		 "relative path here.txt not found from cwd");

	um = umask(027);
	wl_check(um == 027, "umask is %03o, was 027", (unsigned)um);
	fd = open("after.txt", O_WRONLY | O_CREAT | O_EXCL, 0666);
	wl_check(fd >= 0 && fstat(fd, &st) == 0 && (st.st_mode & 0777) == 0640,
		 "file created after restore has mode %03o, expected 640",
		 fd >= 0 ? (unsigned)(st.st_mode & 0777) : 0);
	if (fd >= 0)
		close(fd);

	memset(comm, 0, sizeof(comm));
	prctl(PR_GET_NAME, comm);
	wl_check(!strcmp(comm, COMM), "comm is '%s', expected '%s'", comm, COMM);
	wl_read_file("/proc/self/comm", proc_comm, sizeof(proc_comm));
	wl_check(!strcmp(proc_comm, COMM "\n"), "/proc/self/comm is '%s'",
		 proc_comm);
	return wl_finish();
}
