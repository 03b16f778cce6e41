"""Every value of an image checked against the limits the kernel and the image
itself impose, in one place, before restore creates anything.

A damaged or crafted image (the manifest re-signed) must end in one line
naming the file and the field, never in a traceback, a hang or a
half-restored process. Two layers:

  FIELD_RULES   (message, field) -> rule: one value on its own (plus its
                siblings). Applied to every message as it is read
                (ImageReader.read_message -> check_message), to each element
                of a repeated field. Every enum is checked against its
                declared values, and every repeated field against MAX_COUNT
                (COUNT_LIMITS overrides), without a table entry.
  IMAGE_CHECKS  functions over the whole image (restorer.image.Image), in
                relations.py: what ties files together (pids unique, fds name
                known files, page runs inside their mappings and their pages
                file, ...).

To validate a new field, add a line to FIELD_RULES with one of the rule
makers below (or a new function `rule(value, msg, ctx) -> reason or None`);
to check a new relation between files, add a function to relations.IMAGE_CHECKS.
"""

import os

from google.protobuf.descriptor import FieldDescriptor

from ..errors import ImageError

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
PID_MAX_LIMIT = 1 << 22            # the kernel's ceiling for pid_max on 64-bit
NR_OPEN = 1 << 20                  # fs.nr_open default; fds at or above are never valid
MAX_COUNT = 1 << 20                # entries of any repeated field, unless COUNT_LIMITS says otherwise
MAX_STRING = 1 << 16
PATH_MAX = 4096
RLIM_NLIMITS = 16
NGROUPS_MAX = 65536


def _user_space_end():
    """One past the highest user address on this machine (x86-64 5-level paging: 57 bits)."""
    try:
        with open("/proc/cpuinfo") as f:
            if " la57" in f.read():
                return 1 << 56
    except OSError:
        pass
    return 1 << 48 if os.uname().machine == "aarch64" else 1 << 47


USER_END = _user_space_end()
VDSO_NAMES = frozenset({"[vdso]", "[vvar]", "[vvar_vclock]"})
VSYSCALL_PAGE = 0xffffffffff600000     # x86-64's fixed vsyscall page, outside user space


def _cap_last_cap():
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            return int(f.read())
    except (OSError, ValueError):
        return 40


CAP_MASK = (1 << (_cap_last_cap() + 1)) - 1


class Context:
    """What a rule may need beyond the value: the image's files and signal count."""

    def __init__(self, reader, nsig=64):
        self.reader = reader
        self.nsig = nsig


# --- rule makers: each returns rule(value, msg, ctx) -> reason or None -------

def at_most(limit):
    return lambda v, m, c: f"above {limit}" if v > limit else None


def in_range(low, high):
    return lambda v, m, c: None if low <= v <= high else f"outside {low}..{high}"


def one_of(*allowed):
    return lambda v, m, c: None if v in allowed else f"not one of {sorted(allowed)}"


def flags(mask):
    return lambda v, m, c: f"unknown bits {v & ~mask:#x}" if v & ~mask else None


def user_address(v, m, c):
    if v >= USER_END:
        return "not a user-space address"
    return None


def user_page(v, m, c):
    if v % PAGE_SIZE:
        return "not page-aligned"
    return user_address(v, m, c)


def vma_bound(v, m, c):
    if m.kind == m.VSYSCALL and v in (VSYSCALL_PAGE, VSYSCALL_PAGE + PAGE_SIZE):
        return None
    if v % PAGE_SIZE:
        return "not page-aligned"
    return None if v <= USER_END else "not a user-space address"


def page_count(v, m, c):
    return "more pages than user space holds" if v > USER_END // PAGE_SIZE else None


def aligned(v, m, c):
    return "not page-aligned" if v % PAGE_SIZE else None


def pid(v, m, c):
    return None if 1 <= v < PID_MAX_LIMIT else f"not a pid (1..{PID_MAX_LIMIT - 1})"


