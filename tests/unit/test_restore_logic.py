"""Pure decisions of the restorer and of the page scanner, without a process to restore."""

import ctypes
import mmap
import os
import struct

import pytest

from pyckpt import arch as archmod
from pyckpt import pagemap
from pyckpt.dumper import _subtract
from pyckpt.ranges import Range, intersect
from pyckpt.errors import ImageError
from pyckpt.images.proto import files_pb2, mm_pb2
from pyckpt.pagemap import PAGE_SIZE, PM_FILE, PM_PRESENT, PM_SWAP
from pyckpt.restorer.image import PageSegment, page_segments
from pyckpt.restorer.memory import complement, free_gap, vmas_with_data
from pyckpt.restorer.threads import resume_regs

P = PAGE_SIZE
X86 = archmod.by_name("x86_64")
NR = X86.SYSCALLS
TIMER_ABSTIME = 1
CLOCK_MONOTONIC = 1


# -- address-space arithmetic ------------------------------------------------------------------------


COMPLEMENT_CASES = [
    # keep, low, high, expected
    ([], 0, 0x10000, [(0, 0x10000)]),
    ([(0x2000, 0x3000)], 0, 0x10000, [(0, 0x2000), (0x3000, 0x10000)]),
    ([(0x3000, 0x4000), (0x1000, 0x2000)], 0, 0x5000, [(0, 0x1000), (0x2000, 0x3000), (0x4000, 0x5000)]),
    ([(0, 0x1000), (0x1000, 0x2000)], 0, 0x2000, []),                 # adjacent ranges leave no gap
    ([(0x1000, 0x4000), (0x2000, 0x3000)], 0, 0x5000, [(0, 0x1000), (0x4000, 0x5000)]),   # nested
    ([(0x4000, 0x9000)], 0, 0x5000, [(0, 0x4000)]),                  # keep beyond high is clipped
    ([(0x1000, 0x2000)], 0x1800, 0x3000, [(0x2000, 0x3000)]),        # low inside a kept range
]


@pytest.mark.parametrize("keep,low,high,expected", COMPLEMENT_CASES)
def testcomplement(keep, low, high, expected):
    assert complement(keep, low, high) == expected


FREE_GAP_CASES = [
    # busy, size, expected
    ([], P, 0x10000),                                               # nothing mapped: the lowest allowed address
    ([(0x10000, 0x20000)], P, 0x20000),
    ([(0x10000 + P, 0x20000)], P, 0x10000),                          # exactly one page free below
    ([(0x10000 + P, 0x20000)], 2 * P, 0x20000),                      # ... but not two
    ([(0x30000, 0x40000), (0x10000, 0x20000)], 0x10000, 0x20000),    # unsorted input; a gap that fits exactly
    ([(0x10000, 0x30000), (0x20000, 0x28000)], P, 0x30000),          # overlapping busy ranges
    ([(0x1000, 0x2000)], P, 0x10000),                                # busy below low is ignored
]


@pytest.mark.parametrize("busy,size,expected", FREE_GAP_CASES)
def testfree_gap(busy, size, expected):
    found = free_gap(busy, size)
    assert found == expected
    assert all(found + size <= s or found >= e for s, e in busy), "the gap overlaps a busy range"


def _vma(start, end):
    return mm_pb2.Vma(start=start, end=end)


def _run(vaddr, pages):
    return mm_pb2.PageRun(vaddr=vaddr, nr_pages=pages)


# In pages: [16, 18) [32, 48) [48, 49) [64, 68), in maps order.
VMAS = [_vma(16 * P, 18 * P), _vma(32 * P, 48 * P), _vma(48 * P, 49 * P), _vma(64 * P, 68 * P)]
WITH_DATA_CASES = [
    ([], set()),
    ([_run(16 * P, 1)], {0}),
    ([_run(17 * P, 1)], {0}),                                    # last page of a VMA
    ([_run(47 * P, 2)], {1, 2}),                                 # one run across two adjacent VMAs
    ([_run(67 * P, 1), _run(16 * P, 2)], {0, 3}),                # runs in file order, not address order
    ([_run(32 * P, 1), _run(33 * P, 1), _run(40 * P, 1)], {1}),
]


def _tree(*pid_ppid):
    return files_pb2.PsTree(processes=[files_pb2.ProcessEntry(pid=p, ppid=pp) for p, pp in pid_ppid])


def _pagemap(pid, runs=(), inherited=()):
    return mm_pb2.PageMap(pages_file=f"pages-{pid}.img", runs=list(runs), inherited=list(inherited))


@pytest.mark.parametrize("runs,expected", WITH_DATA_CASES)
def testvmas_with_data(runs, expected):
    segments = page_segments(_tree((1, 0)), {1: _pagemap(1, runs)})[1]
    assert vmas_with_data(VMAS, segments) == expected


