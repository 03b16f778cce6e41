"""The one check dump makes before anything is written or killed: restore can
reopen every fd and every file mapping it is about to save.

Each kind module refuses what it cannot describe; this is the last word,
on the finished descriptions: for each open file, a kind that restore
knows, with flags it can open again, and either a path that still leads to
the very file the process has (same device and inode), or a deleted file
whose contents are saved; for each file mapping and executable, a path that
still leads to the mapped file (or a deleted file, checked as an open one). Anything else is refused naming the fd or
mapping, with the target left running as it was: an image restore cannot
use is worse than no image.
"""

import os
import stat

from ..errors import UnsupportedState
from ..images.proto import files_pb2, mm_pb2
from .ghost import DELETED, TMPFILE_BIT

_K = files_pb2.OpenFile
# Kinds reopened by path (files/regular.py, fifo.py): the path must still lead to the file.
_BY_PATH = {_K.REGULAR: stat.S_ISREG, _K.DIRECTORY: stat.S_ISDIR, _K.CHARDEV: stat.S_ISCHR, _K.FIFO: stat.S_ISFIFO,
            _K.SYMLINK: stat.S_ISLNK}
# Kinds made anew at restore by their own module (their describe() refused what they cannot make).
_MADE = {_K.TTY, _K.PIPE, _K.MEMFD, _K.EVENTFD, _K.SIGNALFD, _K.TIMERFD, _K.EPOLL, _K.INOTIFY, _K.UNIX_SOCKET,
         _K.INET_SOCKET, _K.PTY_MASTER, _K.PTY_SLAVE, _K.PIDFD}


def check(files, holders, mms):
    """Raise UnsupportedState for the first fd or mapping restore could not reopen.

    files: files_pb2.Files; holders: file id -> "process P fd F (path)";
    mms: pid -> mm_pb2.Mm."""
    for entry in files.files:
        _check_open_file(entry, holders.get(entry.id, f"open file {entry.id} ({entry.file.path})"))
    for pid, mm in mms.items():
        _check_path(mm.exe, f"process {pid}: its executable {mm.exe.path}", stat.S_ISREG, stacked=True)
        for vma in mm.vmas:
            if vma.kind in (mm_pb2.Vma.FILE_PRIVATE, mm_pb2.Vma.FILE_SHARED) and not vma.deleted_file:
                _check_path(vma.file, f"process {pid} mapping {vma.start:#x}-{vma.end:#x} {vma.file.path}",
                            stat.S_ISREG, stacked=True)


def _check_open_file(entry, what):
    if entry.kind in _MADE:
        return
    if entry.kind not in _BY_PATH:
        raise UnsupportedState(f"{what}: pyckpt would save it as a kind of file ({entry.kind}) it cannot reopen")
    if entry.kind in (_K.REGULAR, _K.DIRECTORY) and entry.HasField("deleted"):
        _check_deleted(entry, what)
        return
    if entry.ghost:
        raise UnsupportedState(f"{what}: saved as deleted without what restore needs to make it again")
    if entry.flags & TMPFILE_BIT:
        raise UnsupportedState(f"{what} was opened with O_TMPFILE and has a name since; reopening it by "
                               "that name would not give back its O_TMPFILE flags")
    if entry.kind != _K.DIRECTORY and entry.flags & os.O_DIRECTORY:
        raise UnsupportedState(f"{what}: O_DIRECTORY on a file that is not a directory")
    if entry.kind == _K.CHARDEV and entry.node_deleted:
        _check_free_name(entry.file.path, what)
        return
    _check_path(entry.file, what, _BY_PATH[entry.kind], rdev=entry.rdev if entry.kind == _K.CHARDEV else None,
                follow=entry.kind != _K.SYMLINK)


def _check_free_name(path, what):
    """A deleted device node is made again at its old name: that name must be free, in a directory."""
    if os.path.lexists(path):
        raise UnsupportedState(f"{what}: a device node whose name {path} was removed and is in use again; "
                               "restore could not make the node there for the moment it opens it")
    if not os.path.isdir(os.path.dirname(path)):
        raise UnsupportedState(f"{what}: a removed device node whose directory {os.path.dirname(path)} is gone")


def _check_deleted(entry, what):
    ghost = entry.deleted
    if not entry.ghost:
        raise UnsupportedState(f"{what}: deleted, but its contents are not saved")
    if entry.kind == _K.DIRECTORY and (ghost.extents or ghost.tmpfile):
        raise UnsupportedState(f"{what}: a removed directory saved with file contents")
    if bool(entry.flags & TMPFILE_BIT) and not ghost.tmpfile:
        raise UnsupportedState(f"{what}: O_TMPFILE flags on a deleted file not saved as one")
    if not entry.file.path.startswith("/"):
        raise UnsupportedState(f"{what}: deleted, and its old path {entry.file.path!r} is not absolute")


def _check_path(ref, what, is_kind, rdev=None, stacked=False, follow=True):
    """`ref.path` opens, now, the file `ref` describes (same kind, device and inode).

    stacked: `ref` may come from the file under a stacking filesystem (a
    mapping on overlayfs is of the layer's file, its path is the overlay's:
    another device); then the same size and mtime are what restore checks."""
    path = ref.path
    if path.endswith(DELETED):
        raise UnsupportedState(f"{what}: opened through a name since removed or replaced; restore could not "
                               "open the same file again")
    if not path.startswith("/"):
        raise UnsupportedState(f"{what}: path {path!r} is not reachable from this mount namespace")
    try:
        st = os.stat(path, follow_symlinks=follow)
    except OSError as err:
        raise UnsupportedState(f"{what}: {path} no longer leads to it ({err.strerror}; something mounted "
                               "over it?); restore could not reopen the same file") from None
    if stacked and st.st_dev != ref.dev and is_kind(st.st_mode) and \
            (st.st_size, st.st_mtime_ns) == (ref.size, ref.mtime_ns):
        return
    if not is_kind(st.st_mode) or (st.st_dev, st.st_ino) != (ref.dev, ref.ino):
        raise UnsupportedState(f"{what}: {path} now leads to another file (the name was removed or replaced, "
                               "or something is mounted over it); restore could not reopen the same file")
    if rdev is not None and st.st_rdev != rdev:
        raise UnsupportedState(f"{what}: {path} is now another device")
