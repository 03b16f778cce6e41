"""Pipes whose ends are all inside the dump, with their buffered bytes.

Dump: the bytes in the buffer are copied without consuming them (the
source's `pipe_contents`: tee(2) from a reader opened through /proc for
ptrace, the kernel's own peek for kmod). A pipe with an end held anywhere
else is refused, naming the holder. Restore: pipe2 in the target, the old
size, the bytes written back, both ends parked above every fd number the
process uses until they are moved into place.

One end may be held by no process (a reader left with the data and then
EOF, a writer that gets EPIPE): both ends are created anyway and the one
nobody holds is closed with the other parked fds once every process has
its table. An end opened more than once (open("/proc/self/fd/N")) is
several open files on one pipe: the first is the end pipe2 made, each
other one is opened again through /proc from it, with its own flags.
"""

import fcntl
import logging
import os
import struct

from .. import linux, pagemap, proc
from ..errors import RestoreConflict, UnsupportedState
from ..images.proto import files_pb2

log = logging.getLogger(__name__)

_O_DIRECT = getattr(os, "O_DIRECT", 0o40000)

def describe(entry, st):
    entry.kind = files_pb2.OpenFile.PIPE
    entry.pipe_id = st.st_ino


def check_ends(pipe_id, ends, holders_outside, what_kind="pipe"):
    """Refuse a pipe or FIFO with an end outside the dump, naming both ends."""
    first = ends[0]
    what = f"process {first[0]} fd {first[1]} ({what_kind}:[{pipe_id}])"
    if holders_outside:
        pid, fd = holders_outside[0]
        raise UnsupportedState(f"{what} leads to process {proc.holder_description(pid)} fd {fd}, outside the dump")


def check_not_packets(pipe_id, ends, nbytes, what_kind="pipe"):
    """Refuse buffered bytes of a packet-mode pipe (O_DIRECT): where one write's packet ends
    and the next begins cannot be read without consuming them, and refilling would merge them."""
    for pid, fd, _mode in ends:
        if proc.read_fdinfo(pid, fd)["flags"] & _O_DIRECT:
            raise UnsupportedState(f"process {pid} fd {fd} ({what_kind}:[{pipe_id}]) is a packet-mode (O_DIRECT) "
                                   f"pipe with {nbytes} bytes buffered: their packet boundaries cannot be "
                                   "saved; not supported")


def holders_outside(identities, dumped_pids):
    """{(dev, ino): [(pid, fd)]} of fds of processes outside the dump on those files."""
    found = {}
    if not identities:
        return found
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) in dumped_pids:
            continue
        try:
            fds = os.listdir(f"/proc/{name}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                st = os.stat(f"/proc/{name}/fd/{fd}")
            except OSError:
                continue
            key = (st.st_dev, st.st_ino)
            if key in identities:
                found.setdefault(key, []).append((int(name), int(fd)))
    return found


def open_in_target(ctx, entry, restorer):
    """Create the pipe in this process; return this end, park and register the other.

    (An end already created elsewhere in the tree is found in the file
    registry before this is called.)
    """
    inj, scratch = restorer.inj, restorer.scratch
    image = restorer.image
    pipe = image.pipes[entry.pipe_id]
    fds = scratch.alloc(8)
    # Non-blocking while refilled: a write that does not fit fails instead of hanging.
    # Each end's own status flags are set once it is in place (files/status.py).
    inj.call("pipe2", fds, os.O_NONBLOCK)
    read_end, write_end = struct.unpack("=ii", scratch.get(fds, 8))
    if pipe.size:
        inj.call("fcntl", write_end, linux.F_SETPIPE_SZ, pipe.size, detail=f"pipe size {pipe.size}")
    if pipe.data:
        write_back(restorer, write_end, image.path(pipe.data), f"pipe:[{entry.pipe_id}] of size {pipe.size}")
    made = {os.O_RDONLY: ctx.park(read_end), os.O_WRONLY: ctx.park(write_end)}
    # The first open file of each direction is the end pipe2 made; any other
    # (a second reader, an O_RDWR open) is opened again through /proc.
    unused = dict(made)
    for file_id, other in sorted(image.files.items()):
        if other.kind != files_pb2.OpenFile.PIPE or other.pipe_id != entry.pipe_id:
            continue
        mode = other.flags & os.O_ACCMODE
        end = unused.pop(mode, None)
        if end is None:
            end = _reopen(ctx, restorer, made[os.O_RDONLY], mode, f"pipe:[{entry.pipe_id}]")
        restorer.tree.file_registry[file_id] = (restorer.pid, end)
    return restorer.tree.file_registry[entry.id][1]


def _reopen(ctx, restorer, read_end, mode, what):
    """Another open file on the pipe at the target's `read_end`, parked.

    Opened by pyckpt through the target's /proc (both ends are still open
    there, so no open blocks) and handed over with pidfd_getfd.
    """
    local = os.open(f"/proc/{restorer.pid}/fd/{read_end}", mode | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        return ctx.park(ctx.fetch(os.getpid(), local))
    except OSError as err:
        raise RestoreConflict(f"{what}: cannot open it again: {err.strerror}") from err
    finally:
        os.close(local)


def write_back(restorer, write_end, data_path, what):
    """Refill a pipe (its write end non-blocking) in whole pages.

    A pipe holds `size / PAGE_SIZE` buffers, and a write that does not end
    on a page boundary leaves its last page part-filled for the next write
    to append to only if that one fits in it whole: written in whole pages,
    the bytes take as few buffers as possible, never more than they did.
    """
    inj, scratch = restorer.inj, restorer.scratch
    with open(data_path, "rb") as f:
        data = f.read()
    scratch.reset()
    room = (scratch.size - 64) // pagemap.PAGE_SIZE * pagemap.PAGE_SIZE
    for offset in range(0, len(data), room):
        chunk = data[offset:offset + room]
        addr = scratch.put(chunk)
        written = inj.raw("write", write_end, addr, len(chunk))
        if written != len(chunk):
            error = os.strerror(-written) if written < 0 else f"{written} of {len(chunk)} bytes written"
            raise RestoreConflict(f"{what}: cannot put its {len(data)} buffered bytes back "
                                  f"(at byte {offset}: {error})")
        scratch.reset()


def peek(pid, fd, size):
    """The bytes buffered in the pipe at `pid`'s fd, left in place (tee into a private pipe)."""
    src = os.open(f"/proc/{pid}/fd/{fd}", os.O_RDONLY | os.O_NONBLOCK)
    r, w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        fcntl.fcntl(w, linux.F_SETPIPE_SZ, size)
        try:
            n = linux.tee(src, w, size)
        except BlockingIOError:
            return b""
        data = b""
        while len(data) < n:
            data += os.read(r, n - len(data))
        return data
    finally:
        for fd_ in (src, r, w):
            os.close(fd_)


def pipe_size(pid, fd):
    src = os.open(f"/proc/{pid}/fd/{fd}", os.O_RDONLY | os.O_NONBLOCK)
    try:
        return fcntl.fcntl(src, linux.F_GETPIPE_SZ)
    finally:
        os.close(src)