def test_intersect_ranges():
    ours = [Range(0, 10 * P), Range(20 * P, 30 * P)]
    theirs = [Range(5 * P, 25 * P), Range(28 * P, 40 * P)]
    assert intersect(ours, theirs) == [Range(5 * P, 10 * P), Range(20 * P, 25 * P), Range(28 * P, 30 * P)]


def test_subtract_page_runs_from_ranges():
    ranges = [Range(0, 10 * P), Range(20 * P, 30 * P)]
    runs = [(0, 2), (5 * P, 1), (9 * P, 12), (29 * P, 1)]     # the third spans the gap between ranges
    assert _subtract(ranges, runs) == [Range(2 * P, 5 * P), Range(6 * P, 9 * P), Range(21 * P, 29 * P)]


def test_page_segments_own_runs_in_file_order():
    segs = page_segments(_tree((1, 0)), {1: _pagemap(1, [_run(67 * P, 1), _run(16 * P, 2)])})[1]
    assert segs == [PageSegment(16 * P, 2 * P, "pages-1.img", P), PageSegment(67 * P, P, "pages-1.img", 0)]


def test_page_segments_inherited_resolve_through_ancestors():
    """A grandchild's page the child inherited from the root is read from the root's image."""
    pagemaps = {
        1: _pagemap(1, [_run(16 * P, 4)]),
        2: _pagemap(2, [_run(16 * P, 1)], inherited=[_run(17 * P, 3)]),   # child rewrote page 16
        3: _pagemap(3, inherited=[_run(16 * P, 4)]),                       # grandchild rewrote nothing
    }
    segs = page_segments(_tree((1, 0), (2, 1), (3, 2)), pagemaps)
    assert segs[3] == [PageSegment(16 * P, P, "pages-2.img", 0),
                       PageSegment(17 * P, 3 * P, "pages-1.img", P)]


def test_page_segments_refuse_an_inherited_page_nobody_holds():
    pagemaps = {1: _pagemap(1, [_run(16 * P, 1)]), 2: _pagemap(2, inherited=[_run(16 * P, 2)])}
    with pytest.raises(ImageError, match=r"page 0x11000 is inherited from process 1"):
        page_segments(_tree((1, 0), (2, 1)), pagemaps)


def test_page_segments_refuse_inheriting_without_a_parent_image():
    with pytest.raises(ImageError, match="no memory image"):
        page_segments(_tree((2, 1)), {2: _pagemap(2, inherited=[_run(16 * P, 1)])})


# -- syscall restart policy (x86-64 registers as PTRACE_GETREGSET shows a frozen thread) ---------------


def frozen_in(name, args, errno_value):
    """A thread stopped inside syscall `name`, which returned -errno_value and awaits the kernel's restart."""
    regs = dict.fromkeys(X86.GPREGS_FIELDS, 0)
    regs.update((reg, value & 0xFFFFFFFFFFFFFFFF) for reg, value in zip(X86.ARGS, args))
    regs["orig_rax"] = NR[name]
    regs["rip"] = 0x401002
    return X86.set_syscall_error(regs, errno_value)


REQ, REM = 0x7FFC0000A000, 0x7FFC0000B000
RESTART_BLOCK = archmod.ERESTART_RESTARTBLOCK
NOINTR = archmod.ERESTARTNOINTR

RESUME_CASES = [
    # id, syscall, args, errno at freeze, expected args after, expected -rax after
    ("relative clock_nanosleep: req := rem",
     "clock_nanosleep", [CLOCK_MONOTONIC, 0, REQ, REM], RESTART_BLOCK, [CLOCK_MONOTONIC, 0, REM, REM], NOINTR),
    ("TIMER_ABSTIME clock_nanosleep: the same deadline",
     "clock_nanosleep", [CLOCK_MONOTONIC, TIMER_ABSTIME, REQ, REM], RESTART_BLOCK,
     [CLOCK_MONOTONIC, TIMER_ABSTIME, REQ, REM], NOINTR),
    ("relative clock_nanosleep without rem: starts over",
     "clock_nanosleep", [CLOCK_MONOTONIC, 0, REQ, 0], RESTART_BLOCK, [CLOCK_MONOTONIC, 0, REQ, 0], NOINTR),
    ("nanosleep: req := rem", "nanosleep", [REQ, REM], RESTART_BLOCK, [REM, REM], NOINTR),
    ("other restart-block call: same arguments",
     "futex", [0x601000, 0, 7, REQ], RESTART_BLOCK, [0x601000, 0, 7, REQ], NOINTR),
    ("ERESTARTSYS: left for the kernel", "read", [0, 0x601000, 10], archmod.ERESTARTSYS,
     [0, 0x601000, 10], archmod.ERESTARTSYS),
    ("ERESTARTNOHAND: left for the kernel", "ppoll", [0x601000, 1, 0, 0], archmod.ERESTARTNOHAND,
     [0x601000, 1, 0, 0], archmod.ERESTARTNOHAND),
    ("ERESTARTNOINTR: left for the kernel", "wait4", [-1, 0, 0, 0], NOINTR, [-1, 0, 0, 0], NOINTR),
    ("EINTR: a finished syscall, nothing to redo", "clock_nanosleep", [CLOCK_MONOTONIC, 0, REQ, REM], 4,
     [CLOCK_MONOTONIC, 0, REQ, REM], 4),
]


