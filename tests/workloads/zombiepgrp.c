/*
 * zombiepgrp: a process group whose leader is a zombie of the dumped tree
 * (a shell job whose first process exited before the others).
 *
 * The root forks L, which makes itself a group leader, forks M1 into its
 * group and exits 7 (a zombie: the root does not reap it yet). The root is
 * a child subreaper, so M1 becomes its child. The root then forks M2 and
 * moves it into L's group too (setpgid to a group led by a zombie).
 * After restore: L is a zombie still leading the group (getpgid), M1 and
 * M2 are in it, a signal to the group reaches both members, and reaping L
 * gives its exit status 7; the group lives on without its leader.
 *
 * Likewise a session whose leader is a zombie: S calls setsid(), forks S1
 * and exits 9; S1 (the root's child now) is in S's session and group.
 *
 * pidfds: of the root itself (PIDFD_NONBLOCK), of M1 (pidfd_open), of M2
 * (clone CLONE_PIDFD), of the zombie L, and of a child created with
 * CLONE_PIDFD and reaped (fdinfo "Pid: -1"). Their fdinfo, poll() and
 * pidfd_send_signal(0) must say the same after restore; waitid(P_PIDFD)
 * reaps L through its pidfd; the members' pidfds turn readable when they exit.
 */
#include "wl.h"
#include <poll.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/prctl.h>
#include <sys/wait.h>

static int member(int ready_fd)
{
	char c = 'm';
	sigset_t set;
	int sig;

	/* wait for SIGUSR1 sent to the group, then exit 40 + it */
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigprocmask(SIG_BLOCK, &set, NULL);
	if (write(ready_fd, &c, 1) != 1)
		_exit(3);
	if (sigwait(&set, &sig))
		_exit(4);
	_exit(40 + sig);
}


#ifndef PIDFD_NONBLOCK
#define PIDFD_NONBLOCK O_NONBLOCK
#endif
enum { PF_SELF, PF_M1, PF_M2, PF_ZOMBIE, PF_DEAD, NPF };
static const char *pf_name[NPF] = { "self", "m1", "m2", "zombie", "reaped" };
static int pf[NPF];

static int pidfd_open_(pid_t pid, unsigned int flags)
{
	return syscall(SYS_pidfd_open, pid, flags);
}

/* fork with CLONE_PIDFD: 0 in the child */
static pid_t fork_pidfd(int *pidfd)
{
	return syscall(SYS_clone, CLONE_PIDFD | SIGCHLD, 0, pidfd, 0, 0);
}

