/*
 * refused: holds one kind of state pyckpt does not checkpoint yet, chosen
 * by argv[1]; the dump must be refused naming it, and the process must go
 * on as if nothing happened (it PASSes on SIGTERM when its state is intact).
 *   seccomp-notif  a seccomp filter handing getsid() to a user-space
 *                supervisor (SECCOMP_RET_USER_NOTIF; the listener fd is kept)
 *   lease-breaking  a read lease (F_SETLEASE) on a file, being broken: an
 *                open for writing (O_NONBLOCK, so it fails at once) started
 *                the break, which lasts lease-break-time (45 s by default)
 *   uffd-registered  a mapping registered with userfaultfd for missing pages
 *                (VmFlags "um"): who answers its faults is not in the image
 */
#include "wl.h"
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <linux/userfaultfd.h>

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "";
	int fd = -1;

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
	return wl_finish();
}
