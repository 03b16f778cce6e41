/*
 * refused: holds one kind of state pyckpt does not checkpoint yet, chosen
 * by argv[1]; the dump must be refused naming it, and the process must go
 * on as if nothing happened (it PASSes on SIGTERM when its state is intact).
 *   seccomp-notif  a seccomp filter handing getsid() to a user-space
 *                supervisor (SECCOMP_RET_USER_NOTIF; the listener fd is kept)
 *   lease-breaking  a read lease (F_SETLEASE) on a file, being broken: an
 *                open for writing (O_NONBLOCK, so it fails at once) started
 *                the break, which lasts lease-break-time (45 s by default)
 *   io-uring     an io_uring instance with a read of an empty pipe punted to
 *                an io-wq worker thread (iou-wrk-PID), still waiting
 *   mqueue       a POSIX message queue (mq_open), unlinked at once
 *   shared-files a child created with clone(CLONE_FILES): one fd table for
 *                two processes (after SIGTERM: a new fd is seen in both)
 *   uffd-registered  a mapping registered with userfaultfd for missing pages
 *                (VmFlags "um"): who answers its faults is not in the image
 */
#include "wl.h"
#include <linux/filter.h>
#include <linux/io_uring.h>
#include <mqueue.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sched.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <sys/ioctl.h>
#include <linux/userfaultfd.h>

/* io_uring by hand (no liburing): one SQE reading from an empty pipe, forced
 * to a worker thread (IOSQE_ASYNC); the worker blocks until the pipe has data. */
static int io_uring_with_worker(int *pipe_fds)
{
	static char buf[16];
	struct io_uring_params p;
	struct io_uring_sqe *sqes;
	unsigned *sq_tail, *sq_array;
	char *sq;
	int ring;

	memset(&p, 0, sizeof(p));
	ring = syscall(__NR_io_uring_setup, 4, &p);
	if (ring < 0 || pipe(pipe_fds))
		return -1;
	sq = mmap(NULL, p.sq_off.array + p.sq_entries * sizeof(unsigned), PROT_READ | PROT_WRITE,
		  MAP_SHARED | MAP_POPULATE, ring, IORING_OFF_SQ_RING);
	sqes = mmap(NULL, p.sq_entries * sizeof(*sqes), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, ring,
		    IORING_OFF_SQES);
	if (sq == MAP_FAILED || sqes == MAP_FAILED)
		return -1;
	sq_tail = (unsigned *)(sq + p.sq_off.tail);
	sq_array = (unsigned *)(sq + p.sq_off.array);
	memset(&sqes[0], 0, sizeof(sqes[0]));
	sqes[0].opcode = IORING_OP_READ;
	sqes[0].fd = pipe_fds[0];
	sqes[0].addr = (unsigned long)buf;
	sqes[0].len = sizeof(buf);
	sqes[0].flags = IOSQE_ASYNC;
	sq_array[0] = 0;
	__atomic_store_n(sq_tail, *sq_tail + 1, __ATOMIC_RELEASE);
	if (syscall(__NR_io_uring_enter, ring, 1, 0, 0, NULL, 0) != 1)
		return -1;
	return ring;
}

static int has_worker(void)
{
	char path[64], comm[64];
	int i;

	/* the worker's tid follows ours closely */
	for (i = 1; i < 64; i++) {
		snprintf(path, sizeof(path), "/proc/self/task/%d/comm", getpid() + i);
		if (wl_read_file(path, comm, sizeof(comm)) > 0 && !strncmp(comm, "iou-wrk-", 8))
			return 1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	int uring_pipe[2] = { -1, -1 }, tries;
	const char *mode = argc > 1 ? argv[1] : "";
	int fd = -1;
	pid_t sharer = 0;

	wl_setup(0);
	if (!strcmp(mode, "seccomp-notif")) {
		struct sock_filter notif[] = {
			BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
			BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_getsid, 0, 1),
			BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_USER_NOTIF),
			BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		};
		struct sock_fprog prog = { 4, notif };

		if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
			wl_die("no_new_privs");
		fd = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER, &prog);
		if (fd < 0)
			wl_die("seccomp");
	} else if (!strcmp(mode, "lease-breaking")) {
		signal(SIGIO, SIG_IGN);		/* the break notice */
		fd = open("leased", O_RDWR | O_CREAT, 0600);
		if (fd < 0 || close(fd))
			wl_die("create");
		fd = open("leased", O_RDONLY);
		if (fd < 0 || fcntl(fd, F_SETLEASE, F_RDLCK))
			wl_die("lease");
		if (open("leased", O_WRONLY | O_NONBLOCK) >= 0 || errno != EWOULDBLOCK)
			wl_die("breaking the lease");
	} else if (!strcmp(mode, "io-uring")) {
		fd = io_uring_with_worker(uring_pipe);
		if (fd < 0)
			wl_die("io_uring");
		for (tries = 0; tries < 1000 && !has_worker(); tries++)
			usleep(1000);
		if (!has_worker())
			wl_die("no io-wq worker thread");
	} else if (!strcmp(mode, "mqueue")) {
		char name[64];

		/* unlinked at once: a deleted queue must not pass for a deleted file either */
		snprintf(name, sizeof(name), "/pyckpt-wl-%d", (int)getpid());
		fd = mq_open(name, O_RDWR | O_CREAT | O_EXCL, 0600, NULL);
		if (fd < 0 || mq_unlink(name))
			wl_die("mq_open");
	} else if (!strcmp(mode, "shared-files")) {
		sharer = syscall(SYS_clone, CLONE_FILES | SIGCHLD, 0, 0, 0, 0);
		if (sharer < 0)
			wl_die("clone");
		if (!sharer)
			for (;;)
				pause();
		wl_say("sharer %d", (int)sharer);
	} else if (!strcmp(mode, "uffd-registered")) {
		struct uffdio_api api = { .api = UFFD_API };
		struct uffdio_register reg = { .mode = UFFDIO_REGISTER_MODE_MISSING };
		char *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

		fd = syscall(SYS_userfaultfd, O_CLOEXEC);
		if (p == MAP_FAILED || fd < 0 || ioctl(fd, UFFDIO_API, &api))
			wl_die("userfaultfd");
		reg.range.start = (unsigned long)p;
		reg.range.len = 4096;
		if (ioctl(fd, UFFDIO_REGISTER, &reg))
			wl_die("UFFDIO_REGISTER");
		wl_say("registered %lx", (unsigned long)p);
	} else {
		errno = EINVAL;
		wl_die(mode);
	}
	wl_ready();
	wl_wait();
	if (!strcmp(mode, "lease-breaking"))
		wl_check(fcntl(fd, F_GETLEASE) == F_UNLCK, "the lease was not being given up");
	if (!strcmp(mode, "io-uring")) {
		/* the pending read completes: one CQE */
		wl_check(write(uring_pipe[1], "done", 4) == 4, "write to the pipe");
		wl_check(syscall(__NR_io_uring_enter, fd, 0, 1, IORING_ENTER_GETEVENTS, NULL, 0) == 0,
			 "io_uring_enter(GETEVENTS): %s", strerror(errno));
	}
	if (sharer > 0) {
		char path[64];

		fd = open("/dev/null", O_RDONLY);
		snprintf(path, sizeof(path), "/proc/%d/fd/%d", (int)sharer, fd);
		wl_check(fd >= 0 && access(path, F_OK) == 0, "fd %d opened here is not in the sharer %d", fd,
			 (int)sharer);
		kill(sharer, SIGKILL);
		waitpid(sharer, NULL, 0);
	}
	return wl_finish();
}
