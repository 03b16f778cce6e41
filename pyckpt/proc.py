"""/proc parsers returning typed records. OSError is translated here."""

import os
import re
from dataclasses import dataclass, field

from .errors import AccessDenied, NoSuchProcess

PROC = "/proc"


def _read(path, binary=False, pid=None):
    try:
        with open(path, "rb" if binary else "r") as f:
            return f.read()
    except FileNotFoundError as err:
        raise NoSuchProcess(f"process {pid} does not exist ({path})" if pid else str(err)) from err
    except ProcessLookupError as err:
        raise NoSuchProcess(f"process {pid} is gone") from err
    except PermissionError as err:
        raise AccessDenied(f"cannot read {path}: permission denied") from err


def exists(pid):
    return os.path.exists(f"{PROC}/{pid}")


def exited(pid):
    """`pid` (or a thread id) is a zombie or gone."""
    try:
        return read_stat(pid).state in ("Z", "X")
    except NoSuchProcess:
        return True


def thread_ids(pid):
    try:
        return sorted(int(t) for t in os.listdir(f"{PROC}/{pid}/task"))
    except FileNotFoundError as err:
        raise NoSuchProcess(f"process {pid} does not exist") from err


@dataclass
class Vma:
    start: int
    end: int
    perms: str          # "rwxp" as in maps
    pgoff: int          # bytes
    dev: str            # "fe:00"
    inode: int
    path: str           # "" for anonymous, "[heap]", "/usr/lib/..." (maybe " (deleted)")
    vmflags: frozenset = field(default_factory=frozenset)

    @property
    def shared(self):
        return self.perms[3] == "s"

    @property
    def prot(self):
        return (4 if self.perms[2] == "x" else 0) | (2 if self.perms[1] == "w" else 0) | (1 if self.perms[0] == "r" else 0)

    @property
    def deleted(self):
        return self.path.endswith(" (deleted)")

    @property
    def special(self):
        """Kernel-provided mapping with a bracketed name: [vdso], [vvar], [heap] …"""
        return self.path.startswith("[")

    @property
    def length(self):
        return self.end - self.start


_MAPS_RE = re.compile(
    r"^([0-9a-f]+)-([0-9a-f]+) (\S{4}) ([0-9a-f]+) ([0-9a-f]+:[0-9a-f]+) (\d+)\s*(.*)$"
)


def parse_maps(text):
    vmas = []
    for line in text.splitlines():
        m = _MAPS_RE.match(line)
        if not m:
            raise ValueError(f"unparsable maps line: {line!r}")
        start, end, perms, off, dev, inode, path = m.groups()
        vmas.append(Vma(int(start, 16), int(end, 16), perms, int(off, 16), dev, int(inode), path))
    return vmas


def parse_smaps_vmflags(text, lockonfault=None):
    """smaps -> {start: frozenset(VmFlags)}, in today's mnemonics (see canonical_vmflags)."""
    flags = {}
    current = None
    for line in text.splitlines():
        m = _MAPS_RE.match(line)
        if m:
            current = int(m.group(1), 16)
        elif line.startswith("VmFlags:") and current is not None:
            flags[current] = canonical_vmflags(line.split()[1:], lockonfault)
    return flags


def canonical_vmflags(tokens, lockonfault=None):
    """The VmFlags tokens as a set, with VM_LOCKONFAULT named "lf" also where the kernel
    prints it as "??" (before it had a mnemonic, e.g. 6.1): a lone "??" beside "lo" is it when
    this kernel spells it so (`lockonfault`, probed once: lockonfault_spelling). Any other "??"
    stays, and dump refuses it as a flag it does not know."""
    if tokens.count("??") == 1 and "lo" in tokens and "lf" not in tokens:
        if (lockonfault or lockonfault_spelling()) == "??":
            return frozenset(t for t in tokens if t != "??") | {"lf"}
    return frozenset(tokens)


_lockonfault = None


def lockonfault_spelling():
    """How this kernel's smaps shows VM_LOCKONFAULT: "lf", or "??" (no mnemonic yet)."""
    global _lockonfault
    if _lockonfault is None:
        import ctypes
        import mmap

        from . import linux
        area = mmap.mmap(-1, mmap.PAGESIZE)
        address = ctypes.addressof(ctypes.c_char.from_buffer(area))
        try:
            linux.syscall("mlock2", address, mmap.PAGESIZE, 1)   # MLOCK_ONFAULT
            text = _read(f"{PROC}/self/smaps")   # the lock goes with the mapping, below
        except OSError:
            text = ""
        finally:
            area.close()
        tokens = []
        for start, end, rest in _smaps_blocks(text):
            if start <= address < end:
                tokens = rest
        _lockonfault = "??" if "??" in tokens and "lf" not in tokens else "lf"
    return _lockonfault


