"""epoll instances: the watched set (fd number, events, data, file) from fdinfo.

A watch is keyed by the file *and* the fd number it was added through; that
number may since have been closed or reused for another file. Dump finds the
watched file by open file (kcmp KCMP_EPOLL_TFD against the process's fds),
not by number. Restore creates the instance once every other fd of the
process is in place and adds each watch through its old number, putting the
watched file there for the moment when the number now names something else
(or nothing), then putting that back.

Refused at dump, by name: a watched file no fd of the process holds any more
(a watch lives as long as its file: another process, a mapping or an
SCM_RIGHTS message in flight may still hold it), and a
fired EPOLLONESHOT watch (disarmed: EPOLL_CTL_ADD would arm it again for
EPOLLERR and EPOLLHUP).
"""

import os
import re
import struct

from .. import linux, proc
from ..errors import RestoreConflict, UnsupportedState
from ..images.proto import files_pb2

LINK = "anon_inode:[eventpoll]"
EPOLL_CTL_ADD = 1
_F_DUPFD_CLOEXEC = 1030
# Bits that survive a fired EPOLLONESHOT (fs/eventpoll.c EP_PRIVATE_BITS).
_EPOLLWAKEUP, _EPOLLONESHOT, _EPOLLET, _EPOLLEXCLUSIVE = 1 << 29, 1 << 30, 1 << 31, 1 << 28
_PRIVATE_BITS = _EPOLLWAKEUP | _EPOLLONESHOT | _EPOLLET | _EPOLLEXCLUSIVE
_WATCH = re.compile(r"tfd:\s*(\d+)\s+events:\s*([0-9a-f]+)\s+data:\s*([0-9a-f]+)\s+pos:\s*\d+\s+ino:\s*([0-9a-f]+)"
                    r"\s+sdev:\s*([0-9a-f]+)")


def describe(entry, pid, fd, info, what):
    """Fill the watches; return [(index of the watch, fd of `pid` holding its file)]
    for the caller to turn into file ids once every fd of the process is described."""
    entry.kind = files_pb2.OpenFile.EPOLL
    pending = []
    nth = {}     # fd number -> watches added through it seen so far (kcmp's index among them)
    for line in info.get("extra", []):
        m = _WATCH.match(line.strip())
        if not m:
            continue
        tfd, events, data, ino = int(m.group(1)), int(m.group(2), 16), int(m.group(3), 16), int(m.group(4), 16)
        index = nth.get(tfd, 0)
        nth[tfd] = index + 1
        where = f"{what}: its watch of inode {ino} added through fd {tfd}"
        if events & _EPOLLONESHOT and not events & ~_PRIVATE_BITS:
            raise UnsupportedState(f"{where} is an EPOLLONESHOT watch that has fired (disarmed); "
                                   "re-adding it would arm it again; not supported")
        holder = _holder(pid, fd, tfd, index)
        if holder is None:
            raise UnsupportedState(f"{where} watches a file no fd of process {pid} holds any more "
                                   "(it is held elsewhere); not supported")
        pending.append((len(entry.watches), holder))
        entry.watches.add(fd=tfd, events=events, data=data)
    return pending


def _holder(pid, epoll_fd, tfd, index):
    """An fd of `pid` on the file the watch watches: tfd itself if it still names it."""
    candidates = [tfd] + [other for other in proc.list_fds(pid) if other != tfd]
    for other in candidates:
        try:
            if linux.kcmp_epoll_target(pid, other, pid, epoll_fd, tfd, index) == 0:
                return other
        except OSError:
            continue        # no such fd (tfd closed) or not that file
    return None


def open_in_target(ctx, restorer, entry, placed):
    """Create the instance and add every watch; `placed` maps file id -> fd in this process."""
    inj, scratch = restorer.inj, restorer.scratch
    what = f"epoll of process {restorer.pid}"
    epfd = inj.call("epoll_create1", entry.flags & os.O_CLOEXEC, detail=what)
    # Above every fd number the table or a watch uses: numbers are borrowed below.
    above = max([ctx.park_above] + [w.fd + 1 for w in entry.watches])
    moved = inj.call("fcntl", epfd, _F_DUPFD_CLOEXEC, above, detail=what)
    inj.call("close", epfd)
    epfd = moved
    event = scratch.alloc(16)
    for watch in entry.watches:
        detail = f"{what}: watch of fd {watch.fd}"
        linux.write_memory(restorer.pid, event, struct.pack(restorer.arch.EPOLL_EVENT_FORMAT, watch.events, watch.data))
        holder = placed.get(watch.file_id)
        if holder is None:      # held in another process of the tree: fetched for the moment
            if watch.file_id not in restorer.tree.file_registry:
                raise RestoreConflict(f"{detail}: the watched file is not restored yet")
            holder = ctx.fetch(*restorer.tree.file_registry[watch.file_id])
            fetched = True
        else:
            fetched = False
        if holder == watch.fd:
            inj.call("epoll_ctl", epfd, EPOLL_CTL_ADD, watch.fd, event, detail=detail)
        else:
            _add_through(inj, epfd, watch.fd, holder, event, above, detail)
        if fetched:
            inj.call("close", holder)
    return epfd


def _add_through(inj, epfd, number, holder, event, above, detail):
    """Add the file at `holder` keyed by `number`, whatever `number` names now."""
    occupant = inj.raw("fcntl", number, _F_DUPFD_CLOEXEC, above)    # -EBADF: the number is free
    inj.call("dup3", holder, number, 0, detail=detail)
    inj.call("epoll_ctl", epfd, EPOLL_CTL_ADD, number, event, detail=detail)
    if occupant >= 0:
        inj.call("dup3", occupant, number, 0, detail=detail)
        inj.call("close", occupant)
    else:
        inj.call("close", number)
