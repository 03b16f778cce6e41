/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * crak.h - the kernel/user contract of crak.ko (/dev/crak).
 *
 * This header is the only definition of the interface; pyckpt mirrors it in
 * pyckpt/sources/crak_uapi.py and tests/unit/test_crak_uapi.py proves the
 * mirror by compiling a probe against this file.
 *
 * Rules that hold for every command
 * ---------------------------------
 * - Fixed-width fields only; user pointers travel as __u64; every struct has
 *   explicit padding, a `flags` word and reserved space, and a size that is a
 *   multiple of 8, so the layout is the same on x86-64, arm64 and mips64.
 * - Unknown bits in `flags` (outside CRAK_<CMD>_FLAGS_ALL) -> -EOPNOTSUPP.
 *   A non-zero reserved or padding field -> -EINVAL.
 * - A bad user pointer -> -EFAULT; a length above the documented bound ->
 *   -E2BIG (or the call does a bounded part of the work, where stated).
 * - pids/tids are read and reported in the caller's pid namespace; uids and
 *   gids in the caller's user namespace.
 * - Opening /dev/crak needs CAP_CHECKPOINT_RESTORE or CAP_SYS_ADMIN.
 *
 * Commands on an open /dev/crak
 * -----------------------------
 * CRAK_IOC_VERSION (struct crak_version)
 *   Must be the first ioctl on an open /dev/crak; any other ioctl before a
 *   successful handshake fails with -EPROTO. The caller puts
 *   CRAK_ABI_VERSION in abi_version; the module always writes its own
 *   version back in module_version and, on a mismatch, fails with
 *   -EPROTONOSUPPORT. On success it also reports page_size, the number of
 *   signals (_NSIG) and the limits below.
 *
 * CRAK_IOC_OPEN_SESSION (struct crak_open_session) -> returns a session fd
 *   Opens a session on the process whose thread-group id is `pid`. The
 *   session fd (an anon inode, "[crak-session]") carries every other
 *   command. Refused with:
 *     -ESRCH   no such process, pid is not a thread-group leader, or it is
 *              exiting / a zombie / has no mm;
 *     -EINVAL  pid is a kernel thread;
 *     -EDEADLK pid is the caller's own thread group;
 *     -EPERM   the caller could not ptrace-attach to it: the same uids and
 *              gids as the target (real, effective, saved) and a dumpable
 *              mm, or CAP_SYS_PTRACE in the target's user namespace. LSM
 *              ptrace hooks are not consulted (not exported to modules).
 *   Flags: CRAK_OPEN_F_CLOEXEC.
 *   Closing the last reference to the session fd (including when the
 *   holder dies) thaws the target.
 *
 * Commands on a session fd
 * ------------------------
 * CRAK_IOC_FREEZE (struct crak_freeze)
 *   Stops every thread of the target and returns once all of them are
 *   parked, or fails (and leaves the target running):
 *     -ETIMEDOUT some thread did not park within timeout_ms (0 means
 *                CRAK_FREEZE_DEFAULT_TIMEOUT_MS); e.g. a thread in an
 *                uninterruptible sleep, or one in a ptrace stop;
 *     -EINTR     the caller got a signal while waiting;
 *     -EALREADY  already frozen.
 *   nr_threads reports how many threads are frozen, nr_stopped how many of
 *   them are in a job-control stop (in: must be 0).
 *   Job-control stops: a thread already in a job-control stop (SIGSTOP,
 *   SIGTSTP...: TASK_STOPPED, /proc state 'T') cannot run until SIGCONT,
 *   so it counts as frozen as it is: its registers and state are read as
 *   for a parked thread (they are those of its stop inside get_signal(),
 *   i.e. what a PTRACE_INTERRUPT stop shows), and the park work stays
 *   queued on it. If SIGCONT (or SIGKILL) wakes it while frozen, it runs
 *   that work on its way back to user mode and parks there until thaw, so
 *   it never runs user code meanwhile. Known limit: a signal with a handler
 *   that is dequeued right after that wake-up is set up (signal frame,
 *   registers) before the thread parks, so state read before such a wake-up
 *   is stale; the caller that cares checks /proc state 'T' after reading.
 *   Thaw leaves a stopped thread in its stop (the queued work then runs
 *   as a no-op whenever it is continued or killed). The parent sees no
 *   extra stop or continue notification from the freeze itself.
 *   How: no ptrace and no signal. The module queues a task_work with
 *   TWA_SIGNAL on every thread; that sets TIF_NOTIFY_SIGNAL and wakes
 *   interruptible sleeps, so a thread blocked in a syscall returns from it
 *   with -ERESTART* (or -EINTR where the syscall never restarts, exactly as
 *   under PTRACE_INTERRUPT) and runs the work on its way back to user mode,
 *   inside get_signal() before the restart fix-up. The work parks the
 *   thread in a killable sleep until thaw. Registers read while parked show
 *   what PTRACE_GETREGSET shows at a PTRACE_INTERRUPT stop: e.g. on x86-64
 *   orig_ax = syscall number and ax = -ERESTARTSYS for a thread in read().
 *   After thaw get_signal() finds no signal and the kernel's usual restart
 *   logic re-enters the syscall: the program sees nothing. The parent sees
 *   no stop (no job control is involved); /proc shows the threads in 'D'.
 *   Threads created while freezing are caught by rescanning the thread
 *   group until every thread is parked. io_uring worker threads never
 *   return to user mode and are neither frozen nor listed.
 *
 * CRAK_IOC_THAW (struct crak_thaw)
 *   Releases every parked thread. -EALREADY when not frozen.
 *
 * CRAK_IOC_THREADS (struct crak_threads)
 *   Writes up to `count` thread ids into tids_ptr (__u32 each) and sets
 *   nr_threads to the number of threads; call again with a larger buffer
 *   when nr_threads > count. count <= CRAK_MAX_THREADS.
 *
 * CRAK_IOC_GET_REGSET (struct crak_regset)       [frozen only, else -EBUSY]
 *   Reads the regset with ELF note type `note_type` (NT_PRSTATUS,
 *   NT_PRFPREG, NT_X86_XSTATE, NT_ARM_TLS, ...) of thread `tid`; the bytes
 *   are those PTRACE_GETREGSET returns. buf_len must be a multiple of the
 *   regset's element size (-EINVAL otherwise, as ptrace); buf_len 0 only
 *   reports full_len. out_len is the number of bytes written.
 *   -ESRCH: tid is not a parked thread of the target; -ENODATA: this arch
 *   has no regset with that note type.
 *
 * CRAK_IOC_GET_VMA (struct crak_vma)
 *   Describes the first VMA whose end is above `addr` (a cursor: call again
 *   with addr = end), or fails with -ENOENT past the last one. Reports
 *   start, end, CRAK_VMA_* protection/flag bits, the file offset in bytes
 *   (0 for anonymous memory, as /proc/PID/maps), the backing file's dev,
 *   ino, mode, f_flags, and a name: the d_path of the file, or "[vdso]",
 *   "[vvar]", "[stack]", "[heap]"... (kind tells which). The name is
 *   written NUL-terminated into name_ptr (name_cap bytes); name_len is its
 *   length without the NUL; a name that does not fit is -ENAMETOOLONG with
 *   name_len set.
 *
 * CRAK_IOC_DUMP_PAGES (struct crak_dump_pages)    [frozen only, else -EBUSY]
 *   Copies the pages of [start, end) that must be saved straight from the
 *   target into the caller's file descriptor out_fd, at file offset
 *   out_offset (pwrite-like; the file position is not used), one page
 *   after the other in address order, and writes the runs it dumped
 *   (struct crak_page_run) into runs_ptr. A page is dumped iff its PTE is
 *   present and it is not a file page (no normal page, e.g. the zero page,
 *   or an anonymous page), or the PTE is a swap entry: the same rule as
 *   reading /proc/PID/pagemap (present && !file) || swapped. Pages of
 *   VM_SHARED/VM_MAYSHARE, VM_IO/VM_PFNMAP, hugetlb and special ([vdso],
 *   [vvar]...) VMAs are never dumped. The work is bounded: the call stops
 *   after CRAK_DUMP_MAX_PAGES pages, when runs_cap runs are used, or when
 *   a signal is pending, and reports in `next` where to continue (next ==
 *   end when done); out_offset is advanced past the data written, nr_pages
 *   and nr_runs tell what was written. start/end must be page aligned.
 *
 * CRAK_IOC_GET_FD (struct crak_fd)
 *   Describes the first open fd >= `fd` of the target (a cursor: call
 *   again with fd + 1), or -ENOENT. Reports close-on-exec, kind
 *   (CRAK_FD_KIND_*), f_flags, f_mode, pos, dev, ino, rdev, mode, a pipe
 *   identity (the pipe inode number, for pipes and FIFOs) and the d_path
 *   of the file ("pipe:[N]", "socket:[N]", "anon_inode:[eventfd]" ...),
 *   with the same name_ptr/name_cap/name_len rules as CRAK_IOC_GET_VMA.
 *
 * CRAK_IOC_GET_SIGACTIONS (struct crak_sigactions)
 *   Writes min(count, nr_signals) struct crak_sigaction into actions_ptr,
 *   entry i for signal i + 1; nr_signals is _NSIG (64 or 128 on mips).
 *
 * CRAK_IOC_GET_THREAD_SIGNALS (struct crak_thread_signals)
 *   For thread `tid`: blocked mask, the saved mask a sigsuspend/ppoll-like
 *   call will restore (with CRAK_TSIG_F_RESTORE_SIGMASK set when it will),
 *   the private pending set and the process-wide shared pending set.
 *   Signal n is bit (n - 1) of the two __u64 words. The mask to save for
 *   a restore is saved_mask when RESTORE_SIGMASK is set (a thread inside
 *   sigsuspend/ppoll/pselect), else blocked: what PTRACE_GETSIGMASK says.
 *
 * CRAK_IOC_GET_PENDING (struct crak_pending)
 *   Copies queued siginfos of thread `tid` (private queue), or with
 *   CRAK_PENDING_F_SHARED of the process-wide queue (tid ignored, must be
 *   0), without dequeuing them: entries [start, start + count) go to
 *   entries_ptr (struct crak_siginfo, siginfo in the user siginfo_t layout
 *   PTRACE_PEEKSIGINFO returns). nr_queued is the queue length. A signal
 *   may be pending with no queue entry (see the masks of
 *   CRAK_IOC_GET_THREAD_SIGNALS). count <= CRAK_MAX_PENDING.
 *
 * CRAK_IOC_GET_CREDS (struct crak_creds)
 *   Credentials of thread `tid` (0: the thread-group leader): ids,
 *   supplementary groups (up to groups_cap into groups_ptr, __u32 each;
 *   ngroups is the total), capability sets (bit n = capability n) and
 *   securebits.
 *
 * CRAK_IOC_PIPE_PEEK (struct crak_pipe_peek)
 *   Copies up to buf_len bytes sitting in the buffer of the pipe or FIFO
 *   open as fd `fd` in the target, without consuming them; out_len is the
 *   number copied, nr_bytes the number buffered, pipe_size its capacity,
 *   ino the pipe identity. -EBADF: no such fd; -EINVAL: not a pipe.
 *   buf_len <= CRAK_MAX_PEEK.
 *
 * CRAK_IOC_GET_THREAD_MISC (struct crak_thread_misc)   [frozen only: -EBUSY]
 *   Per-thread state that user space could otherwise only get by running
 *   code in the thread, each value as the named syscall would return it
 *   there: the alternate signal stack (sigaltstack(2): ss_sp, ss_size,
 *   ss_flags, the latter judged against the thread's user stack pointer
 *   as parked), the clear-child-tid address (prctl PR_GET_TID_ADDRESS),
 *   the robust futex list (get_robust_list(2): head and length) and the
 *   rseq registration (PTRACE_GET_RSEQ_CONFIGURATION: pointer, 0 when
 *   none, size and signature). -ESRCH: tid is not a parked thread.
 *
 * CRAK_IOC_GET_PROCESS_MISC (struct crak_process_misc)
 *   Per-process state: the program break (brk(0): mm->brk) and its start,
 *   the parent-death signal of the thread-group leader (prctl
 *   PR_GET_PDEATHSIG) and the dumpable mode of the mm (PR_GET_DUMPABLE).
 *   stop_signal: when the process is in a group stop (SIGNAL_STOP_STOPPED),
 *   the signal that stopped it (SIGSTOP, SIGTSTP, SIGTTIN, SIGTTOU), as
 *   the parent's waitid(WSTOPPED) reports it; CRAK_STOP_REPORTABLE when the
 *   parent has not collected that report yet (signal->group_exit_code).
 *   membarrier: the membarrier(2) registrations of the mm
 *   (mm->membarrier_state), as the OR of the MEMBARRIER_CMD_REGISTER_*
 *   commands that made them (GLOBAL_EXPEDITED, PRIVATE_EXPEDITED,
 *   PRIVATE_EXPEDITED_SYNC_CORE, PRIVATE_EXPEDITED_RSEQ).
 *   child_subreaper: 1 if the process is a child subreaper
 *   (PR_GET_CHILD_SUBREAPER, signal->is_child_subreaper), else 0.
 *   mlock_future: what mlockall(2) left for mappings made from now on
 *   (mm->def_flags): CRAK_MLOCK_F_FUTURE for MCL_FUTURE, with
 *   CRAK_MLOCK_F_ONFAULT when it was MCL_FUTURE | MCL_ONFAULT.
 *   (The fields after dumpable: ABI 5.)
 *
 * CRAK_IOC_GET_ITIMERS (struct crak_itimers)
 *   The process's interval timers as getitimer(2) in the target would
 *   compute them, in nanoseconds, indexed by ITIMER_REAL (0),
 *   ITIMER_VIRTUAL (1), ITIMER_PROF (2): value_ns is the time left (0:
 *   disarmed), interval_ns the reload value. ITIMER_REAL is read from the
 *   hrtimer (1000 ns when it is due but not yet fired); VIRTUAL/PROF are
 *   signal->it[] expires minus the thread group's CPU-time sample (user,
 *   user + system) exactly as getitimer does it (TICK_NSEC when overdue).
 *   getitimer(2) reports microseconds truncated from these nanoseconds
 *   (value_ns / 1000); a timer with value_ns < 1000 reads as disarmed there.
 *
 * CRAK_IOC_GET_POSIX_TIMERS (struct crak_posix_timers)
 *   The process's POSIX timers (timer_create(2)), each as /proc/PID/timers,
 *   timer_gettime(2) and timer_getoverrun(2) in the target would report it:
 *   id, clock (the clockid given to timer_create; CPU clocks encode a pid),
 *   sigev_notify (SIGEV_THREAD_ID included), signal, sigev_value, the pid
 *   (or with SIGEV_THREAD_ID the tid) the signal goes to, time left and
 *   interval in nanoseconds (value_ns 0: disarmed; 1 when due but not yet
 *   fired, as timer_gettime), and the overrun count of the last delivery.
 *   The time left is computed without touching the timer (timer_gettime
 *   moves the expiry of a periodic timer whose signal is pending forward by
 *   whole intervals; the same value comes out here, the timer stays as it
 *   is). Up to `count` entries (struct crak_posix_timer, in no particular
 *   order) go to timers_ptr; nr_timers is the number of timers, nr_copied
 *   the number written (call again with a larger buffer when nr_timers >
 *   count). count <= CRAK_MAX_POSIX_TIMERS. An entry with
 *   CRAK_POSIX_TIMER_F_NO_VALUE is on a clock whose time left the module
 *   cannot read (alarm clocks): its value_ns and interval_ns are 0.
 *
 * CRAK_IOC_GET_SECCOMP (struct crak_seccomp)
 *   The seccomp state of thread `tid`: its mode (SECCOMP_MODE_DISABLED 0,
 *   STRICT 1, FILTER 2, as /proc/PID/status "Seccomp") and, in filter mode,
 *   its filter chain, newest first (PTRACE_SECCOMP_GET_FILTER numbers the
 *   same filters from the oldest), with what it and PTRACE_SECCOMP_GET_METADATA
 *   report: per filter a struct
 *   crak_seccomp_filter (flags: CRAK_SECCOMP_FILTER_F_LOG when installed
 *   with SECCOMP_FILTER_FLAG_LOG, CRAK_SECCOMP_FILTER_F_LISTENER when it
 *   has a user-notification listener; len: its instructions) followed by
 *   len struct sock_filter, 8 bytes each. `size` is the number of bytes
 *   the whole chain takes; the records are written to buf_ptr only when
 *   size <= buf_len (call again with a larger buffer otherwise).
 *   buf_len <= CRAK_MAX_SECCOMP_BUF. nr_filters: the chain's length.
 *   -EPROTO: what the module read contradicts the struct seccomp_filter
 *   layout it was built for (kmod/compat/seccomp.h); nothing is reported.
 *   -ESRCH: tid is not a thread of the target.
 *
 * CRAK_IOC_UNIX_QUEUE (struct crak_unix_queue)
 *   Copies the receive queue of the AF_UNIX socket open as fd `fd` in the
 *   target, oldest message first, without consuming it (no MSG_PEEK, no
 *   peek offset touched). With CRAK_UNIX_QUEUE_F_PENDING, `fd` is a
 *   listener and the queue read is that of its index-th connection not yet
 *   accepted (0: the oldest), i.e. what that client has sent so far, which
 *   user space cannot read without accepting it. buf_ptr receives one
 *   record per message (a stream queue: one per buffer the kernel holds):
 *   struct crak_unix_msg, then addr_len bytes of the sender's sun_path
 *   (its name as recvfrom(2) reports it, empty when unnamed), then len
 *   bytes of data, then padding to a multiple of 8. nr_msgs and nr_bytes
 *   report the queue; out_len the bytes of records the whole queue needs:
 *   when buf_len is smaller, nothing is copied and the call fails with
 *   -ENOSPC (retry with a buffer of out_len). -EBADF: no such fd;
 *   -ENOTSOCK: not a unix socket; -ENOENT: no such pending connection;
 *   buf_len <= CRAK_MAX_PEEK.
 *
 * ABI history: version 1 had no GET_THREAD_MISC/GET_PROCESS_MISC and
 * reported sa_flags with kernel-internal bits; version 2 adds the two
 * commands and reports sa_flags as rt_sigaction(2) does; version 3 adds
 * GET_ITIMERS, freezes threads in a job-control stop instead of timing
 * out on them, and reports nr_stopped (formerly pad) from FREEZE;
 * version 4 adds GET_POSIX_TIMERS, GET_SECCOMP and UNIX_QUEUE; version 5
 * reports the group stop, membarrier registrations and the child-subreaper
 * flag in GET_PROCESS_MISC.
 */
