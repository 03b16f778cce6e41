"""Named pipes (FIFOs) opened by processes of the dump.

Their ends are reopened by path. The first process that needs a FIFO on
restore also opens it read-write once, non-blocking: that keeps the pipe
alive while the bytes that were in its buffer are written back, and lets
the other opens (read-only, write-only) return at once. That helper fd is
dropped when every process has its fds.
"""

import os

from .. import linux
from ..images.proto import files_pb2
from . import pipe, regular, status

_REOPEN_MASK = ~status.NOT_ON_OPEN


def describe(entry, link, st):
    entry.kind = files_pb2.OpenFile.FIFO
    entry.pipe_id = st.st_ino
    regular.file_ref(entry.file, link, st)


def open_in_target(ctx, entry, restorer):
    inj, scratch = restorer.inj, restorer.scratch
    what = f"process {restorer.pid} FIFO {entry.file.path}"
    local_path = regular.check_file(entry, what)
    if entry.pipe_id not in restorer.tree.fifos_ready:
        keeper = inj.call("openat", linux.AT_FDCWD, scratch.put_str(local_path), os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC, 0, detail=what)
        state = restorer.image.pipes[entry.pipe_id]
        if state.size:
            inj.call("fcntl", keeper, linux.F_SETPIPE_SZ, state.size, detail=f"{what}: size {state.size}")
        if state.data:
            pipe.write_back(restorer, keeper, restorer.image.path(state.data), f"{what} of size {state.size}")
        ctx.park(keeper)
        restorer.tree.fifos_ready.add(entry.pipe_id)
    scratch.reset()  # refilling the pipe used the scratch area
    return inj.call("openat", linux.AT_FDCWD, scratch.put_str(local_path), entry.flags & _REOPEN_MASK, 0, detail=what)