def _smaps_blocks(text):
    """(start, end, VmFlags tokens) of every mapping in smaps text."""
    out, current = [], None
    for line in text.splitlines():
        m = _MAPS_RE.match(line)
        if m:
            current = (int(m.group(1), 16), int(m.group(2), 16))
        elif line.startswith("VmFlags:") and current is not None:
            out.append((*current, line.split()[1:]))
    return out


def read_vmas(pid):
    # One read of smaps (its header lines are the maps lines): reading maps and
    # smaps separately could see two different address spaces of a live process.
    smaps = _read(f"{PROC}/{pid}/smaps", pid=pid)
    vmas = parse_maps("\n".join(line for line in smaps.splitlines() if _MAPS_RE.match(line)))
    flags = parse_smaps_vmflags(smaps)
    for vma in vmas:
        vma.vmflags = flags.get(vma.start, frozenset())
    return vmas


def read_thp_disable(pid):
    """PR_GET_THP_DISABLE's answer as /proc/PID/status shows it ("THP_enabled", 0 or 1).

    Exact on kernels without PR_THP_DISABLE_EXCEPT_ADVISED (before 6.18),
    where the flag is one bit; from 6.18 status shows "THP_enabled: 1" for
    that mode too, and only the process itself can tell (the ptrace source
    asks it). crak.ko builds only for 6.1 (kmod/compat/compat.h)."""
    return 1 if read_status(pid).get("THP_enabled", "1") == "0" else 0


def read_ksm_merge_any(pid):
    """prctl(PR_SET_MEMORY_MERGE) is on (Linux 6.4+; /proc/PID/ksm_stat, absent without KSM)."""
    try:
        text = _read(f"{PROC}/{pid}/ksm_stat", pid=pid)
    except NoSuchProcess:
        if exists(pid):
            return False
        raise
    return any(line.split() == ["ksm_merge_any:", "yes"] for line in text.splitlines())


@dataclass
class Stat:
    pid: int
    comm: str
    state: str
    ppid: int
    pgid: int
    sid: int
    tty_nr: int
    tpgid: int             # foreground group of the controlling terminal (-1: none)
    flags: int
    nice: int
    num_threads: int
    start_code: int
    end_code: int
    start_stack: int
    start_data: int
    end_data: int
    start_brk: int
    arg_start: int
    arg_end: int
    env_start: int
    env_end: int
    exit_signal: int
    exit_code: int


def parse_stat(text):
    # comm may contain spaces and parentheses: split at the last ')'.
    head, _, rest = text.rpartition(")")
    pid_s, _, comm = head.partition(" (")
    f = rest.split()
    # f[0] is field 3 (state); field n is f[n - 3].
    def n(i):
        return int(f[i - 3])
    return Stat(
        pid=int(pid_s), comm=comm, state=f[0], ppid=n(4), pgid=n(5), sid=n(6), tty_nr=n(7), tpgid=n(8),
        flags=n(9), nice=n(19), num_threads=n(20), start_code=n(26), end_code=n(27),
        start_stack=n(28), exit_signal=n(38), start_data=n(45), end_data=n(46),
        start_brk=n(47), arg_start=n(48), arg_end=n(49), env_start=n(50), env_end=n(51),
        exit_code=n(52),
    )


def read_stat(pid, tid=None):
    path = f"{PROC}/{pid}/task/{tid}/stat" if tid else f"{PROC}/{pid}/stat"
    return parse_stat(_read(path, pid=pid))


def parse_status(text):
    """status -> {key: raw string value}."""
    out = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        out[key] = value.strip()
    return out


def read_status(pid, tid=None):
    path = f"{PROC}/{pid}/task/{tid}/status" if tid else f"{PROC}/{pid}/status"
    return parse_status(_read(path, pid=pid))


def parse_fdinfo(text):
    """fdinfo -> {"pos": int, "flags": int (octal in the file), "mnt_id": int, ...extra lines}."""
    out = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        value = value.strip()
        if key == "flags":
            out[key] = int(value, 8)
        elif key in ("pos", "mnt_id", "ino"):
            out[key] = int(value)
        else:
            out.setdefault("extra", []).append(line)
    return out


def read_fdinfo(pid, fd):
    return parse_fdinfo(_read(f"{PROC}/{pid}/fdinfo/{fd}", pid=pid))


def list_fds(pid):
    try:
        return sorted(int(fd) for fd in os.listdir(f"{PROC}/{pid}/fd"))
    except FileNotFoundError as err:
        raise NoSuchProcess(f"process {pid} does not exist") from err
    except PermissionError as err:
        raise AccessDenied(f"cannot list fds of process {pid}") from err


