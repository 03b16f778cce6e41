"""Files in flight: passed over a unix socket (SCM_RIGHTS), not received yet.

Dump: peeking at a queued message gives pyckpt a copy of each file it carries
(the same open file description). One that an fd of the dump also holds is
that fd's description (kcmp); one that no fd holds is described on its own,
if it is a kind pyckpt reopens by path (a regular file, a directory, a
device). Anything else is refused naming the socket and the file.

Restore: pyckpt builds the unix sockets before any process has its fds, so it
opens each file in flight itself (or takes a socket it built), sends the
message again carrying it, and registers its fd: a process that also holds
that description fetches it from pyckpt (restore_fds), so they share it again.
"""

import os
import stat

from .. import proc
from ..errors import RestoreConflict, UnsupportedState
from ..images.proto import files_pb2
from . import ghost, locks, procfs, regular, status, tty

_K = files_pb2.OpenFile
# Kinds pyckpt can have in hand when it refills the queues (before any process has its fds).
_SENDABLE = (_K.REGULAR, _K.DIRECTORY, _K.CHARDEV, _K.UNIX_SOCKET)
_REOPEN_MASK = ~status.NOT_ON_OPEN


def check_held(entry, what):
    """A file in flight that an fd of the dump holds too: restore must have it in hand first."""
    if entry.kind not in _SENDABLE or entry.ghost:
        kind = "a deleted file" if entry.ghost else _K.Kind.Name(entry.kind).lower().replace("_", " ")
        raise UnsupportedState(f"{what} is {kind} (held by fd too: {entry.file.path or entry.id}); "
                               "only regular files, directories, devices and unix sockets of the dump "
                               "can be in flight; not supported")


def describe(entry, local, st, what):
    """Fill `entry` for a file in flight that no fd of the dump holds (`local`: pyckpt's copy of it)."""
    link = os.readlink(f"/proc/self/fd/{local}")
    what = f"{what} ({link})"
    info = proc.read_fdinfo(os.getpid(), local)
    entry.flags = info["flags"] & ~os.O_CLOEXEC
    entry.pos = info.get("pos", 0)
    if stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode):
        if ghost.is_deleted(link, st):
            raise UnsupportedState(f"{what} is a deleted file that only a queued message holds; not supported")
        procfs.check(link, st, what)
        regular.describe(entry, link, st, what)
    elif stat.S_ISCHR(st.st_mode) and not tty.is_tty(st):
        regular.describe_device(entry, link, st, what)
    elif stat.S_ISSOCK(st.st_mode):
        raise UnsupportedState(f"{what} is a socket that no process of the dump holds; not supported")
    else:
        raise UnsupportedState(f"{what}: only regular files, directories and devices can be in flight "
                               f"without a process of the dump holding them (mode {st.st_mode:#o}); "
                               "not supported")
    if locks.parse(info, what):
        raise UnsupportedState(f"{what} holds a lock; not supported")
    status.describe_owner(entry, os.getpid(), local, what)
    if entry.owner:
        raise UnsupportedState(f"{what} has an owner for its signals (F_SETOWN); not supported")


def open_local(entry, what):
    """pyckpt's own fd on the file in flight of `entry` (not a unix socket: those are built)."""
    flags = (entry.flags & _REOPEN_MASK) | os.O_CLOEXEC
    if entry.kind == _K.CHARDEV:
        flags |= os.O_NOCTTY
    path = regular.check_file(entry, what)
    try:
        fd = os.open(path, flags)
    except OSError as err:
        raise RestoreConflict(f"{what}: cannot reopen {path}: {err.strerror}") from None
    if entry.kind in (_K.REGULAR, _K.DIRECTORY) and entry.pos:
        os.lseek(fd, entry.pos, os.SEEK_SET)
    return fd
