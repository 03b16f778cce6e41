"""Putting a process's fd table back, by injecting opens into it.

The stub's own fds were all closed, so fds are installed in ascending
order: an open lands on the lowest free number, which is at most the fd
being placed, and is moved there with dup3. Every fd sharing one open file
description is a dup of the first, so they share its offset and flags again.

A process sharing its parent's fd table (clone CLONE_FILES) finds it filled.

An open file description already restored in another process of the tree
(an inherited fd, a pipe end) is fetched from there with pidfd_getfd, so
the processes share it as they did. Kinds that create several fds at once
(a pipe's two ends) park the extra ones above every number the process
uses, registered for whoever needs them; `close_parked` drops what is left
once every process has its table.
"""

import logging
import os

from .. import linux
from ..errors import PyckptError, RestoreConflict
from ..images.proto import files_pb2
from . import anon, epoll, fifo, ghost, inotify, locks, memfd, pidfd, pipe, regular, status, tty

log = logging.getLogger(__name__)

_SEEK_SET = 0
_F_DUPFD_CLOEXEC = 1030
_FD_CLOEXEC = 1
_REOPEN_MASK = ~status.NOT_ON_OPEN
# Reopened at offset 0: a directory's offset is where getdents goes on from.
_SEEKABLE = (files_pb2.OpenFile.REGULAR, files_pb2.OpenFile.DIRECTORY)


class _Context:
    def __init__(self, restorer, table):
        self.restorer = restorer
        self.park_above = max((f.fd for f in table.fds), default=2) + 1
        self.pidfds = {}        # other pid -> pidfd (parked)

    def park(self, fd):
        """Move a temporary fd above the table; returns its new number."""
        inj = self.restorer.inj
        parked = inj.call("fcntl", fd, _F_DUPFD_CLOEXEC, self.park_above)
        inj.call("close", fd)
        self.restorer.parked.append(parked)
        return parked

    def fetch(self, other_pid, other_fd):
        """A new fd in this process for the open file description at other_pid's fd (pidfd_getfd)."""
        inj = self.restorer.inj
        if other_pid not in self.pidfds:
            self.pidfds[other_pid] = self.park(inj.call("pidfd_open", other_pid, 0, detail=f"pidfd of {other_pid}"))
        return inj.call("pidfd_getfd", self.pidfds[other_pid], other_fd, 0,
                        detail=f"fd {other_fd} of process {other_pid}")


def install(restorer):
    image, inj, pid = restorer.image, restorer.inj, restorer.pid
    registry = restorer.tree.file_registry
    table = image.fds[pid]
    if restorer.entry.shares_files:
        # its parent's table, filled already (parents come first): only the locks it set itself
        _take_posix_locks(restorer, table)
        return
    ctx = _Context(restorer, table)
    placed = {}              # file id -> fd holding it in this process's table
    # epoll instances watch other fds by number: they come last; inotify instances may
    # watch a deleted file through its restored fd: just before.
    last = {files_pb2.OpenFile.INOTIFY: 1, files_pb2.OpenFile.EPOLL: 2}
    order = sorted(table.fds, key=lambda f: (last.get(image.files[f.file_id].kind, 0), f.fd))
    for fd in order:
        if fd.fd in placed.values():
            continue
        if fd.file_id in placed:
            inj.call("dup3", placed[fd.file_id], fd.fd, 0)
            continue
        restorer.scratch.reset()
        location = registry.get(fd.file_id)
        if location is None:
            temp = _open(ctx, restorer, image.files[fd.file_id], fd.fd, placed)
        elif location[0] == pid:
            temp = location[1]          # parked here earlier (the other end of a pipe)
        else:
            temp = ctx.fetch(*location)
        if temp != fd.fd:
            inj.call("dup3", temp, fd.fd, 0)
            inj.call("close", temp)
            if temp in restorer.parked:
                restorer.parked.remove(temp)
        placed[fd.file_id] = fd.fd
        registry[fd.file_id] = (pid, fd.fd)
    _restore_descriptions(restorer, table, placed)
    for parked_pidfd in ctx.pidfds.values():
        inj.call("close", parked_pidfd)
        restorer.parked.remove(parked_pidfd)
    # close-on-exec belongs to the fd, not the file: set it on every fd.
    for fd in table.fds:
        inj.call("fcntl", fd.fd, linux.F_SETFD, _FD_CLOEXEC if fd.cloexec else 0)


def close_parked(restorer):
    for fd in restorer.parked:
        restorer.inj.call("close", fd)
    restorer.parked = []


