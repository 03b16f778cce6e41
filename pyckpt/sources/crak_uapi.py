"""Python mirror of kmod/include/uapi/linux/crak.h, the /dev/crak contract.

The header is the definition; this module mirrors it once, and
tests/unit/test_crak_uapi.py compiles a probe against the header to prove
that every struct size, field offset, constant and ioctl number here equals
the C side, per arch. Field order and names follow the header exactly.

ioctl numbers depend on the arch (mips encodes direction and size
differently): `requests(arch)` computes them with `pyckpt.arch.ioc`.
"""

import ctypes

from .. import arch as _arch

u32 = ctypes.c_uint32
u64 = ctypes.c_uint64
u8 = ctypes.c_uint8

ABI_VERSION = 5  # 2: GET_THREAD_MISC, GET_PROCESS_MISC; sa_flags as rt_sigaction reports them
                 # 3: GET_ITIMERS; job-control-stopped threads freeze; Freeze.nr_stopped
                 # 4: GET_POSIX_TIMERS, GET_SECCOMP, UNIX_QUEUE
                 # 5: ProcessMisc.stop_signal, stop_flags, membarrier, child_subreaper, mlock_future
IOC_MAGIC = 0xCA
DEVICE_PATH = "/dev/crak"

MAX_THREADS = 65536
DUMP_MAX_PAGES = 16384
MAX_PENDING = 4096
MAX_PEEK = 16 << 20
MAX_NAME = 4096
MAX_GROUPS = 65536
MAX_POSIX_TIMERS = 65536
MAX_SECCOMP_BUF = 1 << 20
FREEZE_DEFAULT_TIMEOUT_MS = 5000
FREEZE_MAX_TIMEOUT_MS = 600000


class _Struct(ctypes.Structure):
    """Native layout (the header pads explicitly, so no packing is needed)."""

    def __repr__(self):
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name, _ in self._fields_
                           if not name.startswith(("reserved", "pad")))
        return f"{type(self).__name__}({fields})"


class Version(_Struct):
    _fields_ = [
        ("abi_version", u32), ("flags", u32), ("module_version", u32),
        ("page_size", u32), ("nr_signals", u32), ("max_threads", u32),
        ("dump_max_pages", u32), ("max_pending", u32), ("max_peek", u32),
        ("max_name", u32), ("reserved", u64 * 4),
    ]


VERSION_FLAGS_ALL = 0

OPEN_F_CLOEXEC = 1 << 0
OPEN_FLAGS_ALL = OPEN_F_CLOEXEC


class OpenSession(_Struct):
    _fields_ = [("pid", u32), ("flags", u32), ("reserved", u64 * 3)]


class Freeze(_Struct):
    _fields_ = [
        ("flags", u32), ("timeout_ms", u32), ("nr_threads", u32), ("nr_stopped", u32),
        ("reserved", u64 * 3),
    ]


FREEZE_FLAGS_ALL = 0


class Thaw(_Struct):
    _fields_ = [("flags", u32), ("pad", u32), ("reserved", u64 * 3)]


THAW_FLAGS_ALL = 0


class Threads(_Struct):
    _fields_ = [
        ("flags", u32), ("count", u32), ("tids_ptr", u64), ("nr_threads", u32),
        ("pad", u32), ("reserved", u64 * 3),
    ]


THREADS_FLAGS_ALL = 0


class Regset(_Struct):
    _fields_ = [
        ("tid", u32), ("note_type", u32), ("flags", u32), ("buf_len", u32),
        ("buf_ptr", u64), ("out_len", u32), ("full_len", u32), ("reserved", u64 * 3),
    ]


REGSET_FLAGS_ALL = 0

