"""x86-64: register layout, syscall numbers and conventions."""

from .generic import (  # noqa: F401  (part of this arch's contract)
    IOC_DIRBITS, IOC_NONE, IOC_READ, IOC_SIZEBITS, IOC_WRITE, MAP_ANONYMOUS, MAP_FIXED,
    MAP_DROPPABLE, MAP_FIXED_NOREPLACE, MAP_GROWSDOWN, MAP_NORESERVE, MAP_PRIVATE,
    MAP_SHARED, NSIG, PROT_BTI, SA_RESTORER,
    SIGACTION_FORMAT, SIGACTION_SIZE, STACK_T_FORMAT, pack_sigaction, pack_stack_t,
    unpack_sigaction, unpack_stack_t,
)

NAME = "x86_64"
MACHINES = ("x86_64",)
BYTEORDER = "little"

# struct user_regs_struct (arch/x86/include/asm/user_64.h), NT_PRSTATUS payload.
GPREGS_FIELDS = (
    "r15", "r14", "r13", "r12", "rbp", "rbx", "r11", "r10", "r9", "r8",
    "rax", "rcx", "rdx", "rsi", "rdi", "orig_rax", "rip", "cs", "eflags",
    "rsp", "ss", "fs_base", "gs_base", "ds", "es", "fs", "gs",
)
GPREGS_FORMAT = "<27Q"
IP = "rip"
SP = "rsp"
ARGS = ("rdi", "rsi", "rdx", "r10", "r8", "r9")

NT_PRFPREG = 2
NT_X86_XSTATE = 0x202
# Saved in this order; on restore xstate (a superset of the fxsave area) wins.
EXTRA_REGSETS = ((NT_PRFPREG, "fpregs"), (NT_X86_XSTATE, "xstate"))
XSTATE_MAX = 64 * 1024  # generous upper bound for GETREGSET's buffer

SYSCALL_INSN = b"\x0f\x05"  # syscall

SYSCALLS = {
    "read": 0, "write": 1, "close": 3, "lseek": 8, "sendfile": 40, "mmap": 9, "mprotect": 10,
    "munmap": 11, "brk": 12, "rt_sigaction": 13, "rt_sigprocmask": 14,
    "ioctl": 16, "pread64": 17, "readv": 19, "writev": 20, "mremap": 25,
    "madvise": 28, "mlock": 149, "mlock2": 325, "mlockall": 151, "dup": 32, "nanosleep": 35, "getitimer": 36,
    "setitimer": 38, "getpid": 39, "wait4": 61, "kill": 62, "fcntl": 72, "flock": 73,
    "ftruncate": 77, "chdir": 80, "fchdir": 81, "umask": 95, "getuid": 102,
    "setpgid": 109, "setsid": 112, "setgroups": 116, "setresuid": 117,
    "setresgid": 119, "getpgid": 121, "setfsuid": 122, "setfsgid": 123,
    "getsid": 124, "capget": 125, "capset": 126, "rt_sigqueueinfo": 129, "rt_sigsuspend": 130, "rt_sigtimedwait": 128,
    "sigaltstack": 131, "personality": 135, "prctl": 157,
    "setrlimit": 160, "gettid": 186, "futex": 202, "set_tid_address": 218,
    "restart_syscall": 219, "clock_nanosleep": 230, "exit_group": 231,
    "tgkill": 234, "waitid": 247, "membarrier": 324, "openat": 257, "unlinkat": 263, "ppoll": 271,
    "get_robust_list": 274, "set_robust_list": 273, "dup3": 292, "pipe2": 293, "preadv": 295,
    "rt_tgsigqueueinfo": 297, "prlimit64": 302, "shmat": 30, "kcmp": 312, "memfd_create": 319,
    "rseq": 334, "pidfd_open": 434, "pidfd_getfd": 438, "clone3": 435, "close_range": 436, "inotify_init1": 294, "inotify_add_watch": 254, "inotify_rm_watch": 255, "epoll_create1": 291, "epoll_ctl": 233, "eventfd2": 290, "signalfd4": 289, "timerfd_create": 283, "timerfd_settime": 286, "clock_gettime": 228, "userfaultfd": 323,
    "timer_create": 222, "timer_settime": 223, "timer_gettime": 224, "timer_getoverrun": 225, "timer_delete": 226, "seccomp": 317,
    "ioprio_set": 251, "ioprio_get": 252, "sched_setattr": 314, "sched_getattr": 315,
}


def set_syscall(regs, nr, args, insn_addr):
    regs = dict(regs)
    regs["rip"] = insn_addr
    regs["rax"] = nr
    regs["orig_rax"] = -1 & 0xFFFFFFFFFFFFFFFF  # not in a syscall: no restart fix-up on resume
    for name, value in zip(ARGS, args):
        regs[name] = value & 0xFFFFFFFFFFFFFFFF
    return regs


def syscall_result(regs):
    value = regs["rax"] & 0xFFFFFFFFFFFFFFFF
    return value - (1 << 64) if value >= 1 << 63 else value


def syscall_args(regs):
    return [regs[name] for name in ARGS]


def interrupted_syscall(regs, restart_errnos):
    """The syscall a frozen thread was in, if the kernel would restart it."""
    nr = regs["orig_rax"] & 0xFFFFFFFFFFFFFFFF
    if nr >= 1 << 63:
        return None
    if -syscall_result(regs) in restart_errnos:
        return nr
    return None


def set_syscall_error(regs, errno_value):
    """Make a frozen syscall look as if it returned -errno_value (still marked as a syscall)."""
    regs = dict(regs)
    regs["rax"] = -errno_value & 0xFFFFFFFFFFFFFFFF
    return regs


# struct epoll_event is __attribute__((packed)) on x86-64.
EPOLL_EVENT_FORMAT = "=IQ"
