"""File locks: flock() and open-file-description (OFD) locks belong to an open
file description, POSIX record locks to the process. fdinfo lists them on
each fd ("lock:" lines); restore takes them again, non-blocking, once the
fds are in place: a lock someone else took meanwhile is a clear error.

Leases (F_SETLEASE) belong to the description too; the description's owner
and signal (who is told when the lease is broken, files/status.py) are set
again after the lease (F_SETLEASE makes its caller the owner). A lease being
broken at dump time is refused: the breaker waits in the kernel for it and
cannot be restored.
"""

import os
import re
import struct

from ..errors import RestoreConflict, UnsupportedState

_LOCK = re.compile(r"lock:\s*\d+:\s*(\S+)\s+(\S+)\s+(\S+)\s+(-?\d+)\s+\S+\s+(\d+)\s+(\d+|EOF)")
F_SETLK = 6
F_SETLEASE = 1024
LEASE_READ, LEASE_WRITE = 1, 2          # OpenFile.lease
F_OFD_SETLK = 37
F_RDLCK, F_WRLCK = 0, 1
LOCK_SH, LOCK_EX, LOCK_NB = 1, 2, 4
_FLOCK_FORMAT = "=hh4xqqi4x"   # struct flock: l_type, l_whence, l_start, l_len, l_pid


def parse(info, what):
    """[(kind, write, start, length, pid)] of the "lock:" lines of an fd's fdinfo."""
    out = []
    for line in info.get("extra", []):
        if not line.startswith("lock:"):
            continue
        m = _LOCK.match(line)
        if not m:
            raise UnsupportedState(f"{what}: cannot read its lock ({line.strip()})")
        kind, mode, access, pid, start, end = m.groups()
        if kind == "LEASE":
            if mode != "ACTIVE":
                raise UnsupportedState(f"{what} holds a lease being broken ({mode.lower()} to {access}); "
                                       "not supported: dump again once the break is over")
            out.append((kind, access == "WRITE", 0, 0, 0))
            continue
        if kind not in ("FLOCK", "POSIX", "OFDLCK") or mode != "ADVISORY":
            raise UnsupportedState(f"{what} holds a {kind} {mode} lock; not supported yet")
        start = int(start)
        length = 0 if end == "EOF" else int(end) - start + 1
        out.append((kind, access == "WRITE", start, length, max(int(pid), 0)))
    return out


def record(table_entry, file_entry, fd, locks, seen_posix):
    """File the locks of one fd where they belong: description or process."""
    for kind, write, start, length, pid in locks:
        if kind == "FLOCK":
            file_entry.flock = LOCK_EX if write else LOCK_SH
        elif kind == "LEASE":
            file_entry.lease = LEASE_WRITE if write else LEASE_READ
        elif kind == "OFDLCK":
            if not any(l.start == start and l.length == length for l in file_entry.ofd_locks):
                file_entry.ofd_locks.add(fd=fd, write=write, start=start, length=length)
        else:
            key = (file_entry.file.ino, write, start, length)
            if key not in seen_posix:
                seen_posix.add(key)
                table_entry.posix_locks.add(fd=fd, write=write, start=start, length=length, pid=pid)


def take_lease(restorer, fd, entry, what):
    inj = restorer.inj
    result = inj.raw("fcntl", fd, F_SETLEASE, F_WRLCK if entry.lease == LEASE_WRITE else F_RDLCK)
    if result < 0:
        raise RestoreConflict(f"{what}: cannot take its {'write' if entry.lease == LEASE_WRITE else 'read'} "
                              f"lease again: {os.strerror(-result)}")
    # F_SETLEASE made this process the owner: status.restore sets the real one after this.


def take(restorer, fd, lock, cmd, what):
    data = struct.pack(_FLOCK_FORMAT, F_WRLCK if lock.write else F_RDLCK, os.SEEK_SET, lock.start, lock.length, 0)
    result = restorer.inj.raw("fcntl", fd, cmd, restorer.scratch.put(data))
    if result < 0:
        raise RestoreConflict(f"{what}: cannot take its lock on bytes {lock.start}+{lock.length or 'EOF'} "
                              f"again: {os.strerror(-result)}")


def take_flock(restorer, fd, mode, what):
    result = restorer.inj.raw("flock", fd, mode | LOCK_NB)
    if result < 0:
        raise RestoreConflict(f"{what}: cannot take its flock() again: {os.strerror(-result)}")
