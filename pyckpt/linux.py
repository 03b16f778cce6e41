"""Thin ctypes bindings for the Linux calls Python's stdlib lacks.

OSError from these calls is raised as-is; callers translate it into
pyckpt's own errors where they know what it means.
"""

import ctypes
import ctypes.util
import errno
import os
import struct

from . import arch as _arch

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_syscall = _libc.syscall
_syscall.restype = ctypes.c_long

ARCH = _arch.host()


def _check(result, what=""):
    if result == -1:
        err = ctypes.get_errno()
        raise OSError(err, f"{os.strerror(err)}{': ' + what if what else ''}")
    return result


def syscall(name, *args):
    """Call syscall `name` on the host with integer/pointer arguments."""
    nr = ARCH.SYSCALLS[name]
    cargs = [a if isinstance(a, (ctypes.c_void_p, ctypes.c_char_p, ctypes.Array)) else ctypes.c_long(a) for a in args]
    return _check(_syscall(ctypes.c_long(nr), *cargs), name)


# ---- ptrace -----------------------------------------------------------------

PTRACE_CONT = 7
PTRACE_DETACH = 17
PTRACE_SYSCALL = 24
PTRACE_SETOPTIONS = 0x4200
PTRACE_GETSIGINFO = 0x4202
PTRACE_GETREGSET = 0x4204
PTRACE_SETREGSET = 0x4205
PTRACE_SEIZE = 0x4206
PTRACE_INTERRUPT = 0x4207
PTRACE_PEEKSIGINFO = 0x4209
PTRACE_GETSIGMASK = 0x420A
PTRACE_SETSIGMASK = 0x420B
PTRACE_GET_RSEQ_CONFIGURATION = 0x420F
PTRACE_SECCOMP_GET_FILTER = 0x420C
PTRACE_SECCOMP_GET_METADATA = 0x420D

PTRACE_O_TRACESYSGOOD = 1
PTRACE_O_TRACEFORK = 2
PTRACE_O_TRACECLONE = 8
PTRACE_O_EXITKILL = 1 << 20
PTRACE_O_SUSPEND_SECCOMP = 1 << 21

PTRACE_EVENT_CLONE = 3
PTRACE_EVENT_STOP = 128

PTRACE_PEEKSIGINFO_SHARED = 1

NT_PRSTATUS = 1

_ptrace = _libc.ptrace
_ptrace.restype = ctypes.c_long
_ptrace.argtypes = (ctypes.c_long, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p)


def ptrace(request, pid, addr=0, data=0):
    ctypes.set_errno(0)
    result = _ptrace(request, pid, addr, data)
    if result == -1 and ctypes.get_errno():
        err = ctypes.get_errno()
        raise OSError(err, f"ptrace({request:#x}, {pid}): {os.strerror(err)}")
    return result


