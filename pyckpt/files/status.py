"""Per-description state every kind of fd has: status flags and the SIGIO owner.

An open file description's status flags (O_APPEND, O_NONBLOCK, O_ASYNC,
O_DIRECT, O_NOATIME: what F_SETFL changes) and its owner (F_SETOWN_EX: a
thread, process or process group told by SIGIO/SIGURG, F_SETSIG: with which
signal). Neither shows in fdinfo, so dump reads the owner through a
pidfd_getfd copy of the fd.

Restore, once per description, in the first process whose table it lands
in, on its own fd number: O_ASYNC only through F_SETFL (an open() with
O_ASYNC sets the flag without registering for signals, and F_SETFL then
sees no change), and before the owner (a tty's fasync makes the caller or
the foreground group the owner). The owner is set with the process's own
uid and euid: the kernel records them and later checks them against the
receiver's before sending a signal.
"""

import fcntl
import os
import struct

from .. import linux
from ..errors import PyckptError, RestoreConflict, UnsupportedState

F_GETFL = 3
F_SETSIG, F_GETSIG = 10, 11
F_SETOWN_EX, F_GETOWN_EX = 15, 16
F_OWNER_TID, F_OWNER_PID, F_OWNER_PGRP = 0, 1, 2
_OWNERS = {F_OWNER_TID: "thread", F_OWNER_PID: "process", F_OWNER_PGRP: "process group"}
_O_PATH = getattr(os, "O_PATH", 0o10000000)
# What F_SETFL can change (fs/fcntl.c SETFL_MASK).
SETFL_MASK = os.O_APPEND | os.O_NONBLOCK | os.O_ASYNC | getattr(os, "O_DIRECT", 0) | getattr(os, "O_NOATIME", 0)
# Flags an open() must not be given: creation, and O_ASYNC (see above).
NOT_ON_OPEN = os.O_CREAT | os.O_EXCL | os.O_TRUNC | os.O_ASYNC


def describe_owner(entry, pid, fd, what):
    """The description's owner and signal, read through a copy of the fd."""
    if entry.flags & _O_PATH:
        return      # fcntl refuses owners on O_PATH fds: they have none
    try:
        copy = linux.pidfd_getfd(pid, fd)
    except OSError as err:
        raise UnsupportedState(f"{what}: cannot look at its owner (F_GETOWN_EX): {err.strerror}") from err
    try:
        owner_type, owner = struct.unpack("=ii", fcntl.fcntl(copy, F_GETOWN_EX, b"\0" * 8))
        entry.owner_type, entry.owner = owner_type, owner
        entry.owner_signal = fcntl.fcntl(copy, F_GETSIG)
    except OSError as err:
        raise UnsupportedState(f"{what}: cannot read its owner (F_GETOWN_EX): {err.strerror}") from err
    finally:
        os.close(copy)


def check_owner(entry, pids, pgids, what):
    """The owner must be a process (a group, a main thread) of the dump: restore sets it
    before the other threads exist, and a pid outside the dump is another process there."""
    owner, kind = entry.owner, entry.owner_type
    if not owner or (kind in (F_OWNER_PID, F_OWNER_TID) and owner in pids) or (kind == F_OWNER_PGRP and owner in pgids):
        return
    who = _OWNERS.get(kind, f"owner type {kind}")
    if kind == F_OWNER_TID:
        reason = "which is not the main thread of a process of the dump"
    else:
        reason = f"which is not a {who} of the dump"
    raise UnsupportedState(f"{what}: its SIGIO/SIGURG (F_SETOWN) owner is {who} {owner}, {reason}; not supported")


def restore(restorer, fd, entry, what):
    """Status flags, then owner and signal, on the description at the target's `fd`."""
    inj = restorer.inj
    got = inj.call("fcntl", fd, F_GETFL, detail=what)
    want = entry.flags & SETFL_MASK
    if (got & os.O_ACCMODE) != (entry.flags & os.O_ACCMODE):
        raise PyckptError(f"{what}: reopened with access mode {got & os.O_ACCMODE}, was {entry.flags & os.O_ACCMODE}")
    if got & SETFL_MASK != want:
        inj.call("fcntl", fd, linux.F_SETFL, want, detail=f"{what}: status flags {want:#o}")
    if not entry.owner and not entry.owner_signal:
        return
    creds = restorer.task.creds
    as_them = creds.uid or creds.euid
    if as_them:
        inj.call("setresuid", creds.uid, creds.euid, 0, detail=f"{what}: owner's credentials")
    try:
        if entry.owner:
            owner = restorer.scratch.put(struct.pack("=ii", entry.owner_type, entry.owner))
            inj.call("fcntl", fd, F_SETOWN_EX, owner, detail=f"{what}: owner")
        if entry.owner_signal:
            inj.call("fcntl", fd, F_SETSIG, entry.owner_signal, detail=f"{what}: signal")
    finally:
        if as_them:
            inj.call("setresuid", 0, 0, 0, detail="back to root")


def save_attrs(attrs, st):
    """FileAttrs of a file pyckpt creates anew at restore (a socket file, a pty slave)."""
    attrs.mode = st.st_mode & 0o7777
    attrs.uid, attrs.gid = st.st_uid, st.st_gid
    attrs.atime_ns, attrs.mtime_ns = st.st_atime_ns, st.st_mtime_ns


def apply_attrs(path, attrs):
    """Owner first (chown clears set-id bits), then mode, then times."""
    try:
        os.chown(path, attrs.uid, attrs.gid, follow_symlinks=False)
        os.chmod(path, attrs.mode)
        os.utime(path, ns=(attrs.atime_ns, attrs.mtime_ns), follow_symlinks=False)
    except OSError as err:
        raise RestoreConflict(f"{path}: cannot give it back its owner {attrs.uid}:{attrs.gid}, mode "
                              f"{attrs.mode:o} and times: {err.strerror}") from err
