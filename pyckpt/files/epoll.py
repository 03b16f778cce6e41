"""epoll instances: the watched set (fd, events, data) from fdinfo.

Restore creates the instance once every other fd of the process is in
place and adds each watch by its fd number. A watch whose fd number no
longer leads to the watched file (closed or reused since) cannot be
recreated that way and is refused at dump.
"""

import os
import re
import struct

from .. import linux
from ..errors import UnsupportedState
from ..images.proto import files_pb2

LINK = "anon_inode:[eventpoll]"
EPOLL_CTL_ADD = 1
_WATCH = re.compile(r"tfd:\s*(\d+)\s+events:\s*([0-9a-f]+)\s+data:\s*([0-9a-f]+)\s+pos:\s*\d+\s+ino:\s*([0-9a-f]+)"
                    r"\s+sdev:\s*([0-9a-f]+)")


def describe(entry, pid, info, what):
    entry.kind = files_pb2.OpenFile.EPOLL
    for line in info.get("extra", []):
        m = _WATCH.match(line.strip())
        if not m:
            continue
        tfd, events, data, ino = int(m.group(1)), int(m.group(2), 16), int(m.group(3), 16), int(m.group(4), 16)
        try:
            st = os.stat(f"/proc/{pid}/fd/{tfd}")
        except FileNotFoundError:
            st = None
        if st is None or st.st_ino != ino:
            raise UnsupportedState(f"{what} watches inode {ino} through fd {tfd}, which no longer leads to it")
        entry.watches.add(fd=tfd, events=events, data=data)


def open_in_target(restorer, entry):
    inj, scratch = restorer.inj, restorer.scratch
    epfd = inj.call("epoll_create1", entry.flags & os.O_CLOEXEC, detail=f"epoll of process {restorer.pid}")
    event = scratch.alloc(16)
    for watch in entry.watches:
        linux.write_memory(restorer.pid, event, struct.pack(restorer.arch.EPOLL_EVENT_FORMAT, watch.events, watch.data))
        inj.call("epoll_ctl", epfd, EPOLL_CTL_ADD, watch.fd, event, detail=f"epoll watch of fd {watch.fd}")
    return epfd
