"""Files and directories deleted while open ("ghosts"), O_TMPFILE files among them.

Dump: a deleted regular file's data extents (SEEK_DATA/SEEK_HOLE: a sparse
file stays sparse, in the image and on disk) are copied into ghost-<id>.img,
read with O_NOATIME so the dump does not touch its atime; size, mode, owner,
atime and mtime are in its FileRef. Every open file description of one
deleted inode carries the same `ghost` and `deleted` (stored once).

Restore: the first description of an inode makes it again -- a file at its
old path (missing parent directories are created and removed again), an
O_TMPFILE in its old directory, or a directory -- fills it, sets owner,
mode and times, has the target open it and removes the name again, so the
process holds a deleted file (st_nlink 0) whose /proc link reads as before.
Every later description of the same inode is opened from where the first
one is (/proc/PID/fd/N), so the tree shares one file again. A deleted file
that is only mapped gets a description of its own, held by no fd (its
mappings name it), made again by the first mapping; every later mapping or
fd opens it through /proc/PID/map_files. The inode
number and ctime are new: user space cannot choose them.
"""

import logging
import os
import stat

from .. import linux, shmem
from ..errors import RestoreConflict, UnsupportedState
from ..images.proto import files_pb2
from .regular import file_ref

log = logging.getLogger(__name__)

DELETED = " (deleted)"
# O_TMPFILE is __O_TMPFILE | O_DIRECTORY; the bare bit tells an O_TMPFILE open.
TMPFILE_BIT = os.O_TMPFILE & ~os.O_DIRECTORY
_COPY_CHUNK = 1 << 20


def is_deleted(link, st):
    return link.endswith(DELETED) and st.st_nlink == 0


def check_limit(st, limit, what):
    """--ghost-limit: refuse a deleted file larger than `limit` bytes (None: any size)."""
    if limit is not None and stat.S_ISREG(st.st_mode) and st.st_size > limit:
        raise UnsupportedState(f"{what} is a deleted file of {st.st_size} bytes, more than --ghost-limit "
                               f"({limit} bytes)")


def describe(entry, source, link, st, what, first=None, limit=None):
    """Fill `entry` for a deleted file or directory; `first`: an entry already describing this inode;
    `limit`: --ghost-limit in bytes.

    source: a /proc path opening the file (an fd or map_files link of the frozen target)."""
    entry.kind = files_pb2.OpenFile.DIRECTORY if stat.S_ISDIR(st.st_mode) else files_pb2.OpenFile.REGULAR
    path = link[: -len(DELETED)]
    if not path.startswith("/"):
        raise UnsupportedState(f"{what}: path {link!r} is not reachable from this mount namespace")
    file_ref(entry.file, path, st)
    if first is not None:
        entry.ghost = first.ghost
        entry.deleted.CopyFrom(first.deleted)
        return
    check_limit(st, limit, what)
    entry.ghost = f"ghost-{entry.id}.img"
    ghost = entry.deleted
    ghost.dev, ghost.ino = st.st_dev, st.st_ino
    ghost.tmpfile = bool(entry.flags & TMPFILE_BIT)
    if ghost.tmpfile and os.path.basename(path) != f"#{st.st_ino}":
        raise UnsupportedState(f"{what} was opened with O_TMPFILE and linked since (its name is {path}); "
                               "not supported")
    if entry.kind == files_pb2.OpenFile.REGULAR:
        src = _open_source(source, what)
        try:
            for offset, length in shmem.data_ranges(src, 0, st.st_size):
                ghost.extents.add(offset=offset, length=length)
        except OSError as err:
            raise UnsupportedState(f"{what}: cannot find the deleted file's data (SEEK_DATA): {err.strerror}") from err
        finally:
            os.close(src)


def _open_source(source, what):
    try:
        # O_NOATIME: reading the contents must not change the file's atime
        return os.open(source, os.O_RDONLY | os.O_NOATIME | os.O_CLOEXEC)
    except OSError as err:
        raise UnsupportedState(f"{what}: cannot read the deleted file: {err.strerror}") from err