def pid_or_zero(v, m, c):
    return None if 0 <= v < PID_MAX_LIMIT else f"not a pid (0..{PID_MAX_LIMIT - 1})"


def fd_number(v, m, c):
    return None if v < NR_OPEN else f"not an fd number (below {NR_OPEN})"


def signal_number(v, m, c):
    return None if 1 <= v <= c.nsig else f"not a signal (1..{c.nsig})"


def signal_or_zero(v, m, c):
    return None if v <= c.nsig else f"not a signal (0..{c.nsig})"


def high_signals(v, m, c):
    return f"signals above {c.nsig} on this arch" if v and c.nsig <= 64 else None


def catchable_signal(v, m, c):
    if v in (9, 19):
        return "SIGKILL and SIGSTOP have no action to set"
    return signal_number(v, m, c)


def path(v, m, c):
    if not v:
        return None
    if "\0" in v:
        return "holds a NUL byte"
    return "longer than PATH_MAX" if len(v) >= PATH_MAX else None


def absolute_path(v, m, c):
    if v and not v.startswith("/"):
        return "not an absolute path"
    return path(v, m, c)


def image_file(v, m, c):
    """A file name inside the image folder, listed in its manifest."""
    if not v:
        return None
    if "/" in v or v in (".", "..") or not v.endswith(".img"):
        return "not a file name of the image"
    return None if c.reader.has(v) else "names a file not in the image"


def max_length(limit):
    return lambda v, m, c: f"longer than {limit}" if len(v) > limit else None


def segment(v, m, c, null_ok=True):
    if v == 0 and null_ok:
        return None
    return None if v <= 0xffff and v & 3 == 3 else "not a user-mode segment selector"


def an_id(v, m, c):
    return "(uid_t)-1 is no user or group" if v == 0xFFFFFFFF else None


def capabilities(v, m, c):
    return f"unknown capability bits {v & ~CAP_MASK:#x}" if v & ~CAP_MASK else None


# Open flags the kernel never keeps in a description (cleared at open): an image
# holding them would create or truncate files on reopen.
_OPEN_ONLY = os.O_CREAT | os.O_EXCL | os.O_TRUNC | os.O_NOCTTY


def open_flags(v, m, c):
    if v & _OPEN_ONLY:
        return f"holds open-time flags {v & _OPEN_ONLY:#o} (O_CREAT/O_EXCL/O_TRUNC/O_NOCTTY)"
    return None


# --- the table -------------------------------------------------------------------------

