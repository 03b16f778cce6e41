"""Putting a process's fd table back, by injecting opens into it.

The stub's own fds were all closed, so fds are installed in ascending
order: an open lands on the lowest free number, which is at most the fd
being placed, and is moved there with dup3. Every fd sharing one open file
description is a dup of the first, so they share its offset and flags again.
Kinds that create several fds at once (pipes) park the extra ones above
every number the process uses until their turn.
"""

import logging
import os

from ..errors import RestoreConflict
from ..images.proto import files_pb2
from . import pipe, regular, tty

log = logging.getLogger(__name__)

_AT_FDCWD = -100
_SEEK_SET = 0
_F_SETFD = 2
_FD_CLOEXEC = 1
_REOPEN_MASK = ~(os.O_CREAT | os.O_EXCL | os.O_TRUNC)


class _Context:
    def __init__(self, table):
        self.park_above = max((f.fd for f in table.fds), default=2) + 1
        self.pipe_ends = {}     # pipe id -> {access mode: parked fd}


def install(restorer):
    image, inj, pid = restorer.image, restorer.inj, restorer.pid
    table = image.fds[pid]
    ctx = _Context(table)
    placed = {}              # file id -> fd holding it in the target
    installed = set()
    for fd in sorted(table.fds, key=lambda f: f.fd):
        if fd.fd in installed:
            continue
        if fd.file_id not in placed:
            restorer.scratch.reset()
            temp = _open(ctx, restorer, image.files[fd.file_id], fd.fd)
            if temp != fd.fd:
                inj.call("dup3", temp, fd.fd, 0)
                inj.call("close", temp)
            placed[fd.file_id] = fd.fd
        else:
            inj.call("dup3", placed[fd.file_id], fd.fd, 0)
        installed.add(fd.fd)
    # close-on-exec belongs to the fd, not the file: set it last.
    for fd in table.fds:
        if fd.cloexec:
            inj.call("fcntl", fd.fd, _F_SETFD, _FD_CLOEXEC)


def _open(ctx, restorer, entry, fd_number):
    if entry.kind == files_pb2.OpenFile.PIPE:
        return pipe.open_in_target(ctx, entry, restorer)
    inj, scratch, pid = restorer.inj, restorer.scratch, restorer.pid
    what = f"process {pid} fd {fd_number} ({entry.file.path})"
    flags = entry.flags & _REOPEN_MASK
    unlink_after = None
    if entry.kind == files_pb2.OpenFile.TTY:
        path = tty.restoring_terminal()
        flags |= os.O_NOCTTY
    elif entry.ghost:
        path = unlink_after = regular.recreate_ghost(entry, restorer.image.path(entry.ghost))
    else:
        path = regular.check_file(entry, what)
    try:
        result = inj.raw("openat", _AT_FDCWD, scratch.put_str(path), flags, 0)
    finally:
        if unlink_after:
            os.unlink(unlink_after)
    if result < 0:
        raise RestoreConflict(f"{what}: cannot reopen {path}: {os.strerror(-result)}")
    if entry.kind == files_pb2.OpenFile.REGULAR and entry.pos:
        inj.call("lseek", result, entry.pos, _SEEK_SET, detail=what)
    return result