def readlink(pid, name):
    try:
        return os.readlink(f"{PROC}/{pid}/{name}")
    except FileNotFoundError as err:
        raise NoSuchProcess(f"process {pid} has no {name}") from err
    except PermissionError as err:
        raise AccessDenied(f"cannot read /proc/{pid}/{name}") from err


def read_auxv(pid):
    return _read(f"{PROC}/{pid}/auxv", binary=True, pid=pid)


def read_comm(pid, tid=None):
    path = f"{PROC}/{pid}/task/{tid}/comm" if tid else f"{PROC}/{pid}/comm"
    return _read(path, pid=pid).rstrip("\n")


def read_personality(pid):
    return int(_read(f"{PROC}/{pid}/personality", pid=pid), 16)


DELETED_SUFFIX = " (deleted)"   # how /proc shows a path that was removed


def read_oom_score_adj(pid):
    return int(_read(f"{PROC}/{pid}/oom_score_adj", pid=pid))


def read_loginuid(pid):
    """/proc/PID/loginuid, or None on a kernel without audit support."""
    if not os.path.exists(f"{PROC}/self/loginuid"):
        return None
    return int(_read(f"{PROC}/{pid}/loginuid", pid=pid))


def holder_description(pid):
    """'1234 (comm)' for messages about who holds a PID, or just the pid."""
    try:
        return f"{pid} ({read_comm(pid)})"
    except (NoSuchProcess, AccessDenied, OSError):
        return str(pid)


def sig_mask_from_hex(text):
    return int(text, 16)



_UNLIMITED = (1 << 64) - 1


def parse_limits(text):
    """/proc/PID/limits -> [(soft, hard)], row i being resource i on this arch."""
    limits = []
    for line in text.splitlines()[1:]:
        # "Max open files            1024                 1048576              files"
        fields = line[26:].split()
        if len(fields) < 2:
            continue
        limits.append(tuple(_UNLIMITED if f == "unlimited" else int(f) for f in fields[:2]))
    return limits


def read_limits(pid):
    return parse_limits(_read(f"{PROC}/{pid}/limits", pid=pid))


def children_map():
    """{ppid: [pid, ...]} of every process, from /proc/*/stat (CONFIG_PROC_CHILDREN may be off)."""
    out = {}
    for name in os.listdir(PROC):
        if not name.isdigit():
            continue
        try:
            stat = read_stat(int(name))
        except (NoSuchProcess, AccessDenied, ValueError):
            continue
        out.setdefault(stat.ppid, []).append(stat.pid)
    return out


def reap_orphans():
    """Reap, without waiting, every child that has exited: a child subreaper (bench, the
    tests, the fuzzer) gets the orphans of what it runs and must reap them."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def process_tree(root):
    """Pids of `root` and its descendants, parents before children."""
    children = children_map()
    order = [root]
    for pid in order:
        order.extend(sorted(children.get(pid, ())))
    return order


@dataclass
class PosixTimer:
    """One entry of /proc/PID/timers."""
    id: int
    signo: int
    sigval: int
    notify: int          # sigev_notify, with SIGEV_THREAD_ID (4) when the target is a thread
    target: int          # the pid, or with SIGEV_THREAD_ID the tid, the signal goes to
    clock: int


# The kernel prints sigev_notify & ~SIGEV_THREAD_ID by name (fs/proc/base.c show_timer).
_TIMER_NOTIFY = {"signal": 0, "none": 1, "thread": 2}
SIGEV_THREAD_ID = 4


def parse_posix_timers(text):
    timers, cur = [], {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        cur[key.strip()] = value.strip()
        if key == "ClockID":
            signo, _, sigval = cur["signal"].partition("/")
            how, _, target = cur["notify"].partition("/")
            kind, _, target_id = target.partition(".")
            notify = _TIMER_NOTIFY[how] | (SIGEV_THREAD_ID if kind == "tid" else 0)
            timers.append(PosixTimer(id=int(cur["ID"]), signo=int(signo), sigval=int(sigval, 16),
                                     notify=notify, target=int(target_id), clock=int(cur["ClockID"])))
            cur = {}
    return sorted(timers, key=lambda t: t.id)


def read_posix_timers(pid):
    """The process's POSIX timers, by id ([] when the kernel has no /proc/PID/timers)."""
    try:
        text = _read(f"{PROC}/{pid}/timers", pid=pid)
    except NoSuchProcess:
        if exists(pid):
            return []    # no CONFIG_CHECKPOINT_RESTORE: no timers file
        raise
    return parse_posix_timers(text)