FIELD_RULES = {
    # mm.proto
    ("Vma", "start"): vma_bound, ("Vma", "end"): vma_bound,
    ("Vma", "name"): lambda v, m, c: (
        f"not a name the kernel gives its special mappings {sorted(VDSO_NAMES)}"
        if m.kind == m.VDSO and v not in VDSO_NAMES else None),
    ("Vma", "prot"): flags(0x7 | 0x10 | 0x20),          # READ|WRITE|EXEC, arm64 BTI and MTE
    ("Vma", "pgoff"): lambda v, m, c: aligned(v, m, c) or (
        "offset plus length past the largest file offset" if v + (m.end - m.start) >= 2**63 else None),
    ("PageRun", "vaddr"): user_page, ("PageRun", "nr_pages"): page_count,
    ("PageMap", "pages_file"): image_file,
    ("FileRef", "path"): absolute_path,
    ("Mm", "start_code"): user_address, ("Mm", "end_code"): user_address,
    ("Mm", "start_data"): user_address, ("Mm", "end_data"): user_address,
    ("Mm", "start_brk"): user_address, ("Mm", "brk"): user_address,
    ("Mm", "start_stack"): user_address, ("Mm", "arg_start"): user_address,
    ("Mm", "arg_end"): user_address, ("Mm", "env_start"): user_address, ("Mm", "env_end"): user_address,
    ("Mm", "auxv"): max_length(1024 * 16),
    ("Mm", "thp_disable"): at_most(3), ("Mm", "mlock_future"): flags(0x2 | 0x4),
    # files.proto
    ("ProcessEntry", "pid"): pid, ("ProcessEntry", "ppid"): pid_or_zero,
    ("ProcessEntry", "pgid"): pid_or_zero, ("ProcessEntry", "sid"): pid_or_zero,
    ("ProcessEntry", "threads"): pid, ("ProcessEntry", "exit_status"): at_most(0xffff),
    ("Fd", "fd"): fd_number,
    ("RecordLock", "fd"): fd_number, ("RecordLock", "start"): at_most(2**63 - 1),
    ("RecordLock", "length"): at_most(2**63 - 1),
    ("EpollWatch", "fd"): fd_number,
    ("OpenFile", "flags"): open_flags, ("OpenFile", "pos"): at_most(2**63 - 1),
    ("OpenFile", "ghost"): image_file, ("OpenFile", "owner_type"): at_most(2),
    ("OpenFile", "owner_signal"): signal_or_zero, ("OpenFile", "flock"): at_most(2),
    ("OpenFile", "lease"): at_most(2),
    ("Extent", "offset"): at_most(2**63 - 1), ("Extent", "length"): at_most(2**63 - 1),
    ("InotifyWatch", "path"): absolute_path,
    ("UnixMessage", "sender"): max_length(108),           # sun_path
    ("UnixSocket", "queue"): image_file, ("UnixSocket", "sent"): image_file,
    ("UnixSocket", "dir"): absolute_path, ("UnixSocket", "name"): max_length(108),
    ("Pipe", "data"): image_file, ("Pipe", "size"): at_most(1 << 31),
    ("Pty", "ptmx_path"): absolute_path, ("Pty", "slave_path"): absolute_path,
    ("FileAttrs", "mode"): flags(0o7777),
    # core.proto
    ("Task", "pid"): pid, ("Task", "ppid"): pid_or_zero, ("Task", "pgid"): pid_or_zero,
    ("Task", "sid"): pid_or_zero,
    ("Task", "cwd"): absolute_path, ("Task", "umask"): flags(0o777),
    ("Task", "pdeathsig"): signal_or_zero, ("Task", "exit_signal"): signal_or_zero,
    ("Task", "stop_signal"): one_of(0, 19, 20, 21, 22),   # SIGSTOP, SIGTSTP, SIGTTIN, SIGTTOU (x86/arm)
    ("Task", "dumpable"): at_most(2),
    ("Thread", "tid"): pid, ("Thread", "seccomp_mode"): at_most(2),
    ("SigAction", "signo"): catchable_signal,
    ("SigAction", "mask_hi"): high_signals, ("Thread", "sigmask_hi"): high_signals,
    ("SigInfo", "signo"): signal_number, ("SigInfo", "raw"): max_length(128),
    ("Rlimit", "resource"): at_most(RLIM_NLIMITS - 1),
    ("ITimer", "which"): at_most(2),
    ("PosixTimer", "signo"): signal_or_zero, ("PosixTimer", "target_tid"): pid_or_zero,
    ("PosixTimer", "notify"): one_of(0, 1, 2, 4),
    ("Sched", "nice"): in_range(-20, 19), ("Sched", "cpus"): at_most(8191),
    ("Creds", "uid"): an_id, ("Creds", "euid"): an_id, ("Creds", "suid"): an_id, ("Creds", "fsuid"): an_id,
    ("Creds", "gid"): an_id, ("Creds", "egid"): an_id, ("Creds", "sgid"): an_id, ("Creds", "fsgid"): an_id,
    ("Creds", "groups"): an_id, ("Creds", "securebits"): flags(0xff),
    ("Creds", "cap_inh"): capabilities, ("Creds", "cap_prm"): capabilities, ("Creds", "cap_eff"): capabilities,
    ("Creds", "cap_bnd"): capabilities, ("Creds", "cap_amb"): capabilities,
    ("SigAltStack", "sp"): user_address,
    ("Rseq", "pointer"): user_address,
    # regs.proto: what PTRACE_SETREGS refuses with EIO (x86-64 putreg)
    ("X86_64Regs", "fs_base"): user_address, ("X86_64Regs", "gs_base"): user_address,
    ("X86_64Regs", "cs"): lambda v, m, c: segment(v, m, c, null_ok=False),
    ("X86_64Regs", "ss"): lambda v, m, c: segment(v, m, c, null_ok=False),
    ("X86_64Regs", "ds"): segment, ("X86_64Regs", "es"): segment,
    ("X86_64Regs", "fs"): segment, ("X86_64Regs", "gs"): segment,
    # ipc.proto
    ("MemfdObject", "data"): image_file, ("MemfdObject", "size"): at_most(2**63 - 1),
    ("MemfdObject", "seals"): flags(0x3f), ("OpenFile", "seals"): flags(0x3f),
    ("ShmSegment", "data"): image_file, ("ShmSegment", "size"): in_range(1, USER_END),
    ("IpcPerm", "mode"): flags(0o777),
    ("SemSet", "values"): at_most(32767),                  # SEMVMX
    ("Message", "type"): in_range(1, 2**63 - 1),
}

