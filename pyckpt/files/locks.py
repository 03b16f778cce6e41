"""File locks: flock() and open-file-description (OFD) locks belong to an open
file description, POSIX record locks to the process. fdinfo lists them on
each fd ("lock:" lines); restore takes them again, non-blocking, once the
fds are in place: a lock someone else took meanwhile is a clear error.

Leases (F_SETLEASE) belong to the description too; with one, the
description's owner and signal (F_GETOWN_EX, F_GETSIG: who is told when the
lease is broken) are read through a pidfd_getfd copy and set again after the
lease (F_SETLEASE makes its caller the owner). A lease being broken at dump
time is refused: the breaker waits in the kernel for it and cannot be restored.
"""

import fcntl
import os
import re
import struct

from .. import linux
from ..errors import RestoreConflict, UnsupportedState

_LOCK = re.compile(r"lock:\s*\d+:\s*(\S+)\s+(\S+)\s+(\S+)\s+(-?\d+)\s+\S+\s+(\d+)\s+(\d+|EOF)")
F_SETLK = 6
F_SETSIG, F_GETSIG = 10, 11
F_SETOWN_EX, F_GETOWN_EX = 15, 16
F_OWNER_TID, F_OWNER_PID, F_OWNER_PGRP = 0, 1, 2
F_SETLEASE = 1024
LEASE_READ, LEASE_WRITE = 1, 2          # OpenFile.lease
F_OFD_SETLK = 37
F_RDLCK, F_WRLCK = 0, 1
LOCK_SH, LOCK_EX, LOCK_NB = 1, 2, 4
_FLOCK_FORMAT = "=hh4xqqi4x"   # struct flock: l_type, l_whence, l_start, l_len, l_pid


def parse(info, what):
    """[(kind, write, start, length)] of the "lock:" lines of an fd's fdinfo."""
    out = []
    for line in info.get("extra", []):
        if not line.startswith("lock:"):
            continue
        m = _LOCK.match(line)
        if not m:
            raise UnsupportedState(f"{what}: cannot read its lock ({line.strip()})")
        kind, mode, access, _pid, start, end = m.groups()
        if kind == "LEASE":
            if mode != "ACTIVE":
                raise UnsupportedState(f"{what} holds a lease being broken ({mode.lower()} to {access}); "
                                       "not supported: dump again once the break is over")
            out.append((kind, access == "WRITE", 0, 0))
            continue
        if kind not in ("FLOCK", "POSIX", "OFDLCK") or mode != "ADVISORY":
            raise UnsupportedState(f"{what} holds a {kind} {mode} lock; not supported yet")
        start = int(start)
        length = 0 if end == "EOF" else int(end) - start + 1
        out.append((kind, access == "WRITE", start, length))
    return out


def record(table_entry, file_entry, fd, locks, seen_posix):
    """File the locks of one fd where they belong: description or process."""
    for kind, write, start, length in locks:
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
                table_entry.posix_locks.add(fd=fd, write=write, start=start, length=length)


def describe_owner(file_entry, pid, fd, what):
    """The description's owner and signal, read through a copy of the fd."""
    try:
        copy = linux.pidfd_getfd(pid, fd)
    except OSError as err:
        raise UnsupportedState(f"{what}: cannot look at its lease's owner: {err.strerror}") from err
    try:
        owner_type, owner = struct.unpack("=ii", fcntl.fcntl(copy, F_GETOWN_EX, b"\0" * 8))
        file_entry.owner_type, file_entry.owner = owner_type, owner
        file_entry.owner_signal = fcntl.fcntl(copy, F_GETSIG)
    finally:
        os.close(copy)


def check_owner(file_entry, pids, pgids, what):
    """The owner must exist again at restore, when locks are taken (threads come later)."""
    owner, kind = file_entry.owner, file_entry.owner_type
    if not owner or (kind in (F_OWNER_PID, F_OWNER_TID) and owner in pids) or (kind == F_OWNER_PGRP and owner in pgids):
        return
    who = {F_OWNER_TID: "thread", F_OWNER_PID: "process", F_OWNER_PGRP: "process group"}.get(kind, "owner")
    raise UnsupportedState(f"{what}: its lease break notices go to {who} {owner}, which is not a process "
                           "(or group) of the dump; not supported")


def take_lease(restorer, fd, entry, what):
    inj = restorer.inj
    result = inj.raw("fcntl", fd, F_SETLEASE, F_WRLCK if entry.lease == LEASE_WRITE else F_RDLCK)
    if result < 0:
        raise RestoreConflict(f"{what}: cannot take its {'write' if entry.lease == LEASE_WRITE else 'read'} "
                              f"lease again: {os.strerror(-result)}")
    owner = restorer.scratch.put(struct.pack("=ii", entry.owner_type, entry.owner))
    inj.call("fcntl", fd, F_SETOWN_EX, owner, detail=f"{what}: lease owner")
    inj.call("fcntl", fd, F_SETSIG, entry.owner_signal, detail=f"{what}: lease signal")


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