#ifndef _UAPI_LINUX_CRAK_H
#define _UAPI_LINUX_CRAK_H

#include <linux/types.h>
#include <linux/ioctl.h>

#define CRAK_DEVICE_NAME	"crak"
#define CRAK_ABI_VERSION	5
#define CRAK_IOC_MAGIC		0xCA

/* Bounds (also reported by CRAK_IOC_VERSION). */
#define CRAK_MAX_THREADS	65536
#define CRAK_DUMP_MAX_PAGES	16384
#define CRAK_MAX_PENDING	4096
#define CRAK_MAX_PEEK		(16U << 20)
#define CRAK_MAX_NAME		4096
#define CRAK_MAX_GROUPS		65536
#define CRAK_MAX_POSIX_TIMERS	65536
#define CRAK_MAX_SECCOMP_BUF	(1U << 20)
#define CRAK_FREEZE_DEFAULT_TIMEOUT_MS	5000
#define CRAK_FREEZE_MAX_TIMEOUT_MS	600000

struct crak_version {
	__u32 abi_version;	/* in: CRAK_ABI_VERSION */
	__u32 flags;		/* in: 0 */
	__u32 module_version;	/* out */
	__u32 page_size;	/* out */
	__u32 nr_signals;	/* out: _NSIG */
	__u32 max_threads;	/* out: CRAK_MAX_THREADS */
	__u32 dump_max_pages;	/* out: CRAK_DUMP_MAX_PAGES */
	__u32 max_pending;	/* out: CRAK_MAX_PENDING */
	__u32 max_peek;		/* out: CRAK_MAX_PEEK */
	__u32 max_name;		/* out: CRAK_MAX_NAME */
	__u64 reserved[4];
};
#define CRAK_VERSION_FLAGS_ALL	0U