class iovec(ctypes.Structure):
    _fields_ = (("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t))


def getregset(pid, note_type, size):
    buf = ctypes.create_string_buffer(size)
    iov = iovec(ctypes.cast(buf, ctypes.c_void_p), size)
    ptrace(PTRACE_GETREGSET, pid, note_type, ctypes.addressof(iov))
    return buf.raw[: iov.iov_len]


def setregset(pid, note_type, data):
    buf = ctypes.create_string_buffer(bytes(data), len(data))
    iov = iovec(ctypes.cast(buf, ctypes.c_void_p), len(data))
    ptrace(PTRACE_SETREGSET, pid, note_type, ctypes.addressof(iov))


def get_sigmask(pid):
    mask = ctypes.c_uint64()
    ptrace(PTRACE_GETSIGMASK, pid, 8, ctypes.addressof(mask))
    return mask.value


def set_sigmask(pid, mask):
    value = ctypes.c_uint64(mask)
    ptrace(PTRACE_SETSIGMASK, pid, 8, ctypes.addressof(value))


class ptrace_rseq_configuration(ctypes.Structure):
    _fields_ = (
        ("rseq_abi_pointer", ctypes.c_uint64),
        ("rseq_abi_size", ctypes.c_uint32),
        ("signature", ctypes.c_uint32),
        ("flags", ctypes.c_uint32),
        ("pad", ctypes.c_uint32),
    )


def get_rseq_configuration(pid):
    conf = ptrace_rseq_configuration()
    ptrace(PTRACE_GET_RSEQ_CONFIGURATION, pid, ctypes.sizeof(conf), ctypes.addressof(conf))
    return conf


SIGINFO_SIZE = 128


class ptrace_peeksiginfo_args(ctypes.Structure):
    _fields_ = (("off", ctypes.c_uint64), ("flags", ctypes.c_uint32), ("nr", ctypes.c_int32))


def peek_siginfo(pid, shared):
    """Every queued siginfo (raw 128-byte records), without dequeuing them."""
    out = []
    batch = 32
    while True:
        args = ptrace_peeksiginfo_args(len(out), PTRACE_PEEKSIGINFO_SHARED if shared else 0, batch)
        buf = ctypes.create_string_buffer(SIGINFO_SIZE * batch)
        n = ptrace(PTRACE_PEEKSIGINFO, pid, ctypes.addressof(args), ctypes.addressof(buf))
        out.extend(buf.raw[i * SIGINFO_SIZE:(i + 1) * SIGINFO_SIZE] for i in range(n))
        if n < batch:
            return out



# ---- cross-process memory ----------------------------------------------------

_process_vm_readv = _libc.process_vm_readv
_process_vm_readv.restype = ctypes.c_ssize_t
_process_vm_writev = _libc.process_vm_writev
_process_vm_writev.restype = ctypes.c_ssize_t


def process_vm_readv_into(pid, address, buf, length):
    """Read `length` bytes at `address` of `pid` into ctypes buffer `buf`; returns bytes read."""
    local = iovec(ctypes.cast(buf, ctypes.c_void_p), length)
    remote = iovec(ctypes.c_void_p(address), length)
    n = _process_vm_readv(pid, ctypes.byref(local), 1, ctypes.byref(remote), 1, 0)
    return _check(n, f"process_vm_readv pid {pid} at {address:#x}")


def read_memory(pid, address, length):
    buf = ctypes.create_string_buffer(length)
    n = process_vm_readv_into(pid, address, buf, length)
    if n != length:
        raise OSError(errno.EFAULT, f"short read of pid {pid} memory at {address:#x}: {n} of {length}")
    return buf.raw


def write_memory(pid, address, data):
    buf = ctypes.create_string_buffer(bytes(data), len(data))
    local = iovec(ctypes.cast(buf, ctypes.c_void_p), len(data))
    remote = iovec(ctypes.c_void_p(address), len(data))
    n = _check(_process_vm_writev(pid, ctypes.byref(local), 1, ctypes.byref(remote), 1, 0),
               f"process_vm_writev pid {pid} at {address:#x}")
    if n != len(data):
        raise OSError(errno.EFAULT, f"short write to pid {pid} memory at {address:#x}")


# ---- seccomp (uapi/linux/seccomp.h, the same on every arch) ---------------------

PR_SET_SECCOMP = 22
SECCOMP_MODE_STRICT = 1
SECCOMP_MODE_FILTER = 2
SECCOMP_SET_MODE_FILTER = 1
SECCOMP_FILTER_FLAG_TSYNC = 1 << 0
SECCOMP_FILTER_FLAG_LOG = 1 << 1
SECCOMP_RET_ACTION_FULL = 0xFFFF0000
SECCOMP_RET_USER_NOTIF = 0x7FC00000
SOCK_FILTER_SIZE = 8       # struct sock_filter: one classic BPF instruction


# ---- processes ----------------------------------------------------------------

_prctl = _libc.prctl
_prctl.restype = ctypes.c_int


def prctl(option, arg2=0, arg3=0, arg4=0, arg5=0):
    return _check(_prctl(ctypes.c_int(option), ctypes.c_ulong(arg2), ctypes.c_ulong(arg3),
                         ctypes.c_ulong(arg4), ctypes.c_ulong(arg5)), "prctl")



class clone_args(ctypes.Structure):
    _fields_ = (
        ("flags", ctypes.c_uint64), ("pidfd", ctypes.c_uint64), ("child_tid", ctypes.c_uint64),
        ("parent_tid", ctypes.c_uint64), ("exit_signal", ctypes.c_uint64), ("stack", ctypes.c_uint64),
        ("stack_size", ctypes.c_uint64), ("tls", ctypes.c_uint64), ("set_tid", ctypes.c_uint64),
        ("set_tid_size", ctypes.c_uint64), ("cgroup", ctypes.c_uint64),
    )


def clone3_fork(pid, exit_signal):
    """fork() into a child whose PID is `pid` (clone3 set_tid). Returns 0 in the child."""
    tid = (ctypes.c_int32 * 1)(pid)
    args = clone_args()
    args.exit_signal = exit_signal
    args.set_tid = ctypes.addressof(tid)
    args.set_tid_size = 1
    return syscall("clone3", ctypes.c_void_p(ctypes.addressof(args)), ctypes.sizeof(args))


KCMP_FILE = 0
KCMP_FILES = 2
KCMP_SYSVSEM = 6

# membarrier(2): each registration command, and the command that succeeds only after it
# (EPERM before); a global-expedited registration has no such command.
MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED = 1 << 2
MEMBARRIER_CMD_PRIVATE_EXPEDITED = 1 << 3
MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED = 1 << 4
MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE = 1 << 5
MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_SYNC_CORE = 1 << 6
MEMBARRIER_CMD_PRIVATE_EXPEDITED_RSEQ = 1 << 7
MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_RSEQ = 1 << 8
MEMBARRIER_PROBES = {
    MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED: MEMBARRIER_CMD_PRIVATE_EXPEDITED,
    MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_SYNC_CORE: MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE,
    MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_RSEQ: MEMBARRIER_CMD_PRIVATE_EXPEDITED_RSEQ,
}

PR_SET_CHILD_SUBREAPER = 36
PR_GET_CHILD_SUBREAPER = 37
WNOHANG, WSTOPPED, WNOWAIT, WALL = 1, 2, 0x01000000, 0x40000000
P_PID = 1


def pidfd_getfd(pid, fd):
    """A copy of `pid`'s fd in this process: the same open file description, without opening anything."""
    pidfd = os.pidfd_open(pid)
    try:
        return syscall("pidfd_getfd", pidfd, fd, 0)
    finally:
        os.close(pidfd)


def kcmp_file(pid1, pid2, fd1, fd2):
    """0 when the two fds share one open file description."""
    return syscall("kcmp", pid1, pid2, KCMP_FILE, fd1, fd2)


def kcmp_files(pid1, pid2):
    """0 when both processes use one fd table (clone CLONE_FILES)."""
    return syscall("kcmp", pid1, pid2, KCMP_FILES, 0, 0)


MQUEUE_MAGIC = 0x19800202


def fs_magic(path):
    """statfs(2)'s f_type of the filesystem holding `path` (the first field, a long)."""
    buf = ctypes.create_string_buffer(256)     # struct statfs is 120 bytes on every 64-bit arch
    _check(_libc.statfs(os.fsencode(path), buf), f"statfs {path}")
    return ctypes.c_long.from_buffer(buf).value & 0xFFFFFFFF


IOPRIO_WHO_PROCESS = 1
SCHED_DEADLINE = 6
SCHED_FLAG_RESET_ON_FORK = 0x01
SCHED_FLAG_KEEP_ALL = 0x08 | 0x10           # keep policy and params: change only what the flags add
SCHED_FLAG_UTIL_CLAMP = 0x20 | 0x40         # UTIL_CLAMP_MIN | UTIL_CLAMP_MAX
# struct sched_attr up to sched_util_max (SCHED_ATTR_SIZE_VER1)
_SCHED_ATTR = struct.Struct("=IIQiIQQQII")
SCHED_ATTR_FIELDS = ("size", "policy", "flags", "nice", "priority", "runtime", "deadline", "period",
                     "util_min", "util_max")


def sched_getattr(tid):
    """sched_getattr(2) of thread `tid` as a dict of SCHED_ATTR_FIELDS."""
    buf = ctypes.create_string_buffer(_SCHED_ATTR.size)
    syscall("sched_getattr", tid, buf, _SCHED_ATTR.size, 0)
    return dict(zip(SCHED_ATTR_FIELDS, _SCHED_ATTR.unpack(buf.raw)))


def sched_setattr(tid, **fields):
    values = dict.fromkeys(SCHED_ATTR_FIELDS, 0)
    values.update(fields, size=_SCHED_ATTR.size)
    buf = ctypes.create_string_buffer(_SCHED_ATTR.pack(*(values[k] for k in SCHED_ATTR_FIELDS)))
    syscall("sched_setattr", tid, buf, 0)


def kcmp_sysvsem(pid1, pid2):
    """0 when the two processes share one System V semaphore undo list (or neither has one)."""
    return syscall("kcmp", pid1, pid2, KCMP_SYSVSEM, 0, 0)




_tee = _libc.tee
_tee.restype = ctypes.c_ssize_t
_tee.argtypes = (ctypes.c_int, ctypes.c_int, ctypes.c_size_t, ctypes.c_uint)
SPLICE_F_NONBLOCK = 2


def tee(fd_in, fd_out, length, flags=SPLICE_F_NONBLOCK):
    """Duplicate up to `length` bytes from pipe fd_in into pipe fd_out without consuming them."""
    return _check(_tee(fd_in, fd_out, length, flags), "tee")


AT_FDCWD = -100
F_SETFD, F_SETFL = 2, 4
F_SETPIPE_SZ = 1031
F_GETPIPE_SZ = 1032


# ---- per-mapping advice and per-mm memory switches (uapi/asm-generic/mman-common.h, linux/prctl.h) ----

MADV_NORMAL = 0
MADV_RANDOM = 1
MADV_SEQUENTIAL = 2
MADV_MERGEABLE = 12
MADV_UNMERGEABLE = 13
MADV_HUGEPAGE = 14
MADV_NOHUGEPAGE = 15
MADV_DONTDUMP = 16
MADV_DONTFORK = 10
MADV_DOFORK = 11
MADV_DODUMP = 17
MADV_KEEPONFORK = 19
MADV_WIPEONFORK = 18
MADV_GUARD_INSTALL = 102   # Linux 6.13+
MADV_GUARD_REMOVE = 103
MLOCK_ONFAULT = 1
MCL_FUTURE = 2             # mlockall(2) (the same on every arch pyckpt knows)
MCL_ONFAULT = 4
PR_SET_THP_DISABLE = 41
PR_GET_THP_DISABLE = 42
PR_SET_MEMORY_MERGE = 67   # Linux 6.4+
