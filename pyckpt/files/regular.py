"""Regular files, directories, device nodes and symlinks (O_PATH) reopened by path.

Regular files and directories deleted while open are files/ghost.py's. A
character device whose node was unlinked while open is opened through a node
made for the moment at its old path (same device number, mode and owner) and
unlinked again: the same device, and its fd names "<path> (deleted)" as before.
"""

import logging
import os
import shutil
import stat

from .. import linux
from ..errors import RestoreConflict, UnsupportedState
from ..images.proto import files_pb2
from . import procfs

log = logging.getLogger(__name__)

DELETED = " (deleted)"
O_PATH = getattr(os, "O_PATH", 0o10000000)


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
    deleted = link.endswith(DELETED) and st.st_nlink == 0
    path = link[:-len(DELETED)] if deleted else link
    if not path.startswith("/"):
        raise UnsupportedState(f"{what}: path {path!r} is not reachable from this mount namespace")
    if not deleted and not path.startswith("/dev/"):
        raise UnsupportedState(f"{what} is a character device outside /dev")
    entry.kind = files_pb2.OpenFile.CHARDEV
    entry.rdev = st.st_rdev
    entry.node_deleted = deleted
    file_ref(entry.file, path, st)


def describe_symlink(entry, link, st, flags, what):
    """An fd on a symbolic link itself: only O_PATH|O_NOFOLLOW opens one."""
    if link.endswith(DELETED) or not link.startswith("/"):
        raise UnsupportedState(f"{what} is an O_PATH fd of a symbolic link that was removed or is not reachable "
                               "from this mount namespace; not supported")
    if not flags & O_PATH:
        raise UnsupportedState(f"{what}: a symbolic link open without O_PATH")
    entry.kind = files_pb2.OpenFile.SYMLINK
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
    if entry.node_deleted:
        return path         # made for the moment by open_deleted_device
    try:
        st = os.lstat(path) if entry.kind == files_pb2.OpenFile.SYMLINK else os.stat(path)
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


def open_deleted_device(restorer, entry, flags, what):
    """Open a character device whose node was unlinked: a node made at its old path
    (that name must be free), opened in the target, unlinked again."""
    path, ref = entry.file.path, entry.file
    try:
        os.mknod(path, stat.S_IFCHR | stat.S_IMODE(ref.mode), entry.rdev)
    except OSError as err:
        raise RestoreConflict(f"{what}: cannot make its device node again at {path}: {err.strerror}") from err
    try:
        os.chown(path, ref.uid, ref.gid)
        os.chmod(path, stat.S_IMODE(ref.mode))
        result = restorer.inj.raw("openat", linux.AT_FDCWD, restorer.scratch.put_str(path), flags | os.O_NOCTTY, 0)
    finally:
        os.unlink(path)
    if result < 0:
        raise RestoreConflict(f"{what}: cannot open {path}: {os.strerror(-result)}")
    return result
