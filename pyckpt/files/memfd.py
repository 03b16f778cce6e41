"""memfd_create() files: anonymous shmem files with a name and seals.

One memfd object may be held by fds and mapped (MAP_SHARED or MAP_PRIVATE),
in several processes. Dump: an fd's contents go to a ghost image (like a
deleted file's), the name and seals beside them; a mapped object is also
listed in ipc.img (MemfdObject), its contents stored once (in the ghost of
an fd on it, if there is one). Restore: the first user creates the object
(memfd_create in the target; pyckpt then sizes and fills it through
/proc/PID/fd), every later mapping or fd of the same object is opened from
where it already is, so all share it again; seals come last (they may
forbid writing and new writable mappings).
"""

import fcntl
import os

from .. import linux, shmem
from ..images.proto import files_pb2, ipc_pb2
from . import status
from .regular import file_ref

PREFIX = "/memfd:"
DELETED = " (deleted)"
F_GET_SEALS = 1034
F_ADD_SEALS = 1033
F_SEAL_SEAL = 1
MFD_ALLOW_SEALING = 2


def is_memfd(link):
    """An fd link or a mapping's path in /proc/PID/maps naming a memfd."""
    return link.startswith(PREFIX) and link.endswith(DELETED)


def _name(link):
    return link[len(PREFIX):-len(DELETED)]


def _seals(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        return fcntl.fcntl(fd, F_GET_SEALS)
    finally:
        os.close(fd)


def describe(entry, pid, fd, link, st):
    entry.kind = files_pb2.OpenFile.MEMFD
    entry.memfd_name = _name(link)
    entry.ghost = f"ghost-{entry.id}.img"
    file_ref(entry.file, link, st)
    entry.seals = _seals(f"/proc/{pid}/fd/{fd}")


def describe_mapped(pid, vma, data):
    """The MemfdObject a mapping shows; its contents go to image file `data`."""
    path = f"/proc/{pid}/map_files/{vma.start:x}-{vma.end:x}"
    st = os.stat(path)
    return ipc_pb2.MemfdObject(id=vma.inode, name=_name(vma.path), size=st.st_size, seals=_seals(path),
                               data=data, mode=st.st_mode, uid=st.st_uid, gid=st.st_gid,
                               atime_ns=st.st_atime_ns, mtime_ns=st.st_mtime_ns)


def save_mapped(pid, vma, size, path):
    shmem.save_object(f"/proc/{pid}/map_files/{vma.start:x}-{vma.end:x}", 0, size, path)


# -- restore ------------------------------------------------------------------


def create(restorer, name, seals, size, data_path, attrs):
    """A new memfd in the target, sized and filled from `data_path`, with the owner, mode and times
    of `attrs` (a FileRef or MemfdObject), not sealed yet; its fd there."""
    what = f"memfd {name!r} of process {restorer.pid}"
    flags = 0 if seals & F_SEAL_SEAL and not seals & ~F_SEAL_SEAL else MFD_ALLOW_SEALING
    restorer.scratch.reset()
    fd = restorer.inj.call("memfd_create", restorer.scratch.put_str(name), flags, detail=what)
    local = os.open(f"/proc/{restorer.pid}/fd/{fd}", os.O_RDWR)
    try:
        os.ftruncate(local, size)
        image = os.open(data_path, os.O_RDONLY)
        try:
            shmem.copy_data(image, local, 0, size)
        finally:
            os.close(image)
        _set_attrs(local, attrs)
    finally:
        os.close(local)
    return fd


def _set_attrs(fd, attrs):
    """Owner, then mode (chown clears set-id bits), then times last: filling it set mtime."""
    if not attrs.mode:
        return      # an image from before these were kept
    os.fchown(fd, attrs.uid, attrs.gid)
    os.fchmod(fd, attrs.mode & 0o7777)
    os.utime(fd, ns=(attrs.atime_ns, attrs.mtime_ns))


def add_seals(path, seals):
    """Seal the object at `path` (an fd or map_files link) as it was: last, after every mapping exists."""
    fd = os.open(path, os.O_RDWR)
    try:
        missing = seals & ~fcntl.fcntl(fd, F_GET_SEALS)
        if missing:
            fcntl.fcntl(fd, F_ADD_SEALS, missing)
    finally:
        os.close(fd)


def open_in_target(restorer, entry):
    """The fd's object: reopened where the tree already has it (a mapping, another fd), else created."""
    inj = restorer.inj
    what = f"memfd {entry.memfd_name!r} of process {restorer.pid}"
    where = restorer.tree.memfd_location(entry.file.ino)
    created = None
    if where is None:
        created = create(restorer, entry.memfd_name, entry.seals, entry.file.size, restorer.image.path(entry.ghost),
                         entry.file)
        add_seals(f"/proc/{restorer.pid}/fd/{created}", entry.seals)
        where = f"/proc/{restorer.pid}/fd/{created}"
    if created is not None and entry.flags & os.O_ACCMODE == os.O_RDWR:
        fd = created        # memfd_create opened it O_RDWR; status flags are set with the fd's owner
    else:
        # read-only or write-only: a new open of the object (as the process made it, through /proc)
        restorer.scratch.reset()
        fd = inj.call("openat", linux.AT_FDCWD, restorer.scratch.put_str(where),
                      entry.flags & ~status.NOT_ON_OPEN | os.O_CLOEXEC, 0, detail=what)
        if created is not None:
            inj.call("close", created)
    inj.call("lseek", fd, entry.pos, os.SEEK_SET, detail=what)
    return fd
