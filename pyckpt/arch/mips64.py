"""mips64 little-endian, n64 ABI: register layout, syscall numbers, conventions.

Not yet exercised on a real target (the VM tier will be). Facts from
arch/mips of Linux 6.1: syscall number in v0 ($2), arguments in a0-a5
($4-$9), result in v0 with a3 ($7) set on error (v0 then holds +errno), and
the kernel keeps "this was a syscall" in the $0 slot of pt_regs, which the
restart logic reads. python-ptrace knows no MIPS: nothing here uses it.
"""

import struct

NAME = "mips64"
MACHINES = ("mips64",)
BYTEORDER = "little"

# n64 NT_PRSTATUS: u64 uregs[ELF_NGREG = 45] at the MIPS64_EF_* indexes of
# asm/reg.h: $0..$31 from word 0, lo, hi, epc, badvaddr, status, cause, then
# 7 unused words. (6 leading unused words is the o32 layout, MIPS32_EF_R0 = 6.)
GPREGS_FIELDS = (
    tuple(f"r{i}" for i in range(32))
    + ("lo", "hi", "cp0_epc", "cp0_badvaddr", "cp0_status", "cp0_cause")
    + tuple(f"pad{i}" for i in range(7))
)
GPREGS_FORMAT = "<45Q"
IP = "cp0_epc"
SP = "r29"
ARGS = ("r4", "r5", "r6", "r7", "r8", "r9")

NT_PRFPREG = 2
EXTRA_REGSETS = ((NT_PRFPREG, "fpregs"),)

SYSCALL_INSN = struct.pack("<I", 0x0000000C)  # syscall

SYSCALLS = {
    "read": 5000, "write": 5001, "close": 5003, "lseek": 5008, "sendfile": 5039, "mmap": 5009,
    "mprotect": 5010, "munmap": 5011, "brk": 5012, "rt_sigaction": 5013,
    "rt_sigprocmask": 5014, "ioctl": 5015, "pread64": 5016, "readv": 5018,
    "writev": 5019, "mremap": 5024, "madvise": 5027, "mlock": 5146, "mlock2": 5319, "mlockall": 5148, "dup": 5031,
    "nanosleep": 5034, "getitimer": 5035, "setitimer": 5036, "getpid": 5038,
    "wait4": 5059, "kill": 5060, "fcntl": 5070, "flock": 5071, "ftruncate": 5075,
    "chdir": 5078, "fchdir": 5079, "umask": 5093, "getuid": 5100,
    "setpgid": 5107, "setsid": 5110, "setgroups": 5114, "setresuid": 5115,
    "setresgid": 5117, "getpgid": 5119, "setfsuid": 5120, "setfsgid": 5121,
    "getsid": 5122, "capget": 5123, "capset": 5124, "rt_sigqueueinfo": 5127,
    "rt_sigsuspend": 5128, "rt_sigtimedwait": 5126, "sigaltstack": 5129, "personality": 5132,
    "prctl": 5153, "setrlimit": 5155, "gettid": 5178, "futex": 5194,
    "set_tid_address": 5212, "restart_syscall": 5213, "clock_nanosleep": 5224,
    "exit_group": 5205, "tgkill": 5225, "waitid": 5237, "membarrier": 5318, "openat": 5247, "unlinkat": 5253,
    "ppoll": 5261, "get_robust_list": 5269, "set_robust_list": 5268, "dup3": 5286, "pipe2": 5287,
    "preadv": 5289, "rt_tgsigqueueinfo": 5291, "prlimit64": 5297, "shmat": 5029, "kcmp": 5306,
    "memfd_create": 5314, "rseq": 5327, "pidfd_open": 5434, "pidfd_getfd": 5438, "clone3": 5435,
    "close_range": 5436, "inotify_init1": 5288, "inotify_add_watch": 5244, "inotify_rm_watch": 5245, "epoll_create1": 5285, "epoll_ctl": 5208, "eventfd2": 5284, "signalfd4": 5283, "timerfd_create": 5280, "timerfd_settime": 5282, "clock_gettime": 5222, "userfaultfd": 5317,
    "timer_create": 5216, "timer_settime": 5217, "timer_gettime": 5218, "timer_getoverrun": 5219, "timer_delete": 5220, "seccomp": 5312,
    "ioprio_set": 5273, "ioprio_get": 5274, "sched_setattr": 5309, "sched_getattr": 5310,
}


def set_syscall(regs, nr, args, insn_addr):
    regs = dict(regs)
    regs["cp0_epc"] = insn_addr
    regs["r2"] = nr
    regs["r0"] = 0  # not in a syscall: no restart fix-up on resume
    for name, value in zip(ARGS, args):
        regs[name] = value & 0xFFFFFFFFFFFFFFFF
    return regs


def syscall_result(regs):
    value = regs["r2"] & 0xFFFFFFFFFFFFFFFF
    if regs["r7"]:
        return -value
    return value - (1 << 64) if value >= 1 << 63 else value


def syscall_args(regs):
    return [regs[name] for name in ARGS]


def interrupted_syscall(regs, restart_errnos):
    if regs["r0"] and regs["r7"] and regs["r2"] in restart_errnos:
        return regs["r0"]
    return None


def set_syscall_error(regs, errno_value):
    """Make a frozen syscall look as if it returned errno_value (a3 set, $0 still the syscall)."""
    regs = dict(regs)
    regs["r2"] = errno_value
    regs["r7"] = 1
    return regs


# struct sigaction on mips: flags first, then handler, then a 128-bit mask.
SIGACTION_FORMAT = "<I4xQQQ"
SIGACTION_SIZE = 32
SA_RESTORER = 0  # mips has no sa_restorer
NSIG = 128


def pack_sigaction(handler, flags, restorer, mask):
    return struct.pack(SIGACTION_FORMAT, flags, handler, mask & 0xFFFFFFFFFFFFFFFF, mask >> 64)


def unpack_sigaction(data):
    flags, handler, mask_lo, mask_hi = struct.unpack(SIGACTION_FORMAT, data)
    return handler, flags, 0, mask_lo | (mask_hi << 64)


IOC_NONE, IOC_READ, IOC_WRITE = 1, 2, 4
IOC_SIZEBITS = 13
IOC_DIRBITS = 3


# stack_t: ss_sp, ss_size, ss_flags.
STACK_T_FORMAT = "<QQi4x"


def pack_stack_t(sp, flags, size):
    return struct.pack(STACK_T_FORMAT, sp, size, flags)


def unpack_stack_t(data):
    sp, size, flags = struct.unpack(STACK_T_FORMAT, data)
    return sp, flags, size

MAP_SHARED, MAP_PRIVATE, MAP_FIXED = 0x01, 0x02, 0x10
MAP_ANONYMOUS = 0x800
MAP_GROWSDOWN = 0x1000
MAP_FIXED_NOREPLACE = 0x100000
MAP_NORESERVE = 0x0400
MAP_DROPPABLE = 0x08
PROT_BTI = 0


# struct epoll_event: events, data, naturally aligned.
EPOLL_EVENT_FORMAT = "=I4xQ"