/* What a pidfd says: fdinfo without ino/mnt_id (a new inode), poll, a null signal. */
static void pidfd_state(int fd, char *out, size_t size)
{
	char path[64], info[1024], *line, *save = NULL;
	struct pollfd p = { .fd = fd, .events = POLLIN };
	size_t len = 0;
	int rc, err;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	if (wl_read_file(path, info, sizeof(info)) < 0)
		wl_die("pidfd fdinfo");
	for (line = strtok_r(info, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
		if (strncmp(line, "ino:", 4) && strncmp(line, "mnt_id:", 7))
			len += snprintf(out + len, size - len, "%s; ", line);
	rc = poll(&p, 1, 0);
	len += snprintf(out + len, size - len, "poll %d %#x; ", rc, p.revents);
	errno = 0;
	rc = syscall(SYS_pidfd_send_signal, fd, 0, NULL, 0);
	err = errno;
	snprintf(out + len, size - len, "signal %d %s; F_GETFL %#x", rc, rc ? strerror(err) : "", fcntl(fd, F_GETFL));
}

static char pf_before[NPF][1024];

static char proc_state(pid_t pid)
{
	char path[64], buf[512], *p;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if (wl_read_file(path, buf, sizeof(buf)) < 0)
		return '?';
	p = strrchr(buf, ')');
	return p && p[1] ? p[2] : '?';
}

int main(void)
{
	pid_t leader, m1 = 0, m2, got, sleader, s1 = 0;
	int sync[2], status, i;
	char c;
	volatile pid_t *shared;

	wl_setup(0);
	shared = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (shared == MAP_FAILED || prctl(PR_SET_CHILD_SUBREAPER, 1) || pipe(sync))
		wl_die("setup");
	leader = fork();
	if (leader < 0)
		wl_die("fork leader");
	if (leader == 0) {
		pid_t child;

		setpgid(0, 0);
		child = fork();
		if (child == 0)
			member(sync[1]);
		if (child < 0)
			_exit(2);
		shared[0] = child;
		_exit(7);
	}
	if (read(sync[0], &c, 1) != 1)
		wl_die("leader's member");
	for (i = 0; i < 1000 && proc_state(leader) != 'Z'; i++)
		usleep(1000);
	if (proc_state(leader) != 'Z')
		wl_die("leader did not exit");
	sleader = fork();
	if (sleader < 0)
		wl_die("fork session leader");
	if (sleader == 0) {
		pid_t child;

		setsid();
		child = fork();
		if (child == 0)
			member(sync[1]);
		if (child < 0)
			_exit(2);
		shared[1] = child;
		_exit(9);
	}
	if (read(sync[0], &c, 1) != 1)
		wl_die("session leader's member");
	for (i = 0; i < 1000 && proc_state(sleader) != 'Z'; i++)
		usleep(1000);
	m1 = shared[0];
	s1 = shared[1];
	m2 = fork_pidfd(&pf[PF_M2]);
	if (m2 < 0)
		wl_die("fork m2");
	if (m2 == 0) {
		if (setpgid(0, leader))
			_exit(5);
		member(sync[1]);
	}
	if (read(sync[0], &c, 1) != 1 || getpgid(m2) != leader)
		wl_die("m2 into the zombie's group");
	wl_say("leader %d members %d %d, session leader %d member %d", (int)leader, (int)m1, (int)m2, (int)sleader,
	       (int)s1);
	pf[PF_SELF] = pidfd_open_(getpid(), PIDFD_NONBLOCK);
	pf[PF_M1] = pidfd_open_(m1, 0);
	pf[PF_ZOMBIE] = pidfd_open_(leader, 0);
	got = fork_pidfd(&pf[PF_DEAD]);
	if (got == 0)
		_exit(0);
	if (got < 0 || waitpid(got, NULL, 0) != got)
		wl_die("reaped child");
	for (i = 0; i < NPF; i++) {
		if (pf[i] < 0)
			wl_die("pidfd");
		pidfd_state(pf[i], pf_before[i], sizeof(pf_before[i]));
	}
	wl_ready();
	wl_wait();

	wl_check(proc_state(leader) == 'Z', "leader %d is in state %c, not a zombie", (int)leader, proc_state(leader));
	wl_check(getpgid(leader) == leader, "leader's group is %d", (int)getpgid(leader));
	wl_check(getpgid(m1) == leader && getpgid(m2) == leader, "members' groups %d %d, want %d", (int)getpgid(m1),
		 (int)getpgid(m2), (int)leader);
	wl_check(getsid(leader) == getsid(0) && getsid(m1) == getsid(0), "sessions %d %d, want %d", (int)getsid(leader),
		 (int)getsid(m1), (int)getsid(0));
	wl_check(proc_state(m1) == 'S' && proc_state(m2) == 'S', "members in states %c %c", proc_state(m1),
		 proc_state(m2));
	for (i = 0; i < NPF; i++) {
		char now[1024];

		pidfd_state(pf[i], now, sizeof(now));
		wl_check(!strcmp(now, pf_before[i]), "pidfd of %s was [%s], now [%s]", pf_name[i], pf_before[i], now);
	}
	{
		siginfo_t si = { 0 };

		got = waitid(P_PIDFD, pf[PF_ZOMBIE], &si, WEXITED);
		wl_check(got == 0 && si.si_pid == leader && si.si_code == CLD_EXITED && si.si_status == 7,
			 "reaping the leader through its pidfd: %d pid %d status %d", (int)got, (int)si.si_pid,
			 si.si_status);
	}
	wl_check(kill(-leader, SIGUSR1) == 0, "signal to the leaderless group: %s", strerror(errno));
	for (i = 0; i < 2; i++) {
		got = waitpid(-leader, &status, 0);
		wl_check((got == m1 || got == m2) && WIFEXITED(status) && WEXITSTATUS(status) == 40 + SIGUSR1,
			 "member %d ended with %#x", (int)got, status);
	}
	for (i = PF_M1; i <= PF_M2; i++) {
		struct pollfd p = { .fd = pf[i], .events = POLLIN };

		wl_check(poll(&p, 1, 0) == 1 && p.revents & POLLIN, "pidfd of %s not readable after its exit", pf_name[i]);
		errno = 0;
		wl_check(syscall(SYS_pidfd_send_signal, pf[i], 0, NULL, 0) < 0 && errno == ESRCH,
			 "pidfd of %s: signal after reaping: %s", pf_name[i], strerror(errno));
	}
	wl_check(proc_state(sleader) == 'Z', "session leader %d is in state %c", (int)sleader, proc_state(sleader));
	wl_check(getsid(sleader) == sleader && getpgid(sleader) == sleader, "session leader: session %d group %d",
		 (int)getsid(sleader), (int)getpgid(sleader));
	wl_check(getsid(s1) == sleader && getpgid(s1) == sleader, "session member: session %d group %d, want %d",
		 (int)getsid(s1), (int)getpgid(s1), (int)sleader);
	wl_check(getppid() != s1 && kill(s1, 0) == 0, "session member gone");
	got = waitpid(sleader, &status, 0);
	wl_check(got == sleader && WIFEXITED(status) && WEXITSTATUS(status) == 9, "reaping the session leader: %d %#x",
		 (int)got, status);
	kill(s1, SIGUSR1);
	got = waitpid(s1, &status, 0);
	wl_check(got == s1 && WIFEXITED(status) && WEXITSTATUS(status) == 40 + SIGUSR1, "session member ended %#x",
		 status);
	return wl_finish();
}