#define CRAK_OPEN_F_CLOEXEC	(1U << 0)
#define CRAK_OPEN_FLAGS_ALL	(CRAK_OPEN_F_CLOEXEC)

struct crak_open_session {
	__u32 pid;		/* in: thread-group id */
	__u32 flags;		/* in: CRAK_OPEN_F_* */
	__u64 reserved[3];
};

struct crak_freeze {
	__u32 flags;		/* in: 0 */
	__u32 timeout_ms;	/* in: 0 = default; <= CRAK_FREEZE_MAX_TIMEOUT_MS */
	__u32 nr_threads;	/* out */
	__u32 nr_stopped;	/* out: of them, in a job-control stop */
	__u64 reserved[3];
};
#define CRAK_FREEZE_FLAGS_ALL	0U

struct crak_thaw {
	__u32 flags;		/* in: 0 */
	__u32 pad;
	__u64 reserved[3];
};
#define CRAK_THAW_FLAGS_ALL	0U

struct crak_threads {
	__u32 flags;		/* in: 0 */
	__u32 count;		/* in: capacity of tids_ptr, in entries */
	__u64 tids_ptr;		/* in: __u32 array */
	__u32 nr_threads;	/* out */
	__u32 pad;
	__u64 reserved[3];
};
#define CRAK_THREADS_FLAGS_ALL	0U

