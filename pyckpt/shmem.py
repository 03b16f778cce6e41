"""Shared anonymous memory (MAP_SHARED|MAP_ANONYMOUS) of one process.

Its contents live in a shmem object, not in the process's private pages, so
they are copied through the object itself (/proc/PID/map_files), keeping
holes: shmem-<id>.img holds the object's bytes at their own offsets.
"""

import errno
import os

from . import linux

SHARED_ANON_PATH = "/dev/zero (deleted)"


def image_name(shmem_id):
    return f"shmem-{shmem_id}.img"


def _data_ranges(fd, start, end):
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
    for offset, length in _data_ranges(src, start, end):
        os.lseek(dst, offset, os.SEEK_SET)
        while length:
            n = os.sendfile(dst, src, offset, length)
            if n == 0:
                break
            offset += n
            length -= n


def save(pid, vma, path):
    """Copy the object window a VMA maps into image file `path` (created or extended)."""
    save_object(f"/proc/{pid}/map_files/{vma.start:x}-{vma.end:x}", vma.pgoff, vma.pgoff + vma.length, path)


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
    """pread the saved window into the freshly mapped VMA, from inside the process."""
    inj, scratch = restorer.inj, restorer.scratch
    local = os.open(path, os.O_RDONLY)
    try:
        ranges = _data_ranges(local, vma.pgoff, vma.pgoff + (vma.end - vma.start))
    finally:
        os.close(local)
    if not ranges:
        return
    scratch.reset()
    fd = inj.call("openat", linux.AT_FDCWD, scratch.put_str(path), os.O_RDONLY | os.O_CLOEXEC, 0, detail=path)
    try:
        for offset, length in ranges:
            address = vma.start + offset - vma.pgoff
            while length:
                n = inj.call("pread64", fd, address, length, offset, detail=path)
                if n <= 0:
                    raise OSError(errno.EIO, f"{path}: short read at {offset}")
                address += n
                offset += n
                length -= n
    finally:
        inj.call("close", fd)
