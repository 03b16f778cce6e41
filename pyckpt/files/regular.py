"""Regular files, directories, device nodes by path, and files deleted while open.

A deleted file's contents are saved in a ghost image; restore recreates it,
opens it and unlinks it again, so the process sees the same unlinked file.
"""

import logging
import os
import shutil
import stat

from ..errors import RestoreConflict, UnsupportedState
from ..images.proto import files_pb2
from . import procfs

log = logging.getLogger(__name__)

DELETED = " (deleted)"


def file_ref(ref, path, st):
    ref.path = path
    ref.dev = st.st_dev
    ref.ino = st.st_ino
    ref.size = st.st_size
    ref.mtime_ns = st.st_mtime_ns
    ref.mode = st.st_mode


def describe(entry, link, st, what):
    entry.kind = files_pb2.OpenFile.DIRECTORY if stat.S_ISDIR(st.st_mode) else files_pb2.OpenFile.REGULAR
    path = link
    if link.endswith(DELETED) and st.st_nlink == 0:
        if entry.kind == files_pb2.OpenFile.DIRECTORY:
            raise UnsupportedState(f"{what} is a deleted directory")
        path = link[: -len(DELETED)]
        entry.ghost = f"ghost-{entry.id}.img"
    elif not link.startswith("/"):
        raise UnsupportedState(f"{what}: path {link!r} is not reachable from this mount namespace")
    file_ref(entry.file, path, st)


def describe_device(entry, link, st, what):
    if not link.startswith("/dev/"):
        raise UnsupportedState(f"{what} is a character device outside /dev")
    entry.kind = files_pb2.OpenFile.CHARDEV
    entry.rdev = st.st_rdev
    file_ref(entry.file, link, st)


def save_ghost(src_pid, src_fd, out):
    """Copy a deleted file's contents from the target's fd into `out` (an image file)."""
    with open(f"/proc/{src_pid}/fd/{src_fd}", "rb") as src:
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


def recreate_ghost(entry, image_path):
    """Put a deleted file's saved contents back at a free path; the caller unlinks it after opening."""
    path = entry.file.path
    candidate = path
    for attempt in range(100):
        try:
            fd = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, stat.S_IMODE(entry.file.mode))
            break
        except FileExistsError:
            candidate = f"{path}.pyckpt-ghost-{os.getpid()}-{attempt}"
        except FileNotFoundError:
            raise RestoreConflict(
                f"cannot recreate deleted file {path}: its directory no longer exists") from None
    else:
        raise RestoreConflict(f"cannot find a free name to recreate deleted file {path}")
    try:
        with open(image_path, "rb") as src, os.fdopen(os.dup(fd), "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
    except OSError:
        os.close(fd)
        os.unlink(candidate)
        raise
    os.close(fd)
    return candidate