struct crak_regset {
	__u32 tid;		/* in */
	__u32 note_type;	/* in: NT_* */
	__u32 flags;		/* in: 0 */
	__u32 buf_len;		/* in: capacity of buf_ptr in bytes */
	__u64 buf_ptr;		/* in */
	__u32 out_len;		/* out: bytes written */
	__u32 full_len;		/* out: size of the whole regset */
	__u64 reserved[3];
};
#define CRAK_REGSET_FLAGS_ALL	0U

/* struct crak_vma.prot_flags */
#define CRAK_VMA_READ		(1ULL << 0)
#define CRAK_VMA_WRITE		(1ULL << 1)
#define CRAK_VMA_EXEC		(1ULL << 2)
#define CRAK_VMA_SHARED		(1ULL << 3)
#define CRAK_VMA_MAYREAD	(1ULL << 4)
#define CRAK_VMA_MAYWRITE	(1ULL << 5)
#define CRAK_VMA_MAYEXEC	(1ULL << 6)
#define CRAK_VMA_MAYSHARE	(1ULL << 7)
#define CRAK_VMA_GROWSDOWN	(1ULL << 8)
#define CRAK_VMA_GROWSUP	(1ULL << 9)
#define CRAK_VMA_PFNMAP		(1ULL << 10)
#define CRAK_VMA_IO		(1ULL << 11)
#define CRAK_VMA_LOCKED		(1ULL << 12)
#define CRAK_VMA_DONTCOPY	(1ULL << 13)
#define CRAK_VMA_DONTEXPAND	(1ULL << 14)
#define CRAK_VMA_DONTDUMP	(1ULL << 15)
#define CRAK_VMA_WIPEONFORK	(1ULL << 16)
#define CRAK_VMA_HUGEPAGE	(1ULL << 17)
#define CRAK_VMA_NOHUGEPAGE	(1ULL << 18)
#define CRAK_VMA_MERGEABLE	(1ULL << 19)
#define CRAK_VMA_HUGETLB	(1ULL << 20)
#define CRAK_VMA_NORESERVE	(1ULL << 21)
#define CRAK_VMA_ANON		(1ULL << 22)	/* no vm_file, no vm_ops */
#define CRAK_VMA_FILE_DELETED	(1ULL << 23)	/* backing file unlinked */