# struct crak_vma.prot_flags
VMA_READ = 1 << 0
VMA_WRITE = 1 << 1
VMA_EXEC = 1 << 2
VMA_SHARED = 1 << 3
VMA_MAYREAD = 1 << 4
VMA_MAYWRITE = 1 << 5
VMA_MAYEXEC = 1 << 6
VMA_MAYSHARE = 1 << 7
VMA_GROWSDOWN = 1 << 8
VMA_GROWSUP = 1 << 9
VMA_PFNMAP = 1 << 10
VMA_IO = 1 << 11
VMA_LOCKED = 1 << 12
VMA_DONTCOPY = 1 << 13
VMA_DONTEXPAND = 1 << 14
VMA_DONTDUMP = 1 << 15
VMA_WIPEONFORK = 1 << 16
VMA_HUGEPAGE = 1 << 17
VMA_NOHUGEPAGE = 1 << 18
VMA_MERGEABLE = 1 << 19
VMA_HUGETLB = 1 << 20
VMA_NORESERVE = 1 << 21
VMA_ANON = 1 << 22
VMA_FILE_DELETED = 1 << 23

VMA_KIND_ANON = 0
VMA_KIND_FILE = 1
VMA_KIND_SPECIAL = 2
VMA_KIND_STACK = 3
VMA_KIND_HEAP = 4


class Vma(_Struct):
    _fields_ = [
        ("addr", u64), ("flags", u32), ("name_cap", u32), ("name_ptr", u64),
        ("start", u64), ("end", u64), ("prot_flags", u64), ("offset", u64),
        ("ino", u64), ("dev_major", u32), ("dev_minor", u32), ("mode", u32),
        ("f_flags", u32), ("kind", u32), ("name_len", u32), ("reserved", u64 * 4),
    ]


VMA_FLAGS_ALL = 0


class PageRun(_Struct):
    _fields_ = [("start", u64), ("nr_pages", u64)]


class DumpPages(_Struct):
    _fields_ = [
        ("start", u64), ("end", u64), ("flags", u32), ("out_fd", u32),
        ("out_offset", u64), ("runs_ptr", u64), ("runs_cap", u32), ("nr_runs", u32),
        ("nr_pages", u64), ("next", u64), ("reserved", u64 * 4),
    ]


DUMP_FLAGS_ALL = 0

FD_KIND_UNKNOWN = 0
FD_KIND_REG = 1
FD_KIND_DIR = 2
FD_KIND_CHR = 3
FD_KIND_BLK = 4
FD_KIND_FIFO = 5
FD_KIND_PIPE = 6
FD_KIND_SOCKET = 7
FD_KIND_ANON = 8
FD_KIND_LNK = 9

FD_CLOEXEC = 1 << 0
FD_PATH = 1 << 1
FD_DELETED = 1 << 2


class Fd(_Struct):
    _fields_ = [
        ("fd", u32), ("flags", u32), ("name_ptr", u64), ("name_cap", u32),
        ("name_len", u32), ("fd_flags", u32), ("kind", u32), ("f_flags", u32),
        ("f_mode", u32), ("pos", u64), ("ino", u64), ("dev_major", u32),
        ("dev_minor", u32), ("rdev_major", u32), ("rdev_minor", u32), ("mode", u32),
        ("pad", u32), ("pipe_id", u64), ("reserved", u64 * 4),
    ]


FD_FLAGS_ALL = 0


class Sigaction(_Struct):
    _fields_ = [
        ("handler", u64), ("sa_flags", u64), ("restorer", u64), ("mask", u64 * 2),
    ]


class Sigactions(_Struct):
    _fields_ = [
        ("flags", u32), ("count", u32), ("actions_ptr", u64), ("nr_signals", u32),
        ("pad", u32), ("reserved", u64 * 3),
    ]


SIGACTIONS_FLAGS_ALL = 0

TSIG_F_RESTORE_SIGMASK = 1 << 0


class ThreadSignals(_Struct):
    _fields_ = [
        ("tid", u32), ("flags", u32), ("blocked", u64 * 2), ("saved_mask", u64 * 2),
        ("pending", u64 * 2), ("shared_pending", u64 * 2), ("reserved", u64 * 4),
    ]


