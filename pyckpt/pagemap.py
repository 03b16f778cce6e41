"""Which pages of a process hold data that the backing file does not.

PAGEMAP_SCAN (Linux 6.7+) returns whole runs from the kernel; older
kernels fall back to reading /proc/PID/pagemap, 8 bytes a page. Either way
the rule is the one in sources.base.Source.dump_pages.
"""

import array
import ctypes
import errno
import fcntl
import logging
import os

from . import arch as archmod

log = logging.getLogger(__name__)

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")

# uapi/linux/fs.h
PAGE_IS_FILE = 1 << 2
PAGE_IS_PRESENT = 1 << 3
PAGE_IS_SWAPPED = 1 << 4
PAGE_IS_WRITTEN = 1 << 1     # not write-protected by userfaultfd (any more)
PAGE_IS_PFNZERO = 1 << 5
PAGE_IS_GUARD = 1 << 8      # Linux 6.14+: a guard region (MADV_GUARD_INSTALL) page


class pm_scan_arg(ctypes.Structure):
    _fields_ = [(name, ctypes.c_uint64) for name in (
        "size", "flags", "start", "end", "walk_end", "vec", "vec_len", "max_pages",
        "category_inverted", "category_mask", "category_anyof_mask", "return_mask")]


class page_region(ctypes.Structure):
    _fields_ = (("start", ctypes.c_uint64), ("end", ctypes.c_uint64), ("categories", ctypes.c_uint64))


PAGEMAP_SCAN = archmod.ioc("rw", ord("f"), 16, ctypes.sizeof(pm_scan_arg))

# /proc/PID/pagemap entry bits
PM_PRESENT = 1 << 63
PM_SWAP = 1 << 62
PM_FILE = 1 << 61
PM_MMAP_EXCLUSIVE = 1 << 56
PM_GUARD_REGION = 1 << 58   # Linux 6.14+; such an entry also has PM_SWAP (a PTE marker, no data)
# the physical page (PFN, present) or swap slot (type + offset, swapped): bits 0-54
PM_FRAME_MASK = (1 << 55) - 1

_VEC_LEN = 4096