/* struct crak_vma.kind */
#define CRAK_VMA_KIND_ANON	0
#define CRAK_VMA_KIND_FILE	1
#define CRAK_VMA_KIND_SPECIAL	2	/* [vdso], [vvar], [uprobes]... */
#define CRAK_VMA_KIND_STACK	3
#define CRAK_VMA_KIND_HEAP	4

struct crak_vma {
	__u64 addr;		/* in: cursor */
	__u32 flags;		/* in: 0 */
	__u32 name_cap;		/* in: bytes at name_ptr, <= CRAK_MAX_NAME */
	__u64 name_ptr;		/* in: may be 0 with name_cap 0 */
	__u64 start;		/* out */
	__u64 end;		/* out */
	__u64 prot_flags;	/* out: CRAK_VMA_* */
	__u64 offset;		/* out: file offset in bytes */
	__u64 ino;		/* out */
	__u32 dev_major;	/* out */
	__u32 dev_minor;	/* out */
	__u32 mode;		/* out: file mode */
	__u32 f_flags;		/* out: file open flags */
	__u32 kind;		/* out: CRAK_VMA_KIND_* */
	__u32 name_len;		/* out */
	__u64 reserved[4];
};
#define CRAK_VMA_FLAGS_ALL	0U

struct crak_page_run {
	__u64 start;		/* first address */
	__u64 nr_pages;
};