THREAD_SIGNALS_FLAGS_ALL = 0


class Siginfo(_Struct):
    _fields_ = [("signo", u32), ("pad", u32), ("info", u8 * 128)]


PENDING_F_SHARED = 1 << 0
PENDING_FLAGS_ALL = PENDING_F_SHARED


class Pending(_Struct):
    _fields_ = [
        ("tid", u32), ("flags", u32), ("start", u32), ("count", u32),
        ("entries_ptr", u64), ("nr_copied", u32), ("nr_queued", u32),
        ("reserved", u64 * 4),
    ]


class Creds(_Struct):
    _fields_ = [
        ("tid", u32), ("flags", u32), ("uid", u32), ("gid", u32), ("suid", u32),
        ("sgid", u32), ("euid", u32), ("egid", u32), ("fsuid", u32), ("fsgid", u32),
        ("groups_ptr", u64), ("groups_cap", u32), ("ngroups", u32),
        ("cap_inheritable", u64), ("cap_permitted", u64), ("cap_effective", u64),
        ("cap_bset", u64), ("cap_ambient", u64), ("securebits", u32), ("pad", u32),
        ("reserved", u64 * 4),
    ]


CREDS_FLAGS_ALL = 0


class PipePeek(_Struct):
    _fields_ = [
        ("fd", u32), ("flags", u32), ("buf_ptr", u64), ("buf_len", u32),
        ("out_len", u32), ("nr_bytes", u32), ("pipe_size", u32), ("ino", u64),
        ("reserved", u64 * 4),
    ]


PIPE_PEEK_FLAGS_ALL = 0


class ThreadMisc(_Struct):
    _fields_ = [
        ("tid", u32), ("flags", u32), ("sas_ss_sp", u64), ("sas_ss_size", u64),
        ("sas_ss_flags", u32), ("rseq_len", u32), ("clear_child_tid", u64),
        ("robust_list", u64), ("robust_list_len", u64), ("rseq", u64),
        ("rseq_sig", u32), ("pad", u32), ("reserved", u64 * 4),
    ]


THREAD_MISC_FLAGS_ALL = 0


class ProcessMisc(_Struct):
    _fields_ = [
        ("flags", u32), ("pad", u32), ("brk", u64), ("start_brk", u64),
        ("pdeath_signal", u32), ("dumpable", u32), ("stop_signal", u32), ("stop_flags", u32),
        ("membarrier", u32), ("child_subreaper", u32), ("mlock_future", u32), ("pad2", u32),
        ("reserved", u64 * 1),
    ]


PROCESS_MISC_FLAGS_ALL = 0
STOP_REPORTABLE = 1 << 0
MLOCK_F_FUTURE = 1 << 0
MLOCK_F_ONFAULT = 1 << 1


class Itimers(_Struct):
    _fields_ = [
        ("flags", u32), ("pad", u32), ("value_ns", u64 * 3), ("interval_ns", u64 * 3),
        ("reserved", u64 * 4),
    ]


ITIMERS_FLAGS_ALL = 0

s32 = ctypes.c_int32
POSIX_TIMER_F_NO_VALUE = 1 << 0


class PosixTimer(_Struct):
    _fields_ = [
        ("id", s32), ("clock", s32), ("notify", u32), ("signo", u32), ("sigval", u64),
        ("target", u32), ("overrun", s32), ("value_ns", u64), ("interval_ns", u64),
        ("flags", u32), ("pad", u32), ("reserved", u64 * 2),
    ]


class PosixTimers(_Struct):
    _fields_ = [
        ("flags", u32), ("count", u32), ("timers_ptr", u64), ("nr_timers", u32),
        ("nr_copied", u32), ("reserved", u64 * 3),
    ]


POSIX_TIMERS_FLAGS_ALL = 0


class Seccomp(_Struct):
    _fields_ = [
        ("tid", u32), ("flags", u32), ("buf_ptr", u64), ("buf_len", u32), ("size", u32),
        ("mode", u32), ("nr_filters", u32), ("reserved", u64 * 4),
    ]


