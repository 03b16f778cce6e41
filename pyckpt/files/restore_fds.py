"""Putting a process's fd table back, by injecting opens into it.

The stub's own fds were all closed, so fds are installed in ascending
order: an open lands on the lowest free number, which is at most the fd
being placed, and is moved there with dup3. Every fd sharing one open file
description is a dup of the first, so they share its offset and flags again.
"""

import logging
import os

from ..errors import RestoreConflict
from ..images.proto import files_pb2
from . import regular, tty

log = logging.getLogger(__name__)

_AT_FDCWD = -100
_SEEK_SET = 0
_REOPEN_MASK = ~(os.O_CREAT | os.O_EXCL | os.O_TRUNC)


def install(restorer):
    image, inj, scratch, pid = restorer.image, restorer.inj, restorer.scratch, restorer.pid
    table = image.fds[pid]
    placed = {}              # file id -> fd holding it in the target
    installed = set()
    for fd in sorted(table.fds, key=lambda f: f.fd):
        if fd.fd in installed:
            continue
        entry = image.files[fd.file_id]
        if fd.file_id not in placed:
            scratch.reset()
            temp = _open(restorer, entry, fd.fd)
            if temp != fd.fd:
                inj.call("dup3", temp, fd.fd, 0)
                inj.call("close", temp)
            placed[fd.file_id] = fd.fd
        else:
            inj.call("dup3", placed[fd.file_id], fd.fd, 0)
        installed.add(fd.fd)
    # close-on-exec is per fd: set it last, on every fd that had it.
    for fd in table.fds:
        if fd.cloexec:
            inj.call("fcntl", fd.fd, 2, 1)  # F_SETFD, FD_CLOEXEC


def _open(restorer, entry, fd_number):
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
