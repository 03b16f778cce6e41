"""memfd_create() files: anonymous shmem files with a name and seals.

Dump: the contents go to a ghost image (like a deleted file's), the name
and seals beside them. Restore: memfd_create in the target, the contents
copied in by the target itself (sendfile from the image), then the offset,
then the seals (last: they may forbid writing).
"""

import fcntl
import os

from .. import linux
from ..images.proto import files_pb2
from .regular import file_ref

PREFIX = "/memfd:"
DELETED = " (deleted)"
F_GET_SEALS = 1034
F_ADD_SEALS = 1033
F_SEAL_SEAL = 1
MFD_ALLOW_SEALING = 2


def is_memfd(link):
    return link.startswith(PREFIX) and link.endswith(DELETED)


def describe(entry, pid, fd, link, st):
    entry.kind = files_pb2.OpenFile.MEMFD
    entry.memfd_name = link[len(PREFIX):-len(DELETED)]
    entry.ghost = f"ghost-{entry.id}.img"
    file_ref(entry.file, link, st)
    src = os.open(f"/proc/{pid}/fd/{fd}", os.O_RDONLY)
    try:
        entry.seals = fcntl.fcntl(src, F_GET_SEALS)
    finally:
        os.close(src)


def open_in_target(restorer, entry):
    inj, scratch = restorer.inj, restorer.scratch
    what = f"memfd {entry.memfd_name!r} of process {restorer.pid}"
    flags = 0 if entry.seals & F_SEAL_SEAL else MFD_ALLOW_SEALING
    memfd = inj.call("memfd_create", scratch.put_str(entry.memfd_name), flags, detail=what)
    image = inj.call("openat", linux.AT_FDCWD, scratch.put_str(restorer.image.path(entry.ghost)),
                     os.O_RDONLY | os.O_CLOEXEC, 0, detail=entry.ghost)
    try:
        remaining = entry.file.size
        while remaining:
            n = inj.call("sendfile", memfd, image, 0, remaining, detail=what)
            if n <= 0:
                break
            remaining -= n
    finally:
        inj.call("close", image)
    inj.call("lseek", memfd, entry.pos, os.SEEK_SET, detail=what)
    if entry.seals & ~F_SEAL_SEAL or (entry.seals & F_SEAL_SEAL and flags):
        inj.call("fcntl", memfd, F_ADD_SEALS, entry.seals, detail=f"{what}: seals {entry.seals:#x}")
    return memfd