struct crak_dump_pages {
	__u64 start;		/* in */
	__u64 end;		/* in */
	__u32 flags;		/* in: 0 */
	__u32 out_fd;		/* in: caller's fd, open for writing */
	__u64 out_offset;	/* in/out */
	__u64 runs_ptr;		/* in: struct crak_page_run array */
	__u32 runs_cap;		/* in: entries at runs_ptr */
	__u32 nr_runs;		/* out */
	__u64 nr_pages;		/* out */
	__u64 next;		/* out: continue from here */
	__u64 reserved[4];
};
#define CRAK_DUMP_FLAGS_ALL	0U

/* struct crak_fd.kind */
#define CRAK_FD_KIND_UNKNOWN	0
#define CRAK_FD_KIND_REG	1
#define CRAK_FD_KIND_DIR	2
#define CRAK_FD_KIND_CHR	3
#define CRAK_FD_KIND_BLK	4
#define CRAK_FD_KIND_FIFO	5	/* named FIFO on a filesystem */
#define CRAK_FD_KIND_PIPE	6	/* pipe(2) */
#define CRAK_FD_KIND_SOCKET	7
#define CRAK_FD_KIND_ANON	8	/* anon inode: eventfd, epoll, ... */
#define CRAK_FD_KIND_LNK	9	/* O_PATH on a symlink */

/* struct crak_fd.fd_flags */
#define CRAK_FD_CLOEXEC		(1U << 0)
#define CRAK_FD_PATH		(1U << 1)	/* opened with O_PATH */
#define CRAK_FD_DELETED		(1U << 2)	/* file unlinked */

struct crak_fd {
	__u32 fd;		/* in: cursor; out: the fd described */
	__u32 flags;		/* in: 0 */
	__u64 name_ptr;		/* in */
	__u32 name_cap;		/* in: <= CRAK_MAX_NAME */
	__u32 name_len;		/* out */
	__u32 fd_flags;		/* out: CRAK_FD_* */
	__u32 kind;		/* out: CRAK_FD_KIND_* */
	__u32 f_flags;		/* out: open flags */
	__u32 f_mode;		/* out: FMODE_READ 1, FMODE_WRITE 2 */
	__u64 pos;		/* out */
	__u64 ino;		/* out */
	__u32 dev_major;	/* out: filesystem device */
	__u32 dev_minor;
	__u32 rdev_major;	/* out: device of a chr/blk file */
	__u32 rdev_minor;
	__u32 mode;		/* out: inode mode */
	__u32 pad;
	__u64 pipe_id;		/* out: pipe inode number, 0 if not a pipe */
	__u64 reserved[4];
};
#define CRAK_FD_FLAGS_ALL	0U

struct crak_sigaction {
	__u64 handler;
	__u64 sa_flags;		/* as rt_sigaction(2) reports them */
	__u64 restorer;		/* 0 where the arch has none (mips) */
	__u64 mask[2];		/* signal n = bit n - 1 */
};

struct crak_sigactions {
	__u32 flags;		/* in: 0 */
	__u32 count;		/* in: entries at actions_ptr */
	__u64 actions_ptr;	/* in */
	__u32 nr_signals;	/* out: _NSIG */
	__u32 pad;
	__u64 reserved[3];
};
#define CRAK_SIGACTIONS_FLAGS_ALL	0U

#define CRAK_TSIG_F_RESTORE_SIGMASK	(1U << 0)	/* out */

struct crak_thread_signals {
	__u32 tid;		/* in */
	__u32 flags;		/* in: 0; out: CRAK_TSIG_F_* */
	__u64 blocked[2];	/* out */
	__u64 saved_mask[2];	/* out */
	__u64 pending[2];	/* out: private */
	__u64 shared_pending[2];/* out: process-wide */
	__u64 reserved[4];
};
#define CRAK_THREAD_SIGNALS_FLAGS_ALL	0U

struct crak_siginfo {
	__u32 signo;
	__u32 pad;
	__u8 info[128];		/* siginfo_t as user space sees it */
};

#define CRAK_PENDING_F_SHARED	(1U << 0)
#define CRAK_PENDING_FLAGS_ALL	(CRAK_PENDING_F_SHARED)

struct crak_pending {
	__u32 tid;		/* in */
	__u32 flags;		/* in: CRAK_PENDING_F_* */
	__u32 start;		/* in: first queue index */
	__u32 count;		/* in: entries at entries_ptr */
	__u64 entries_ptr;	/* in: struct crak_siginfo array */
	__u32 nr_copied;	/* out */
	__u32 nr_queued;	/* out */
	__u64 reserved[4];
};

