"""Shared anonymous memory (MAP_SHARED|MAP_ANONYMOUS) of one process.

Its contents live in a shmem object, not in the process's private pages, so
they are copied through the object itself (/proc/PID/map_files). Only its
data is saved, never its holes (a 1 GiB mapping with a few pages written is
a few pages of image): shmem-<id>.img is MAGIC, the number of runs, the
runs as (object offset, length), then their bytes one after the other.
"""

import errno
import os
import struct

from . import linux
from .errors import ImageError

MAGIC = b"PYCKSHM1"

SHARED_ANON_PATH = "/dev/zero (deleted)"


def image_name(shmem_id):
    return f"shmem-{shmem_id}.img"


def data_ranges(fd, start, end):
    """(offset, length) of the data (not holes) of file `fd` within [start, end)."""
    out = []
    offset = start
    while offset < end:
        try:
            data = os.lseek(fd, offset, os.SEEK_DATA)
        except OSError as err:
            if err.errno == errno.ENXIO:
                break
            raise
        if data >= end:
            break
        hole = min(os.lseek(fd, data, os.SEEK_HOLE), end)
        out.append((data, hole - data))
        offset = hole
    return out


def copy_data(src, dst, start, end):
    """Copy the data (not the holes) of fd `src` within [start, end) to the same offsets of fd `dst`."""
    for offset, length in data_ranges(src, start, end):
        os.lseek(dst, offset, os.SEEK_SET)
        while length:
            n = os.sendfile(dst, src, offset, length)
            if n == 0:
                break
            offset += n
            length -= n


def save(windows, path):
    """Save the data of one object found in `windows` [(map_files path, start, end)] to image file `path`."""
    # O_NOATIME: the dump must not change the object's times
    fds = [os.open(src, os.O_RDONLY | os.O_NOATIME) for src, _, _ in windows]
    try:
        runs = []
        for fd, (_src, start, end) in zip(fds, windows):
            runs.extend(data_ranges(fd, start, end))
        runs = _union(runs)
        with open(path, "wb") as out:
            out.write(MAGIC + struct.pack("=Q", len(runs)))
            out.write(b"".join(struct.pack("=QQ", offset, length) for offset, length in runs))
            out.flush()
            dst = out.fileno()
            for offset, length in runs:
                while length:
                    n = os.sendfile(dst, fds[0], offset, length)
                    if n == 0:
                        raise OSError(errno.EIO, f"{windows[0][0]}: object shrank while saved")
                    offset += n
                    length -= n
    finally:
        for fd in fds:
            os.close(fd)


def _union(runs):
    out = []
    for offset, length in sorted(runs):
        if out and offset <= out[-1][0] + out[-1][1]:
            last = out[-1]
            out[-1] = (last[0], max(last[0] + last[1], offset + length) - last[0])
        else:
            out.append((offset, length))
    return out


def read_runs(path):
    """[(object offset, length, offset in the image file)] of a shmem image."""
    with open(path, "rb") as f:
        head = f.read(len(MAGIC) + 8)
        if len(head) != len(MAGIC) + 8 or head[:len(MAGIC)] != MAGIC:
            raise ImageError(f"{path}: not a shared memory image of this pyckpt")
        (count,) = struct.unpack("=Q", head[len(MAGIC):])
        size = os.fstat(f.fileno()).st_size
        if count > (size - len(head)) // 16:
            raise ImageError(f"{path}: run count {count} does not fit in its {size} bytes")
        table = f.read(16 * count)
        if len(table) != 16 * count:
            raise ImageError(f"{path}: truncated")
    data_at = len(head) + len(table)
    out = []
    for i in range(count):
        offset, length = struct.unpack_from("=QQ", table, 16 * i)
        out.append((offset, length, data_at))
        data_at += length
    if data_at != size:
        raise ImageError(f"{path}: its runs hold {data_at - len(head) - len(table)} bytes of data, "
                         f"the file {size - len(head) - len(table)}")
    return out


def save_object(src_path, start, end, path):
    """Copy [start, end) of the object at `src_path` (a map_files or fd link) into image file `path`."""
    # O_NOATIME: the dump must not change the object's atime (a memfd's shows in fstat)
    src = os.open(src_path, os.O_RDONLY | os.O_NOATIME)
    dst = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        copy_data(src, dst, start, end)
    finally:
        os.close(src)
        os.close(dst)


def fill(restorer, vma, path):
    """pread the saved data within the VMA's window into it, from inside the process; holes stay untouched."""
    inj, scratch = restorer.inj, restorer.scratch
    lo, hi = vma.pgoff, vma.pgoff + (vma.end - vma.start)
    pieces = []
    for offset, length, at in read_runs(path):
        start, end = max(lo, offset), min(hi, offset + length)
        if start < end:
            pieces.append((start, end - start, at + start - offset))
    if not pieces:
        return
    scratch.reset()
    fd = inj.call("openat", linux.AT_FDCWD, scratch.put_str(path), os.O_RDONLY | os.O_CLOEXEC, 0, detail=path)
    try:
        for offset, length, at in pieces:
            address = vma.start + offset - vma.pgoff
            while length:
                n = inj.call("pread64", fd, address, length, at, detail=path)
                if n <= 0:
                    raise ImageError(f"{path}: short read at {at}")
                address += n
                at += n
                length -= n
    finally:
        inj.call("close", fd)