@pytest.mark.parametrize("name,args,errno_value,want_args,want_errno", [c[1:] for c in RESUME_CASES],
                         ids=[c[0] for c in RESUME_CASES])
def testresume_regs_restart_policy(name, args, errno_value, want_args, want_errno):
    regs = frozen_in(name, args, errno_value)
    before = dict(regs)
    out = resume_regs(X86, regs)
    assert regs == before, "resume_regs must not modify its argument"
    assert X86.syscall_args(out)[: len(want_args)] == [a & 0xFFFFFFFFFFFFFFFF for a in want_args]
    assert X86.syscall_result(out) == -want_errno
    # Still "in" the same syscall at the same place: the kernel's restart on resume does the rest.
    assert (out["orig_rax"], out["rip"]) == (NR[name], 0x401002)
    untouched = set(X86.GPREGS_FIELDS) - set(X86.ARGS) - {"rax"}
    assert {k: out[k] for k in untouched} == {k: before[k] for k in untouched}


def testresume_regs_of_a_thread_not_in_a_syscall_is_unchanged():
    regs = dict.fromkeys(X86.GPREGS_FIELDS, 0x42)
    regs["orig_rax"] = (1 << 64) - 1
    regs["rax"] = (-RESTART_BLOCK) & 0xFFFFFFFFFFFFFFFF     # looks like a restart value, but no syscall
    assert resume_regs(X86, regs) == regs


def testresume_regs_on_arm64_trusts_the_kernels_own_rewind():
    a64 = archmod.by_name("aarch64")
    regs = dict.fromkeys(a64.GPREGS_FIELDS, 0)
    regs.update(x0=(-RESTART_BLOCK) & 0xFFFFFFFFFFFFFFFF, x8=a64.SYSCALLS["clock_nanosleep"])
    assert resume_regs(a64, regs) == regs


# -- which pages a dump saves: /proc/PID/pagemap fallback ------------------------------------------------


def _pagemap_file(tmp_path, entries):
    """A file laid out like /proc/PID/pagemap: entry i describes the page at virtual address i * PAGE_SIZE."""
    path = tmp_path / "pagemap"
    with open(path, "wb") as f:
        for index, entry in entries.items():
            f.seek(index * 8)
            f.write(struct.pack("<Q", entry))
    return path


PFN = 0x1234  # low bits: a page frame number the kernel may show; never a flag
# page index -> pagemap entry, over pages 16..31
ENTRIES = {
    16: PM_PRESENT | PFN, 17: PM_PRESENT, 18: PM_SWAP | 5,      # a run of 3: present, present, swapped
    19: 0,                                                     # not there
    20: PM_PRESENT | PM_FILE,                                  # a page of the file: not saved
    21: PM_PRESENT, 22: PM_SWAP | PM_FILE,                     # run of 1, then a shared/file swap entry
    24: PM_PRESENT | (1 << 55),                                # soft-dirty bit set: still just present
    25: PM_PRESENT, 31: PM_PRESENT,
}


@pytest.mark.parametrize("first,last,expected", [
    (16, 32, [(16, 3), (21, 1), (24, 2), (31, 1)]),
    (17, 19, [(17, 2)]),                        # a range starting mid-run
    (19, 21, []),
    (26, 31, []),                               # holes only (the file is shorter than the range: no error)
])
def test_read_pagemap_runs(tmp_path, first, last, expected):
    path = _pagemap_file(tmp_path, ENTRIES)
    fd = os.open(path, os.O_RDONLY)
    try:
        runs = pagemap._read_pagemap(fd, first * P, last * P)
    finally:
        os.close(fd)
    assert [(vaddr // P, n) for vaddr, n in runs] == expected


@pytest.mark.parametrize("scan", [True, False], ids=["PAGEMAP_SCAN", "pagemap file"])
def test_data_runs_of_this_process(monkeypatch, scan):
    """Both ways of finding pages agree on a mapping whose pages 0, 1 and 3 were touched."""
    if scan and not pagemap.has_pagemap_scan():
        pytest.fail("this kernel has no PAGEMAP_SCAN (6.7+); the DESIGN says the host has it")
    monkeypatch.setattr(pagemap, "_scan_works", None if scan else False)
    area = mmap.mmap(-1, 5 * P, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    try:
        for page in (0, 1, 3):
            area[page * P] = 1
        view = ctypes.c_char.from_buffer(area)
        base = ctypes.addressof(view)
        del view   # a live ctypes view would keep the mapping from being closed
        runs = pagemap.data_runs(os.getpid(), [(base, base + 5 * P)])
        assert [((v - base) // P, n) for v, n in runs] == [(0, 2), (3, 1)]
        assert pagemap._scan_works is scan
    finally:
        area.close()