struct crak_creds {
	__u32 tid;		/* in: 0 = leader */
	__u32 flags;		/* in: 0 */
	__u32 uid, gid, suid, sgid, euid, egid, fsuid, fsgid;	/* out */
	__u64 groups_ptr;	/* in: __u32 array */
	__u32 groups_cap;	/* in: entries, <= CRAK_MAX_GROUPS */
	__u32 ngroups;		/* out */
	__u64 cap_inheritable;	/* out */
	__u64 cap_permitted;
	__u64 cap_effective;
	__u64 cap_bset;
	__u64 cap_ambient;
	__u32 securebits;	/* out */
	__u32 pad;
	__u64 reserved[4];
};
#define CRAK_CREDS_FLAGS_ALL	0U

struct crak_pipe_peek {
	__u32 fd;		/* in: fd in the target */
	__u32 flags;		/* in: 0 */
	__u64 buf_ptr;		/* in */
	__u32 buf_len;		/* in: <= CRAK_MAX_PEEK */
	__u32 out_len;		/* out */
	__u32 nr_bytes;		/* out: bytes buffered */
	__u32 pipe_size;	/* out: capacity in bytes */
	__u64 ino;		/* out */
	__u64 reserved[4];
};
#define CRAK_PIPE_PEEK_FLAGS_ALL	0U

struct crak_thread_misc {
	__u32 tid;		/* in */
	__u32 flags;		/* in: 0 */
	__u64 sas_ss_sp;	/* out: sigaltstack ss_sp */
	__u64 sas_ss_size;	/* out: ss_size */
	__u32 sas_ss_flags;	/* out: ss_flags (SS_DISABLE, SS_ONSTACK, SS_AUTODISARM) */
	__u32 rseq_len;		/* out: rseq area size (0 when not registered) */
	__u64 clear_child_tid;	/* out: set_tid_address(2) pointer */
	__u64 robust_list;	/* out: robust futex list head */
	__u64 robust_list_len;	/* out: its length as get_robust_list(2) reports */
	__u64 rseq;		/* out: rseq area, 0 when not registered */
	__u32 rseq_sig;		/* out: rseq signature */
	__u32 pad;
	__u64 reserved[4];
};
#define CRAK_THREAD_MISC_FLAGS_ALL	0U

struct crak_process_misc {
	__u32 flags;		/* in: 0 */
	__u32 pad;
	__u64 brk;		/* out: mm->brk, what brk(0) returns */
	__u64 start_brk;	/* out: mm->start_brk */
	__u32 pdeath_signal;	/* out: of the thread-group leader */
	__u32 dumpable;		/* out: SUID_DUMP_* of the mm */
	__u32 stop_signal;	/* out: signal of the group stop in effect, 0: none */
	__u32 stop_flags;	/* out: CRAK_STOP_* */
	__u32 membarrier;	/* out: MEMBARRIER_CMD_REGISTER_* commands in effect */
	__u32 child_subreaper;	/* out: PR_GET_CHILD_SUBREAPER */
	__u32 mlock_future;	/* out: CRAK_MLOCK_F_* */
	__u32 pad2;
	__u64 reserved[1];
};
#define CRAK_STOP_REPORTABLE	(1U << 0)	/* the parent has not waited for the stop yet */
#define CRAK_MLOCK_F_FUTURE	(1U << 0)
#define CRAK_MLOCK_F_ONFAULT	(1U << 1)
#define CRAK_PROCESS_MISC_FLAGS_ALL	0U

struct crak_itimers {
	__u32 flags;		/* in: 0 */
	__u32 pad;
	__u64 value_ns[3];	/* out: time left; by ITIMER_REAL/VIRTUAL/PROF */
	__u64 interval_ns[3];	/* out: reload value */
	__u64 reserved[4];
};
#define CRAK_ITIMERS_FLAGS_ALL	0U

#define CRAK_POSIX_TIMER_F_NO_VALUE	(1U << 0)	/* out */

struct crak_posix_timer {
	__s32 id;		/* the timer_t */
	__s32 clock;		/* clockid as given to timer_create */
	__u32 notify;		/* sigev_notify */
	__u32 signo;
	__u64 sigval;		/* sigev_value */
	__u32 target;		/* pid, or tid with SIGEV_THREAD_ID */
	__s32 overrun;		/* timer_getoverrun(2) */
	__u64 value_ns;		/* time left, 0: disarmed */
	__u64 interval_ns;
	__u32 flags;		/* CRAK_POSIX_TIMER_F_* */
	__u32 pad;
	__u64 reserved[2];
};

struct crak_posix_timers {
	__u32 flags;		/* in: 0 */
	__u32 count;		/* in: entries at timers_ptr */
	__u64 timers_ptr;	/* in: struct crak_posix_timer array */
	__u32 nr_timers;	/* out */
	__u32 nr_copied;	/* out */
	__u64 reserved[3];
};
#define CRAK_POSIX_TIMERS_FLAGS_ALL	0U