def _scan(fd, start, end, guards=False, category=0, anyof=0):
    """Pages with data (not file, not guard); or, with `guards`, the guard pages; or the pages
    in `category` (and in one of `anyof`)."""
    vec = (page_region * _VEC_LEN)()
    arg = pm_scan_arg()
    arg.size = ctypes.sizeof(arg)
    arg.vec = ctypes.addressof(vec)
    arg.vec_len = _VEC_LEN
    if guards or category:
        arg.category_mask = arg.return_mask = category or PAGE_IS_GUARD
        arg.category_anyof_mask = anyof
    else:
        # a guard page counts as swapped: it must not be taken for data
        not_guard = PAGE_IS_GUARD if _scan_knows_guards() else 0
        arg.category_inverted = PAGE_IS_FILE | not_guard
        arg.category_mask = PAGE_IS_FILE | not_guard
        arg.category_anyof_mask = PAGE_IS_PRESENT | PAGE_IS_SWAPPED
        arg.return_mask = PAGE_IS_PRESENT | PAGE_IS_SWAPPED
    runs = []
    while start < end:
        arg.start, arg.end = start, end
        n = fcntl.ioctl(fd, PAGEMAP_SCAN, arg)
        for region in vec[:n]:
            _append(runs, region.start, (region.end - region.start) // PAGE_SIZE)
        if arg.walk_end <= start:
            break
        start = arg.walk_end
    return runs


def _read_pagemap(fd, start, end):
    npages = (end - start) // PAGE_SIZE
    entries = array.array("Q")
    entries.frombytes(os.pread(fd, npages * 8, (start // PAGE_SIZE) * 8))
    runs = []
    for index, entry in enumerate(entries):
        if entry & (PM_PRESENT | PM_SWAP) and not entry & (PM_FILE | PM_GUARD_REGION):
            _append(runs, start + index * PAGE_SIZE, 1)
    return runs


def _append(runs, vaddr, npages):
    if runs and runs[-1][0] + runs[-1][1] * PAGE_SIZE == vaddr:
        runs[-1][1] += npages
    else:
        runs.append([vaddr, npages])


_scan_works = None


def data_runs(pid, ranges):
    """[(vaddr, nr_pages)] of pages to save in the given (start, end) ranges, ascending."""
    global _scan_works
    fd = os.open(f"/proc/{pid}/pagemap", os.O_RDONLY)
    try:
        runs = []
        for start, end in ranges:
            found = None
            if _scan_works is not False:
                try:
                    found = _scan(fd, start, end)
                    _scan_works = True
                except OSError as err:
                    if err.errno not in (errno.ENOTTY, errno.EINVAL, errno.EOPNOTSUPP):
                        raise
                    log.debug("PAGEMAP_SCAN unavailable (%s); reading pagemap", err)
                    _scan_works = False
            if found is None:
                found = _read_pagemap(fd, start, end)
            runs.extend((v, n) for v, n in found)
        return runs
    finally:
        os.close(fd)


def cow_shared_runs(pid, parent_pid, ranges):
    """[(vaddr, nr_pages)] in the given ranges where `pid` still maps the very
    page (same physical frame or swap slot) its parent maps at that address:
    private memory shared copy-on-write since fork, whose contents the
    parent's image already holds. Needs the frame numbers, which the kernel
    shows to CAP_SYS_ADMIN only; without them nothing is found shared.

    Per-page metadata, 8 bytes a page; the pages themselves are not read."""
    fds = [os.open(f"/proc/{p}/pagemap", os.O_RDONLY) for p in (pid, parent_pid)]
    try:
        runs = []
        for start, end in ranges:
            where = (start // PAGE_SIZE) * 8
            length = (end - start) // PAGE_SIZE * 8
            mine, theirs = array.array("Q"), array.array("Q")
            mine.frombytes(os.pread(fds[0], length, where))
            theirs.frombytes(os.pread(fds[1], length, where))
            for index, (a, b) in enumerate(zip(mine, theirs)):
                if a & (PM_MMAP_EXCLUSIVE | PM_FILE | PM_GUARD_REGION) or not a & (PM_PRESENT | PM_SWAP):
                    continue
                frame = a & PM_FRAME_MASK
                if frame and frame == b & PM_FRAME_MASK and (a ^ b) & (PM_PRESENT | PM_SWAP | PM_FILE) == 0:
                    _append(runs, start + index * PAGE_SIZE, 1)
        return [(v, n) for v, n in runs]
    finally:
        for fd in fds:
            os.close(fd)


_guards_known = None


def _scan_knows_guards():
    """PAGEMAP_SCAN knows PAGE_IS_GUARD (Linux 6.14+; older kernels refuse the bit with EINVAL)."""
    global _guards_known
    if _guards_known is None:
        fd = os.open("/proc/self/pagemap", os.O_RDONLY)
        try:
            buf = ctypes.create_string_buffer(2 * PAGE_SIZE)
            start = (ctypes.addressof(buf) + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1)
            _scan(fd, start, start + PAGE_SIZE, guards=True)
            _guards_known = True
        except OSError:
            _guards_known = False
        finally:
            os.close(fd)
    return _guards_known


def guard_runs(pid, ranges):
    """[(vaddr, nr_pages)] of guard-region pages (MADV_GUARD_INSTALL) in the given ranges.

    Kernels whose PAGEMAP_SCAN does not know PAGE_IS_GUARD have none to
    show (the pagemap bit came with it, in 6.14)."""
    if not _scan_knows_guards():
        return []
    fd = os.open(f"/proc/{pid}/pagemap", os.O_RDONLY)
    try:
        runs = []
        for start, end in ranges:
            runs.extend((v, n) for v, n in _scan(fd, start, end, guards=True))
        return runs
    finally:
        os.close(fd)


def zero_page_runs(pid, ranges):
    """[(start, end)] of pages mapping the zero page (also the huge one) in the given ranges;
    [] when PAGEMAP_SCAN cannot tell (before Linux 6.7)."""
    return _category_runs(pid, ranges, PAGE_IS_PFNZERO) if has_pagemap_scan() else []


def written_runs(pid, ranges):
    """[(start, end)] of pages with data written since userfaultfd write-protected them (or never
    write-protected) in the given ranges (PAGEMAP_SCAN, Linux 6.7+)."""
    return _category_runs(pid, ranges, PAGE_IS_WRITTEN, anyof=PAGE_IS_PRESENT | PAGE_IS_SWAPPED)


def _category_runs(pid, ranges, category, anyof=0):
    fd = os.open(f"/proc/{pid}/pagemap", os.O_RDONLY)
    try:
        out = []
        for start, end in ranges:
            for vaddr, n in _scan(fd, start, end, category=category, anyof=anyof):
                out.append((vaddr, vaddr + n * PAGE_SIZE))
        return out
    finally:
        os.close(fd)


_has_scan = None


def has_pagemap_scan():
    global _has_scan
    if _has_scan is None:
        _has_scan = _probe_pagemap_scan()
    return _has_scan


def _probe_pagemap_scan():
    fd = os.open("/proc/self/pagemap", os.O_RDONLY)
    try:
        buf = ctypes.create_string_buffer(PAGE_SIZE)
        start = ctypes.addressof(buf) & ~(PAGE_SIZE - 1)
        _scan(fd, start, start + PAGE_SIZE)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)