SECCOMP_FLAGS_ALL = 0
SECCOMP_FILTER_F_LOG = 1 << 0
SECCOMP_FILTER_F_LISTENER = 1 << 1


class SeccompFilter(_Struct):
    _fields_ = [("flags", u32), ("len", u32)]


class UnixQueue(_Struct):
    _fields_ = [
        ("fd", u32), ("flags", u32), ("index", u32), ("nr_msgs", u32), ("buf_ptr", u64),
        ("buf_len", u32), ("out_len", u32), ("nr_bytes", u64), ("reserved", u64 * 4),
    ]


UNIX_QUEUE_F_PENDING = 1 << 0
UNIX_QUEUE_FLAGS_ALL = UNIX_QUEUE_F_PENDING


class UnixMsg(_Struct):
    _fields_ = [("len", u32), ("addr_len", ctypes.c_uint16), ("flags", ctypes.c_uint16)]


UNIX_MSG_F_FDS = 1 << 0

# ioctl name -> (direction, nr, struct); the C names are CRAK_IOC_<name>.
COMMANDS = {
    "VERSION": ("rw", 0x00, Version),
    "OPEN_SESSION": ("w", 0x01, OpenSession),
    "FREEZE": ("rw", 0x10, Freeze),
    "THAW": ("w", 0x11, Thaw),
    "THREADS": ("rw", 0x12, Threads),
    "GET_REGSET": ("rw", 0x13, Regset),
    "GET_VMA": ("rw", 0x14, Vma),
    "DUMP_PAGES": ("rw", 0x15, DumpPages),
    "GET_FD": ("rw", 0x16, Fd),
    "GET_SIGACTIONS": ("rw", 0x17, Sigactions),
    "GET_THREAD_SIGNALS": ("rw", 0x18, ThreadSignals),
    "GET_PENDING": ("rw", 0x19, Pending),
    "GET_CREDS": ("rw", 0x1A, Creds),
    "PIPE_PEEK": ("rw", 0x1B, PipePeek),
    "GET_THREAD_MISC": ("rw", 0x1C, ThreadMisc),
    "GET_PROCESS_MISC": ("rw", 0x1D, ProcessMisc),
    "GET_ITIMERS": ("rw", 0x1E, Itimers),
    "UNIX_QUEUE": ("rw", 0x30, UnixQueue),
    "GET_POSIX_TIMERS": ("rw", 0x38, PosixTimers),
    "GET_SECCOMP": ("rw", 0x39, Seccomp),
}

# C struct name -> mirror class, for the probe test and for tools.
STRUCTS = {
    "crak_version": Version, "crak_open_session": OpenSession,
    "crak_freeze": Freeze, "crak_thaw": Thaw, "crak_threads": Threads,
    "crak_regset": Regset, "crak_vma": Vma, "crak_page_run": PageRun,
    "crak_dump_pages": DumpPages, "crak_fd": Fd, "crak_sigaction": Sigaction,
    "crak_sigactions": Sigactions, "crak_thread_signals": ThreadSignals,
    "crak_siginfo": Siginfo, "crak_pending": Pending, "crak_creds": Creds,
    "crak_pipe_peek": PipePeek, "crak_thread_misc": ThreadMisc,
    "crak_process_misc": ProcessMisc, "crak_itimers": Itimers,
    "crak_posix_timer": PosixTimer, "crak_posix_timers": PosixTimers,
    "crak_seccomp": Seccomp, "crak_seccomp_filter": SeccompFilter,
    "crak_unix_queue": UnixQueue, "crak_unix_msg": UnixMsg,
}


def requests(arch=None):
    """{command name: ioctl request number} for `arch` (default: this machine)."""
    return {
        name: _arch.ioc(direction, IOC_MAGIC, nr, ctypes.sizeof(struct), arch)
        for name, (direction, nr, struct) in COMMANDS.items()
    }