def save(entry, source, out):
    """Copy the deleted file's data extents (read through `source`), back to back, into the image file `out`."""
    if entry.kind != files_pb2.OpenFile.REGULAR:
        return
    what = f"{source} ({entry.file.path})"
    src = _open_source(source, what)
    try:
        for extent in entry.deleted.extents:
            offset, left = extent.offset, extent.length
            while left:
                n = os.sendfile(out.fileno(), src, offset, min(left, _COPY_CHUNK))
                if n == 0:
                    raise UnsupportedState(f"{what}: the deleted file shrank while being saved")
                offset += n
                left -= n
    except OSError as err:
        raise UnsupportedState(f"{what}: cannot save the deleted file: {err.strerror}") from err
    finally:
        os.close(src)


# -- restore ------------------------------------------------------------------


def _strip_tmpfile(flags):
    return flags & ~TMPFILE_BIT & ~os.O_DIRECTORY if flags & TMPFILE_BIT else flags


def open_in_target(restorer, entry, flags, what):
    """A new fd in the target on the deleted file or directory of `entry`."""
    older = not entry.HasField("deleted")
    if older:
        entry = _from_older_image(entry)
    where = _made_already(restorer, entry)
    if where is not None:
        return _target_open(restorer, where, _strip_tmpfile(flags), what)
    made = _make_parents(os.path.dirname(entry.file.path), what)
    try:
        return _make(restorer, entry, flags, what, older)
    except OSError as err:
        raise RestoreConflict(f"{what}: cannot recreate the deleted file: {err.strerror}") from None
    finally:
        for directory in reversed(made):
            try:
                os.rmdir(directory)
            except OSError as err:
                log.warning("%s: cannot remove %s, created to recreate the deleted file in: %s",
                            what, directory, err.strerror)


def _make(restorer, entry, flags, what, older):
    """Make the deleted inode again and have the target open it; its fd there."""
    path, ghost = entry.file.path, entry.deleted
    if ghost.tmpfile and flags & TMPFILE_BIT:
        # Opened with O_TMPFILE by the target itself: its flags read back as they were.
        fd = _target_open(restorer, os.path.dirname(path), flags, what, mode=0o600)
        local = os.open(f"/proc/{restorer.pid}/fd/{fd}", os.O_RDWR | os.O_CLOEXEC)
        try:
            _fill(local, entry, restorer.image.path(entry.ghost), not older)
        finally:
            os.close(local)
        return fd
    if ghost.tmpfile:
        local = os.open(os.path.dirname(path), os.O_TMPFILE | os.O_RDWR | os.O_CLOEXEC, 0o600)
        try:
            _fill(local, entry, restorer.image.path(entry.ghost), not older)
            return _target_open(restorer, f"/proc/{os.getpid()}/fd/{local}", _strip_tmpfile(flags), what)
        finally:
            os.close(local)
    if entry.kind == files_pb2.OpenFile.DIRECTORY:
        name = _free_name(path, lambda p: os.mkdir(p, 0o700), what)
        try:
            local = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                if not older:
                    _set_attrs(local, entry.file)
            finally:
                os.close(local)
            return _target_open(restorer, name, flags, what)
        finally:
            os.rmdir(name)
    local = None

    def create(p):
        nonlocal local
        local = os.open(p, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)

    name = _free_name(path, create, what)
    try:
        _fill(local, entry, restorer.image.path(entry.ghost), not older)
        return _target_open(restorer, name, flags, what)
    finally:
        os.unlink(name)
        os.close(local)


def _from_older_image(entry):
    """An image from before Ghost: the whole contents saved, no owner or atime recorded
    (restored as such images always were: owned by pyckpt, times of now)."""
    entry = files_pb2.OpenFile.FromString(entry.SerializeToString())
    if entry.kind == files_pb2.OpenFile.REGULAR and entry.file.size:
        entry.deleted.extents.add(offset=0, length=entry.file.size)
    entry.deleted.SetInParent()
    return entry


