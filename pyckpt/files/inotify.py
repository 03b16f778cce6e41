"""inotify instances: each watch's descriptor, mask and watched inode.

fdinfo names the watched inode by a file handle; pyckpt opens it
(open_by_handle_at, on the mount with that device) to learn its path. On
restore the watches are added in descriptor order in a fresh instance,
which hands out descriptors 1, 2, 3, ...; a gap is filled with a
throw-away watch that is removed again, so every watch gets its old number.

A watch on a file deleted while open (a watch lives until the file's last
close) is kept as the open file it watches, an fd of the same process: restore
adds it through /proc/PID/fd/N of the restored deleted file, so the instance
is made after every other fd but epolls.
"""

import ctypes
import os
import re

from .. import linux
from ..errors import RestoreConflict, UnsupportedState
from ..images.proto import files_pb2

LINK = "anon_inode:inotify"
DELETED = " (deleted)"
# Every number in these lines is hexadecimal, the watch descriptor too.
_WATCH = re.compile(r"inotify wd:([0-9a-f]+) ino:([0-9a-f]+) sdev:([0-9a-f]+) mask:([0-9a-f]+) ignored_mask:[0-9a-f]+ "
                    r"fhandle-bytes:([0-9a-f]+) fhandle-type:([0-9a-f]+) f_handle:([0-9a-f]+)")

_libc = ctypes.CDLL(None, use_errno=True)


def _mount_point(dev_major, dev_minor):
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            if fields[2] == f"{dev_major}:{dev_minor}":
                return fields[4]
    return None


def _path_of(sdev, handle_type, handle_hex, what):
    major, minor = sdev >> 20, sdev & 0xFFFFF   # the kernel's internal dev_t encoding
    mount = _mount_point(major, minor)
    if mount is None:
        raise UnsupportedState(f"{what}: watches a file on device {major}:{minor}, not mounted here")
    handle = bytes.fromhex(handle_hex)
    buf = ctypes.create_string_buffer(8 + len(handle))
    ctypes.memmove(buf, len(handle).to_bytes(4, "little") + handle_type.to_bytes(4, "little", signed=True)
                   + handle, 8 + len(handle))
    mfd = os.open(mount, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fd = _libc.open_by_handle_at(mfd, buf, os.O_PATH)
        if fd < 0:
            err = ctypes.get_errno()
            raise UnsupportedState(f"{what}: cannot find the watched file: {os.strerror(err)}")
        try:
            path = os.readlink(f"/proc/self/fd/{fd}")
        finally:
            os.close(fd)
    finally:
        os.close(mfd)
    return path


def describe(entry, info, what):
    """Fill the watches; return [(index, (dev, ino), what)] of watches on deleted
    files, for the caller to tie to an fd of the process on that file."""
    entry.kind = files_pb2.OpenFile.INOTIFY
    deleted = []
    for line in info.get("extra", []):
        if not line.startswith("inotify "):
            continue
        m = _WATCH.match(line.strip())
        if not m:
            raise UnsupportedState(f"{what}: cannot read its watch ({line.strip()})")
        wd, ino, sdev, mask = (int(m.group(i), 16) for i in range(1, 5))
        path = _path_of(sdev, int(m.group(6), 16), m.group(7), f"{what} watch {wd}")
        if path.endswith(DELETED):
            dev = os.makedev(sdev >> 20, sdev & 0xFFFFF)
            deleted.append((len(entry.inotify_watches), (dev, ino), f"{what} watch {wd} of deleted {path}"))
            path = ""
        entry.inotify_watches.add(wd=wd, mask=mask, path=path, ino=ino)
    return deleted


def _watched_path(restorer, watch, what):
    if watch.path:
        return watch.path
    location = restorer.tree.file_registry.get(watch.file_id)
    if location is None:
        raise RestoreConflict(f"{what}: the deleted file of watch {watch.wd} is not restored yet")
    return "/proc/{}/fd/{}".format(*location)


def open_in_target(restorer, entry):
    inj, scratch = restorer.inj, restorer.scratch
    what = f"inotify of process {restorer.pid}"
    # Non-blocking while we build it, so that the IN_IGNORED events our own
    # removals queue can be drained; the fd's own flags are set after.
    fd = inj.call("inotify_init1", os.O_NONBLOCK | (entry.flags & os.O_CLOEXEC), detail=what)
    removed = 0
    for watch in sorted(entry.inotify_watches, key=lambda w: w.wd):
        scratch.reset()
        watched = _watched_path(restorer, watch, what)
        path = scratch.put_str(watched)
        while True:
            wd = inj.call("inotify_add_watch", fd, path, watch.mask, detail=f"{what}: {watched}")
            if wd == watch.wd:
                break
            if wd > watch.wd:
                raise UnsupportedState(f"{what}: {watched} came back as watch {wd}, not {watch.wd}")
            # Descriptors are handed out cyclically: drop this one and the next add gets the next number.
            inj.call("inotify_rm_watch", fd, wd)
            removed += 1
    if removed:
        scratch.reset()
        sink = scratch.alloc(4096)
        while inj.raw("read", fd, sink, 4096) > 0:
            pass
    inj.call("fcntl", fd, linux.F_SETFL, entry.flags & os.O_NONBLOCK)
    return fd