# strings and bytes longer than MAX_STRING: a socket's queues go up to its buffer size (an int)
LENGTH_LIMITS = {
    ("TcpConnection", "send_queue"): 2**31 - 1, ("TcpConnection", "recv_queue"): 2**31 - 1,
}

COUNT_LIMITS = {
    ("SemSet", "values"): 32000,                           # SEMMSL
    ("Creds", "groups"): NGROUPS_MAX,
    ("Mm", "vmas"): 1 << 17,             # vm.max_map_count ceiling in practice (default 65530)
}

_INTEGER_TYPES = {FieldDescriptor.CPPTYPE_INT32, FieldDescriptor.CPPTYPE_INT64,
                  FieldDescriptor.CPPTYPE_UINT32, FieldDescriptor.CPPTYPE_UINT64}


def _repeated(field):
    if hasattr(field, "is_repeated"):      # protobuf >= 6 deprecates `label`
        return field.is_repeated
    return field.label == FieldDescriptor.LABEL_REPEATED


def check_message(msg, where, ctx):
    """Every field of msg (recursively) against FIELD_RULES; ImageError naming `where` and the field."""
    _walk(msg, "", where, ctx)


def _walk(msg, prefix, where, ctx):
    mname = msg.DESCRIPTOR.name
    for field in msg.DESCRIPTOR.fields:
        key = (mname, field.name)
        fpath = prefix + field.name
        value = getattr(msg, field.name)
        if _repeated(field):
            limit = COUNT_LIMITS.get(key, MAX_COUNT)
            if len(value) > limit:
                fail(where, fpath, f"{len(value)} entries", f"more than {limit}")
            items = [(f"{fpath}[{i}]", item) for i, item in enumerate(value)]
        elif field.message_type is not None:
            items = [(fpath, value)] if msg.HasField(field.name) else []
        else:
            items = [(fpath, value)]
        rule = FIELD_RULES.get(key)
        for ipath, item in items:
            if field.message_type is not None:
                _walk(item, ipath + ".", where, ctx)
                continue
            if field.enum_type is not None and item not in field.enum_type.values_by_number:
                fail(where, ipath, item, f"not a {field.enum_type.name} value")
            limit = LENGTH_LIMITS.get(key, MAX_STRING)
            if field.cpp_type == FieldDescriptor.CPPTYPE_STRING and len(item) > limit:
                fail(where, ipath, f"<{len(item)} long>", f"longer than {limit}")
            if rule is not None:
                reason = rule(item, msg, ctx)
                if reason:
                    fail(where, ipath, item, reason)


def fail(where, field, value, reason):
    if isinstance(value, int) and not isinstance(value, bool) and value > 4096:
        value = hex(value)
    elif isinstance(value, (str, bytes)) and len(value) > 60:
        value = f"{value[:60]!r}..."
    raise ImageError(f"{where}: {field} = {value}: {reason}")