struct crak_seccomp {
	__u32 tid;		/* in */
	__u32 flags;		/* in: 0 */
	__u64 buf_ptr;		/* in: struct crak_seccomp_filter records */
	__u32 buf_len;		/* in: bytes at buf_ptr */
	__u32 size;		/* out: bytes the chain takes */
	__u32 mode;		/* out: SECCOMP_MODE_* */
	__u32 nr_filters;	/* out */
	__u64 reserved[4];
};
#define CRAK_SECCOMP_FLAGS_ALL	0U

#define CRAK_SECCOMP_FILTER_F_LOG	(1U << 0)
#define CRAK_SECCOMP_FILTER_F_LISTENER	(1U << 1)

struct crak_seccomp_filter {
	__u32 flags;		/* CRAK_SECCOMP_FILTER_F_* */
	__u32 len;		/* struct sock_filter that follow */
};

struct crak_unix_queue {
	__u32 fd;		/* in: fd of a unix socket in the target */
	__u32 flags;		/* in: CRAK_UNIX_QUEUE_F_* */
	__u32 index;		/* in: with F_PENDING, which connection (0: oldest) */
	__u32 nr_msgs;		/* out: messages (skbs) queued */
	__u64 buf_ptr;		/* in: records, see CRAK_IOC_UNIX_QUEUE */
	__u32 buf_len;		/* in: <= CRAK_MAX_PEEK */
	__u32 out_len;		/* out: bytes of records the queue needs */
	__u64 nr_bytes;		/* out: data bytes queued */
	__u64 reserved[4];
};
#define CRAK_UNIX_QUEUE_F_PENDING	(1U << 0)
#define CRAK_UNIX_QUEUE_FLAGS_ALL	CRAK_UNIX_QUEUE_F_PENDING

struct crak_unix_msg {
	__u32 len;		/* data bytes */
	__u16 addr_len;		/* bytes of sender name that follow */
	__u16 flags;		/* CRAK_UNIX_MSG_F_* */
};
#define CRAK_UNIX_MSG_F_FDS	(1U << 0)	/* carries file descriptors (SCM_RIGHTS) */

/* On /dev/crak */
#define CRAK_IOC_VERSION	_IOWR(CRAK_IOC_MAGIC, 0x00, struct crak_version)
#define CRAK_IOC_OPEN_SESSION	_IOW(CRAK_IOC_MAGIC, 0x01, struct crak_open_session)
/* On a session fd */
#define CRAK_IOC_FREEZE		_IOWR(CRAK_IOC_MAGIC, 0x10, struct crak_freeze)
#define CRAK_IOC_THAW		_IOW(CRAK_IOC_MAGIC, 0x11, struct crak_thaw)
#define CRAK_IOC_THREADS	_IOWR(CRAK_IOC_MAGIC, 0x12, struct crak_threads)
#define CRAK_IOC_GET_REGSET	_IOWR(CRAK_IOC_MAGIC, 0x13, struct crak_regset)
#define CRAK_IOC_GET_VMA	_IOWR(CRAK_IOC_MAGIC, 0x14, struct crak_vma)
#define CRAK_IOC_DUMP_PAGES	_IOWR(CRAK_IOC_MAGIC, 0x15, struct crak_dump_pages)
#define CRAK_IOC_GET_FD		_IOWR(CRAK_IOC_MAGIC, 0x16, struct crak_fd)
#define CRAK_IOC_GET_SIGACTIONS	_IOWR(CRAK_IOC_MAGIC, 0x17, struct crak_sigactions)
#define CRAK_IOC_GET_THREAD_SIGNALS _IOWR(CRAK_IOC_MAGIC, 0x18, struct crak_thread_signals)
#define CRAK_IOC_GET_PENDING	_IOWR(CRAK_IOC_MAGIC, 0x19, struct crak_pending)
#define CRAK_IOC_GET_CREDS	_IOWR(CRAK_IOC_MAGIC, 0x1a, struct crak_creds)
#define CRAK_IOC_PIPE_PEEK	_IOWR(CRAK_IOC_MAGIC, 0x1b, struct crak_pipe_peek)
#define CRAK_IOC_GET_THREAD_MISC _IOWR(CRAK_IOC_MAGIC, 0x1c, struct crak_thread_misc)
#define CRAK_IOC_GET_PROCESS_MISC _IOWR(CRAK_IOC_MAGIC, 0x1d, struct crak_process_misc)
#define CRAK_IOC_GET_ITIMERS	_IOWR(CRAK_IOC_MAGIC, 0x1e, struct crak_itimers)
#define CRAK_IOC_UNIX_QUEUE	_IOWR(CRAK_IOC_MAGIC, 0x30, struct crak_unix_queue)
#define CRAK_IOC_GET_POSIX_TIMERS _IOWR(CRAK_IOC_MAGIC, 0x38, struct crak_posix_timers)
#define CRAK_IOC_GET_SECCOMP	_IOWR(CRAK_IOC_MAGIC, 0x39, struct crak_seccomp)

#endif /* _UAPI_LINUX_CRAK_H */