def _open(ctx, restorer, entry, fd_number, placed):
    if entry.kind == files_pb2.OpenFile.PIPE:
        return pipe.open_in_target(ctx, entry, restorer)
    if entry.kind == files_pb2.OpenFile.FIFO:
        return fifo.open_in_target(ctx, entry, restorer)
    if entry.kind == files_pb2.OpenFile.MEMFD:
        return memfd.open_in_target(restorer, entry)
    if entry.kind in anon.KINDS.values():
        return anon.open_in_target(restorer, entry)
    if entry.kind == files_pb2.OpenFile.PIDFD:
        return pidfd.open_in_target(ctx, restorer, entry)
    if entry.kind == files_pb2.OpenFile.EPOLL:
        return epoll.open_in_target(ctx, restorer, entry, placed)
    if entry.kind == files_pb2.OpenFile.INOTIFY:
        return inotify.open_in_target(restorer, entry)
    if entry.kind == files_pb2.OpenFile.INET_SOCKET:
        raise PyckptError(f"process {restorer.pid} fd {fd_number}: TCP socket:[{entry.inet.ino}] was not built")
    if entry.kind == files_pb2.OpenFile.UNIX_SOCKET:
        # built by pyckpt before any fd table (files/unix.py) and always in the registry
        raise PyckptError(f"process {restorer.pid} fd {fd_number}: unix socket:[{entry.unix.ino}] was not built")
    if entry.kind == files_pb2.OpenFile.PTY_MASTER:
        # Opened in pyckpt with its old index (restore.TreeRestorer); the target takes it over.
        return ctx.fetch(os.getpid(), restorer.tree.ptys.master_fd(entry.pty_index))
    if entry.kind == files_pb2.OpenFile.PTY_SLAVE and not entry.flags & os.O_LARGEFILE:
        local = restorer.tree.ptys.open_peer(entry.pty_index, (entry.flags & _REOPEN_MASK) | os.O_NOCTTY)
        try:
            return ctx.fetch(os.getpid(), local)
        finally:
            os.close(local)
    inj, scratch, pid = restorer.inj, restorer.scratch, restorer.pid
    what = f"process {pid} fd {fd_number} ({entry.file.path})"
    flags = entry.flags & _REOPEN_MASK
    if entry.ghost:
        result = ghost.open_in_target(restorer, entry, flags, what)
        if entry.kind in _SEEKABLE and entry.pos:
            inj.call("lseek", result, entry.pos, _SEEK_SET, detail=what)
        return result
    if entry.kind == files_pb2.OpenFile.TTY:
        path = tty.restoring_terminal()
        flags |= os.O_NOCTTY
    elif entry.kind == files_pb2.OpenFile.PTY_SLAVE:
        # The controlling terminal is set apart, by the session leader (files/pty.py).
        path = restorer.image.ptys[entry.pty_index].slave_path
        flags |= os.O_NOCTTY
    elif entry.kind == files_pb2.OpenFile.CHARDEV and entry.node_deleted:
        return regular.open_deleted_device(restorer, entry, flags, what)
    elif entry.kind == files_pb2.OpenFile.CHARDEV:
        path = regular.check_file(entry, what)
        flags |= os.O_NOCTTY        # a terminal reopened by a session leader must not become its terminal
    else:
        path = regular.check_file(entry, what)
    result = inj.raw("openat", linux.AT_FDCWD, scratch.put_str(path), flags, 0)
    if result < 0:
        raise RestoreConflict(f"{what}: cannot reopen {path}: {os.strerror(-result)}")
    if entry.kind in _SEEKABLE and entry.pos:
        inj.call("lseek", result, entry.pos, _SEEK_SET, detail=what)
    return result


def _restore_descriptions(restorer, table, placed):
    """After every fd is in place, in the description's first holder only (the
    others share it): flock/OFD locks and leases, then status flags and owner
    (files/status.py). POSIX locks belong to each process."""
    files = restorer.image.files
    for file_id, fd in sorted(placed.items(), key=lambda item: item[1]):
        entry = files[file_id]
        if file_id in restorer.tree.locked_files:
            continue
        what = f"process {restorer.pid} fd {fd} ({entry.file.path})"
        restorer.tree.locked_files.add(file_id)
        restorer.scratch.reset()
        if entry.flock:
            locks.take_flock(restorer, fd, entry.flock, what)
        for lock in entry.ofd_locks:
            locks.take(restorer, fd, lock, locks.F_OFD_SETLK, what)
        if entry.lease:
            locks.take_lease(restorer, fd, entry, what)
        restorer.scratch.reset()
        status.restore(restorer, fd, entry, what)
    _take_posix_locks(restorer, table)


def _take_posix_locks(restorer, table):
    for lock in table.posix_locks:
        restorer.scratch.reset()
        locks.take(restorer, lock.fd, lock, locks.F_SETLK, f"process {restorer.pid} fd {lock.fd}")