def _made_already(restorer, entry):
    """/proc/PID/fd/N (or map_files) of the same deleted inode restored already, or None."""
    mapping = restorer.tree.ghost_mapping(entry.ghost)
    if mapping is not None:
        return mapping
    files = restorer.image.files
    for file_id, (pid, fd) in restorer.tree.file_registry.items():
        other = files[file_id]
        if other.ghost == entry.ghost and other.HasField("deleted") and other.kind == entry.kind:
            return f"/proc/{pid}/fd/{fd}"
    return None


def open_for_mapping(restorer, entry, writable, what):
    """An fd in the target on the deleted file of `entry`, to map; made again if the tree has it nowhere yet."""
    # O_NOATIME: mapping it must not touch the atime the file was given back
    flags = (os.O_RDWR if writable else os.O_RDONLY) | os.O_NOATIME | os.O_CLOEXEC
    return open_in_target(restorer, entry, flags, what)


def mapped(restorer, entry, address):
    """The target now maps the deleted file of `entry` at `address`: later holders open it from there."""
    restorer.tree.ghost_maps.setdefault(entry.ghost, (restorer.pid, address))


def _target_open(restorer, path, flags, what, mode=0):
    restorer.scratch.reset()
    result = restorer.inj.raw("openat", linux.AT_FDCWD, restorer.scratch.put_str(path), flags, mode)
    if result < 0:
        raise RestoreConflict(f"{what}: cannot reopen the deleted file through {path}: {os.strerror(-result)}")
    return result


def _make_parents(directory, what):
    """Create the missing directories above a deleted file (deleted with it); the caller removes them."""
    missing = []
    while directory and not os.path.isdir(directory):
        if os.path.lexists(directory):
            raise RestoreConflict(f"{what}: cannot recreate the deleted file: {directory} is not a directory")
        missing.append(directory)
        directory = os.path.dirname(directory)
    made = []
    for directory in reversed(missing):
        try:
            os.mkdir(directory, 0o700)
        except OSError as err:
            for done in reversed(made):
                os.rmdir(done)
            raise RestoreConflict(f"{what}: cannot recreate the deleted file's directory {directory}: "
                                  f"{err.strerror}") from None
        made.append(directory)
    return made


def _free_name(path, create, what):
    """Create the ghost at its old path, or beside it when that name is taken (the link then differs)."""
    candidate = path
    for attempt in range(100):
        try:
            create(candidate)
        except FileExistsError:
            candidate = f"{path}.pyckpt-ghost-{os.getpid()}-{attempt}"
            continue
        except OSError as err:
            raise RestoreConflict(f"{what}: cannot recreate the deleted file at {candidate}: {err.strerror}") from None
        if candidate != path:
            log.warning("%s: %s exists again; the deleted file is recreated as %s, and its link in /proc "
                        "will show that name", what, path, candidate)
        return candidate
    raise RestoreConflict(f"{what}: cannot find a free name to recreate the deleted file {path}")


def _fill(local, entry, image_path, attrs):
    """Size, data extents (holes stay holes), then owner, mode and times of a recreated file
    (`attrs` False: an older image, which did not record them)."""
    os.ftruncate(local, entry.file.size)
    with open(image_path, "rb", buffering=0) as image:
        for extent in entry.deleted.extents:
            offset, left = extent.offset, extent.length
            while left:
                n = _copy_at(image, local, offset, left)
                offset += n
                left -= n
    if attrs:
        _set_attrs(local, entry.file)
    else:
        os.fchmod(local, stat.S_IMODE(entry.file.mode))


def _copy_at(image, local, offset, left):
    """The next piece of the image, written at `offset`; its length."""
    chunk = image.read(min(left, _COPY_CHUNK))
    if not chunk:
        raise RestoreConflict(f"{image.name}: ends before its last extent")
    done = 0
    while done < len(chunk):
        done += os.pwrite(local, chunk[done:], offset + done)
    return done


def _set_attrs(local, ref):
    """Owner before mode (a chown clears set-id bits), times last (each of these changes ctime only)."""
    os.fchown(local, ref.uid, ref.gid)
    os.fchmod(local, stat.S_IMODE(ref.mode))
    os.utime(local, ns=(ref.atime_ns, ref.mtime_ns))
