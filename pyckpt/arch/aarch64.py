"""arm64 (aarch64): register layout, syscall numbers and conventions.

Not yet exercised on a real target (the VM tier will be); the facts follow
arch/arm64 of Linux 6.1. Unlike x86-64, arm64 rewinds an interrupted syscall
*before* the tracer sees the stop (do_signal sets pc back to the svc and x0 to
orig_x0), so a frozen thread's registers already re-execute the call.
"""

import struct

from .generic import (  # noqa: F401  (part of this arch's contract)
    EPOLL_EVENT_FORMAT, IOC_DIRBITS, IOC_NONE, IOC_READ, IOC_SIZEBITS, IOC_WRITE, MAP_ANONYMOUS, MAP_FIXED,
    MAP_DROPPABLE, MAP_FIXED_NOREPLACE, MAP_GROWSDOWN, MAP_NORESERVE, MAP_PRIVATE,
    MAP_SHARED, NSIG, SA_RESTORER,
    SIGACTION_FORMAT, SIGACTION_SIZE, STACK_T_FORMAT, pack_sigaction, pack_stack_t,
    unpack_sigaction, unpack_stack_t,
)

NAME = "aarch64"
MACHINES = ("aarch64", "arm64")
BYTEORDER = "little"
PROT_BTI = 0x10                 # branch-target-identification pages (VmFlags "bt")

# struct user_pt_regs: x0..x30, sp, pc, pstate.
GPREGS_FIELDS = tuple(f"x{i}" for i in range(31)) + ("sp", "pc", "pstate")
GPREGS_FORMAT = "<34Q"
IP = "pc"
SP = "sp"
ARGS = ("x0", "x1", "x2", "x3", "x4", "x5")

NT_PRFPREG = 2
NT_ARM_TLS = 0x401
EXTRA_REGSETS = ((NT_PRFPREG, "fpregs"), (NT_ARM_TLS, "tls"))

SYSCALL_INSN = struct.pack("<I", 0xD4000001)  # svc #0

SYSCALLS = {
    "read": 63, "write": 64, "close": 57, "lseek": 62, "sendfile": 71, "mmap": 222, "mprotect": 226,
    "munmap": 215, "brk": 214, "rt_sigaction": 134, "rt_sigprocmask": 135,
    "ioctl": 29, "pread64": 67, "readv": 65, "writev": 66, "mremap": 216,
    "madvise": 233, "mlock": 228, "mlock2": 284, "mlockall": 230, "dup": 23, "nanosleep": 101, "getitimer": 102,
    "setitimer": 103, "getpid": 172, "wait4": 260, "kill": 129, "fcntl": 25, "flock": 32,
    "ftruncate": 46, "chdir": 49, "fchdir": 50, "umask": 166, "getuid": 174,
    "setpgid": 154, "setsid": 157, "setgroups": 159, "setresuid": 147,
    "setresgid": 149, "getpgid": 155, "setfsuid": 151, "setfsgid": 152,
    "getsid": 156, "capget": 90, "capset": 91, "rt_sigqueueinfo": 138, "rt_sigsuspend": 133, "rt_sigtimedwait": 137,
    "sigaltstack": 132, "personality": 92, "prctl": 167,
    "setrlimit": 164, "gettid": 178, "futex": 98, "set_tid_address": 96,
    "restart_syscall": 128, "clock_nanosleep": 115, "exit_group": 94,
    "tgkill": 131, "waitid": 95, "membarrier": 283, "openat": 56, "unlinkat": 35, "ppoll": 73,
    "get_robust_list": 100, "set_robust_list": 99, "dup3": 24, "pipe2": 59, "preadv": 69,
    "rt_tgsigqueueinfo": 240, "prlimit64": 261, "shmat": 196, "kcmp": 272, "memfd_create": 279,
    "rseq": 293, "pidfd_open": 434, "pidfd_getfd": 438, "clone3": 435, "close_range": 436, "inotify_init1": 26, "inotify_add_watch": 27, "inotify_rm_watch": 28, "epoll_create1": 20, "epoll_ctl": 21, "eventfd2": 19, "signalfd4": 74, "timerfd_create": 85, "timerfd_settime": 86, "clock_gettime": 113, "userfaultfd": 282,
    "timer_create": 107, "timer_gettime": 108, "timer_getoverrun": 109, "timer_settime": 110, "timer_delete": 111, "seccomp": 277,
    "ioprio_set": 30, "ioprio_get": 31, "sched_setattr": 274, "sched_getattr": 275,
}

# The syscall number lives outside user_pt_regs (NT_ARM_SYSTEM_CALL); x8
# carries it on entry.
SYSCALL_NR_REG = "x8"


def set_syscall(regs, nr, args, insn_addr):
    regs = dict(regs)
    regs["pc"] = insn_addr
    regs["x8"] = nr
    for name, value in zip(ARGS, args):
        regs[name] = value & 0xFFFFFFFFFFFFFFFF
    return regs


def syscall_result(regs):
    value = regs["x0"] & 0xFFFFFFFFFFFFFFFF
    return value - (1 << 64) if value >= 1 << 63 else value


def syscall_args(regs):
    return [regs[name] for name in ARGS]


def interrupted_syscall(regs, restart_errnos):
    # The kernel has already rewound the call (see module docstring).
    return None


def set_syscall_error(regs, errno_value):
    # Never needed: interrupted_syscall() is always None here.
    raise NotImplementedError("arm64 rewinds interrupted syscalls itself")
