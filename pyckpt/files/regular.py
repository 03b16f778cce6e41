"""Regular files, directories and device nodes reopened by path.

Files deleted while open are files/ghost.py's.
"""

import logging
import os
import shutil
import stat

from ..errors import RestoreConflict, UnsupportedState
from ..images.proto import files_pb2
from . import procfs

log = logging.getLogger(__name__)


def file_ref(ref, path, st):
    ref.path = path
    ref.dev = st.st_dev
    ref.ino = st.st_ino
    ref.size = st.st_size
    ref.mtime_ns = st.st_mtime_ns
    ref.atime_ns = st.st_atime_ns
    ref.mode = st.st_mode
    ref.uid = st.st_uid
    ref.gid = st.st_gid


def describe(entry, link, st, what):
    entry.kind = files_pb2.OpenFile.DIRECTORY if stat.S_ISDIR(st.st_mode) else files_pb2.OpenFile.REGULAR
    if not link.startswith("/"):
        raise UnsupportedState(f"{what}: path {link!r} is not reachable from this mount namespace")
    file_ref(entry.file, link, st)


def describe_device(entry, link, st, what):
    if not link.startswith("/dev/"):
        raise UnsupportedState(f"{what} is a character device outside /dev")
    entry.kind = files_pb2.OpenFile.CHARDEV
    entry.rdev = st.st_rdev
    file_ref(entry.file, link, st)


def save_ghost(src_pid, src_fd, out):
    """Copy a memfd's contents from the target's fd into `out` (an image file)."""
    # O_NOATIME: the dump must not change the file's atime
    with open(os.open(f"/proc/{src_pid}/fd/{src_fd}", os.O_RDONLY | os.O_NOATIME | os.O_CLOEXEC), "rb") as src:
        shutil.copyfileobj(src, out, 1 << 20)


# -- restore side ---------------------------------------------------------------


def check_file(entry, fd_desc):
    """The file is still there and is the same kind; returns the path to open."""
    path = entry.file.path
    try:
        st = os.stat(path)
    except FileNotFoundError:
        if procfs.waits_for_restore(path):
            return path     # /proc/PID of a process restore is about to create
        raise RestoreConflict(f"{fd_desc}: {path} no longer exists") from None
    if stat.S_IFMT(st.st_mode) != stat.S_IFMT(entry.file.mode):
        raise RestoreConflict(f"{fd_desc}: {path} is no longer the same kind of file")
    if entry.kind == files_pb2.OpenFile.CHARDEV and st.st_rdev != entry.rdev:
        raise RestoreConflict(f"{fd_desc}: {path} is now another device")
    if entry.kind == files_pb2.OpenFile.REGULAR and st.st_size < entry.pos and not entry.flags & os.O_APPEND:
        log.warning("%s: %s shrank below the saved offset (%d < %d)", fd_desc, path, st.st_size, entry.pos)
    return path
