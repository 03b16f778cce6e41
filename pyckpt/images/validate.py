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
  IMAGE_CHECKS  functions over the whole image (restore.image.Image): what
                ties files together (pids unique, fds name known files, page
                runs inside their mappings and their pages file, ...).

To validate a new field, add a line to FIELD_RULES with one of the rule
makers below (or a new function `rule(value, msg, ctx) -> reason or None`);
to check a new relation between files, add a function to IMAGE_CHECKS.
"""

import os

from google.protobuf.descriptor import FieldDescriptor

from .. import shmem
from ..errors import ImageError
from .proto import files_pb2

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


# --- the whole image ---------------------------------------------------------------------
# Each check takes restore.image.Image (tree, tasks, mms, pagemaps, fds, files, reader, arch)
# and raises ImageError naming a file and a field.

def _name(image, name):
    return image.reader.path(name)


def check_tree(image):
    from . import PSTREE, core
    where = _name(image, PSTREE)
    entries = image.tree.processes
    if not entries:
        raise ImageError(f"{where}: processes: lists no process")
    if image.inventory.root_pid and entries[0].pid != image.inventory.root_pid:
        fail(where, "processes[0].pid", entries[0].pid, f"is not the image's root {image.inventory.root_pid}")
    if entries[0].zombie:
        fail(where, "processes[0].zombie", True, "the root process cannot be a zombie")
    seen = set()
    for i, entry in enumerate(entries):
        ids = [entry.pid] + ([] if entry.zombie else list(entry.threads))
        for tid in set(ids):
            if tid in seen:
                fail(where, f"processes[{i}]", tid, "pid or tid listed twice")
        if i and entry.ppid not in seen:
            fail(where, f"processes[{i}].ppid", entry.ppid, "parent not listed before its child")
        seen.update(ids)
        if len(set(entry.threads)) != len(entry.threads):
            fail(where, f"processes[{i}].threads", list(entry.threads), "a tid listed twice")
        if entry.zombie:
            continue
        task = image.tasks[entry.pid]
        cwhere = _name(image, core(entry.pid))
        for field in ("pid", "ppid", "pgid", "sid"):
            if getattr(task, field) != getattr(entry, field):
                fail(cwhere, field, getattr(task, field), f"pstree.img says {getattr(entry, field)}")
        if not task.cwd:
            fail(cwhere, "cwd", "", "empty")
        if not task.threads or task.threads[0].tid != entry.pid:
            fail(cwhere, "threads[0].tid", task.threads[0].tid if task.threads else None,
                 "the first thread must be the process itself")
        tids = [t.tid for t in task.threads]
        if sorted(tids) != sorted(entry.threads or [entry.pid]):
            fail(cwhere, "threads", tids, f"pstree.img lists threads {list(entry.threads)}")
        if len(set(tids)) != len(tids):
            fail(cwhere, "threads", tids, "a tid listed twice")


def check_tasks(image):
    from . import core
    gp = image.arch.NAME
    regsets = {note for note, _name in image.arch.EXTRA_REGSETS}
    for pid, task in image.tasks.items():
        where = _name(image, core(pid))
        for i, thread in enumerate(task.threads):
            if thread.regs.WhichOneof("gp") != gp:
                fail(where, f"threads[{i}].regs", thread.regs.WhichOneof("gp"), f"not {gp} registers")
            for j, regset in enumerate(thread.regs.extra):
                if regset.note_type not in regsets:
                    fail(where, f"threads[{i}].regs.extra[{j}].note_type", regset.note_type,
                         f"not a {gp} register set pyckpt saves")
        c = task.creds
        if c.cap_amb & ~(c.cap_prm & c.cap_inh):
            fail(where, "creds.cap_amb", c.cap_amb, "ambient capabilities outside permitted and inheritable")
        if c.cap_eff & ~c.cap_prm:
            fail(where, "creds.cap_eff", c.cap_eff, "effective capabilities outside permitted")
        signos = [a.signo for a in task.sigactions]
        if len(set(signos)) != len(signos):
            fail(where, "sigactions", signos, "a signal listed twice")
        for i, limit in enumerate(task.rlimits):
            if limit.cur > limit.max:
                fail(where, f"rlimits[{i}].cur", limit.cur, f"above its hard limit {limit.max}")
        # seccomp filter links: restore/seccomp.py check_filters


def _covered(vmas, start, end):
    """[start, end) lies inside mappings that follow each other without a gap (vmas sorted)."""
    cursor = start
    for v in vmas:
        if v.start <= cursor < v.end:
            cursor = v.end
            if cursor >= end:
                return True
        elif v.start > cursor:
            return False
    return False


def _memory_available():
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 1 << 62


_MM_MAP_FIELDS = ("start_code", "end_code", "start_data", "end_data", "start_brk", "brk", "start_stack",
                  "arg_start", "arg_end", "env_start", "env_end")
_MM_MAP_ORDER = (("start_code", "end_code", False), ("start_data", "end_data", True),
                 ("start_brk", "brk", True), ("arg_start", "arg_end", True), ("env_start", "env_end", True))


def _mmap_min_addr():
    try:
        with open("/proc/sys/vm/mmap_min_addr") as f:
            return int(f.read())
    except (OSError, ValueError):
        return 65536


def _check_mm_map(mm, where):
    """What prctl(PR_SET_MM_MAP) accepts (kernel/sys.c validate_prctl_map_addr)."""
    low = _mmap_min_addr()
    for field in _MM_MAP_FIELDS:
        value = getattr(mm, field)
        if not low <= value < USER_END:
            fail(where, field, value, f"outside user space ({low:#x}..{USER_END:#x})")
    for first, second, equal_ok in _MM_MAP_ORDER:
        a, b = getattr(mm, first), getattr(mm, second)
        if a > b or (a == b and not equal_ok):
            fail(where, second, b, f"below {first} {a:#x}")
    if len(mm.auxv) % 16 or len(mm.auxv) > _AUXV_MAX:
        fail(where, "auxv", f"{len(mm.auxv)} bytes", f"not whole (type, value) pairs of at most {_AUXV_MAX} bytes")


_AUXV_MAX = 16 * 48     # the kernel's saved_auxv holds AT_VECTOR_SIZE (about 50) words


def _check_file_runs(mm, page_map, where):
    """Saved pages of a file mapping lie within the file (rounded up to a page): beyond, the mapping
    has no page to fill (SIGBUS in the kernel, a failed fill in restore)."""
    runs = [(f"runs[{i}]", r) for i, r in enumerate(page_map.runs)]
    runs += [(f"inherited[{i}]", r) for i, r in enumerate(page_map.inherited)]
    for field, run in runs:
        start, end = run.vaddr, run.vaddr + run.nr_pages * PAGE_SIZE
        for v in mm.vmas:
            if v.kind not in (v.FILE_PRIVATE, v.FILE_SHARED) or v.end <= start or v.start >= end:
                continue
            last = min(end, v.end) - v.start + v.pgoff
            if last > -(-v.file.size // PAGE_SIZE) * PAGE_SIZE:
                fail(where, field, run.vaddr,
                     f"saved pages past the end of {v.file.path} ({v.file.size} bytes) in its mapping {v.start:#x}")


def check_memory(image):
    from . import mm as mm_name, pagemap as pagemap_name
    for pid, mm in image.mms.items():
        where = _name(image, mm_name(pid))
        previous_end = 0
        for i, vma in enumerate(mm.vmas):
            if vma.start >= vma.end:
                fail(where, f"vmas[{i}].end", vma.end, f"not above its start {vma.start:#x}")
            if vma.start < previous_end:
                fail(where, f"vmas[{i}].start", vma.start, "overlaps or precedes the mapping before it")
            previous_end = vma.end
            for j, guard in enumerate(vma.guards):
                if guard.vaddr < vma.start or guard.vaddr + guard.nr_pages * PAGE_SIZE > vma.end:
                    fail(where, f"vmas[{i}].guards[{j}]", guard.vaddr, "outside its mapping")
        for v in mm.vmas:
            # the raw shmem image's own run table (read again at fill time), checked before anything exists
            if v.kind == v.SHMEM and image.reader.has(shmem.image_name(v.shmem_id)):
                shmem.read_runs(image.reader.path(shmem.image_name(v.shmem_id)))
        specials = [v.name for v in mm.vmas if v.kind == v.VDSO]
        if len(set(specials)) != len(specials):
            fail(where, "vmas[].name", specials, "a vDSO mapping listed twice")
        _check_mm_map(mm, where)
        _check_file_runs(mm, image.pagemaps[pid], _name(image, pagemap_name(pid)))
        locked = sum(v.end - v.start for v in mm.vmas if "lo" in v.vmflags)
        if locked > _memory_available():
            fail(where, "vmas[].vmflags", f"{locked >> 20} MiB locked (mlock)",
                 f"more than this machine's {_memory_available() >> 20} MiB available: restore would hang or OOM")
        page_map = image.pagemaps[pid]
        pwhere = _name(image, pagemap_name(pid))
        if not page_map.pages_file and page_map.runs:
            fail(pwhere, "pages_file", "", "runs but no pages file")
        vmas = [v for v in mm.vmas if v.kind not in (v.VDSO, v.VSYSCALL)]
        total = 0
        for field in ("runs", "inherited"):
            previous_end = 0
            for i, run in enumerate(getattr(page_map, field)):
                end = run.vaddr + run.nr_pages * PAGE_SIZE
                if run.nr_pages == 0:
                    fail(pwhere, f"{field}[{i}].nr_pages", 0, "an empty run")
                if run.vaddr < previous_end:
                    fail(pwhere, f"{field}[{i}].vaddr", run.vaddr, "overlaps or precedes the run before it")
                previous_end = end
                if not _covered(vmas, run.vaddr, end):
                    fail(pwhere, f"{field}[{i}]", run.vaddr,
                         f"{run.nr_pages} pages not inside the mappings of {mm_name(pid)}")
                if field == "runs":
                    total += run.nr_pages * PAGE_SIZE
        if page_map.pages_file:
            size = image.reader.entries[page_map.pages_file].size
            if size != total:
                fail(pwhere, "runs", f"{total} bytes", f"{page_map.pages_file} holds {size}")


def _nofile(task):
    for limit in task.rlimits:
        if limit.resource == 7:   # RLIMIT_NOFILE
            return limit.cur
    return NR_OPEN


_BY_PATH = (files_pb2.OpenFile.REGULAR, files_pb2.OpenFile.DIRECTORY, files_pb2.OpenFile.CHARDEV,
            files_pb2.OpenFile.FIFO, files_pb2.OpenFile.TTY, files_pb2.OpenFile.PTY_SLAVE)


def check_fds(image):
    from . import FILES, fds as fds_name
    for pid, table in image.fds.items():
        where = _name(image, fds_name(pid))
        nofile = min(_nofile(image.tasks[pid]), NR_OPEN)
        numbers = set()
        for i, fd in enumerate(table.fds):
            if fd.fd in numbers:
                fail(where, f"fds[{i}].fd", fd.fd, "listed twice")
            numbers.add(fd.fd)
            if fd.fd >= nofile:
                fail(where, f"fds[{i}].fd", fd.fd, f"not below the process's RLIMIT_NOFILE {nofile}")
            if fd.file_id not in image.files:
                fail(where, f"fds[{i}].file_id", fd.file_id, f"no such open file in {FILES}")
        for i, lock in enumerate(table.posix_locks):
            if lock.fd not in numbers:
                fail(where, f"posix_locks[{i}].fd", lock.fd, "not an fd of the process")
    fwhere = _name(image, FILES)
    ids = [f.id for f in image.files_list]
    if len(set(ids)) != len(ids):
        fail(fwhere, "files", "ids", "an open file id listed twice")
    pipe_ids = [p.id for p in image.pipes_list]
    if len(set(pipe_ids)) != len(pipe_ids):
        fail(fwhere, "pipes", "ids", "a pipe id listed twice")
    # as dump allows (files/status.py check_owner): a process of the image, or a group (F_OWNER_PGRP 2)
    pids = {p.pid for p in image.tree.processes}
    pgids = {p.pgid for p in image.tree.processes}
    for i, entry in enumerate(image.files_list):
        if entry.owner and entry.owner not in (pgids if entry.owner_type == 2 else pids):
            fail(fwhere, f"files[{i}].owner", entry.owner, "not a process (or group) of the image")
        if entry.kind in _BY_PATH and not entry.ghost and not entry.file.path:
            fail(fwhere, f"files[{i}].file.path", "", "a file reopened by path needs one")
        if entry.kind in (entry.PIPE, entry.FIFO) and entry.pipe_id not in image.pipes:
            fail(fwhere, f"files[{i}].pipe_id", entry.pipe_id, "no such pipe")
        if entry.ghost and entry.HasField("deleted"):
            stored = sum(e.length for e in entry.deleted.extents)
            size = image.reader.entries[entry.ghost].size
            if stored != size:
                fail(fwhere, f"files[{i}].deleted.extents", f"{stored} bytes", f"{entry.ghost} holds {size}")
            previous_end = 0
            for j, extent in enumerate(entry.deleted.extents):
                if extent.offset < previous_end:
                    fail(fwhere, f"files[{i}].deleted.extents[{j}].offset", extent.offset,
                         "overlaps or precedes the extent before it")
                previous_end = extent.offset + extent.length


def check_ipc(image):
    from . import IPC
    where = _name(image, IPC)
    ipc = image.ipc
    for field in ("memfds", "shm", "sem", "msg"):
        ids = [o.id for o in getattr(ipc, field)]
        if len(set(ids)) != len(ids):
            fail(where, field, ids, "an id listed twice")
    for i, sem in enumerate(ipc.sem):
        if not sem.values:
            fail(where, f"sem[{i}].values", 0, "a semaphore set holds at least one semaphore")
    memfds, shm = {o.id for o in ipc.memfds}, {o.id for o in ipc.shm}
    mapped = set()
    for pid, mm in image.mms.items():
        for i, vma in enumerate(mm.vmas):
            if vma.kind in (vma.MEMFD_SHARED, vma.MEMFD_PRIVATE):
                mapped.add(vma.shmem_id)
                if vma.shmem_id not in memfds:
                    fail(_name(image, f"mm-{pid}.img"), f"vmas[{i}].shmem_id", vma.shmem_id,
                         f"no such memfd object in {IPC}")
            elif vma.kind == vma.SYSV_SHM and vma.shmem_id not in shm:
                fail(_name(image, f"mm-{pid}.img"), f"vmas[{i}].shmem_id", vma.shmem_id,
                     f"no such shared memory segment in {IPC}")
    for i, obj in enumerate(ipc.memfds):
        if obj.id not in mapped:
            fail(where, f"memfds[{i}].id", obj.id, "a memfd object no mapping uses")


def check_unix(image):
    """Queued messages are read (and their fields checked) now; a datagram's sender is a bound
    socket of the image, as dump requires (files/unix.py _check_sender)."""
    sockets = [e.unix for e in image.files_list if e.kind == files_pb2.OpenFile.UNIX_SOCKET]
    names = {u.name for u in sockets if u.bound}
    for u in sockets:
        for name in (u.queue, u.sent):
            if not name:
                continue
            queue = image.reader.read_message(name, files_pb2.UnixQueue)
            for i, message in enumerate(queue.messages):
                if message.sender and message.sender not in names:
                    fail(image.reader.path(name), f"messages[{i}].sender", message.sender,
                         "no socket of the image is bound to it")


IMAGE_CHECKS = [check_tree, check_tasks, check_memory, check_fds, check_ipc, check_unix]


def check_image(image):
    for check in IMAGE_CHECKS:
        check(image)
