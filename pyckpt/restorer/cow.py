"""Copy-on-write sharing after fork, made again.

A child is forked from its parent's stub after the parent's memory is back,
so it starts with every mapping of the parent, each page the same physical
frame as the parent's. Where the child's image has the same mapping (a part
of one parent mapping: same kind, backing and offset) the child keeps it;
then only the pages that are the child's own are written (preadv breaks the
sharing for exactly those), the pages the parent has and the child had not
are dropped (MADV_DONTNEED: zeros again for anonymous memory, the file's own
pages for a private file mapping), and everything else of the parent is
unmapped. Pages the image says were shared with the parent at dump time
(inherited runs) are left alone: they are the parent's frames.

The parent's pages are exactly its image's (its own and inherited runs):
mapped fresh, or kept and dropped the same way, down the tree.
"""

import collections

from .. import proc
from ..images.proto import mm_pb2
from ..pagemap import PAGE_SIZE
from ..ranges import intersect, merge, subtract
from . import vmflags
from .image import PageSegment

MADV_DONTNEED = 4
# Kinds a child keeps from its parent. SysV attaches are attached again
# (shmat counts them), the vDSO is moved, not kept.
KEEPABLE = (mm_pb2.Vma.ANON, mm_pb2.Vma.FILE_PRIVATE, mm_pb2.Vma.FILE_SHARED, mm_pb2.Vma.SHMEM,
            mm_pb2.Vma.MEMFD_SHARED, mm_pb2.Vma.MEMFD_PRIVATE)

Plan = collections.namedtuple("Plan", "kept write zap")


def _same_backing(child, parent):
    """Whether the child's VMA is a part of the parent's VMA, mapping the same thing at the same offset."""
    if child.kind != parent.kind or child.kind not in KEEPABLE:
        return False
    if not (parent.start <= child.start and child.end <= parent.end):
        return False
    if (child.growsdown, child.may_write, child.may_exec) != (parent.growsdown, parent.may_write, parent.may_exec):
        return False
    if not vmflags.can_turn_into(parent.vmflags, child.vmflags):
        return False
    if child.kind == mm_pb2.Vma.ANON:
        return True
    if child.pgoff != parent.pgoff + (child.start - parent.start):
        return False
    if child.kind in (mm_pb2.Vma.FILE_PRIVATE, mm_pb2.Vma.FILE_SHARED):
        a, b = child.file, parent.file
        return (a.path, a.dev, a.ino, a.size, a.mtime_ns) == (b.path, b.dev, b.ino, b.size, b.mtime_ns)
    return child.shmem_id == parent.shmem_id


def _covered(ranges, start, end):
    """Whether sorted, non-overlapping `ranges` cover [start, end) whole."""
    cursor = start
    for s, e in ranges:
        if e <= cursor:
            continue
        if s > cursor:
            return False
        cursor = e
        if cursor >= end:
            return True
    return cursor >= end


def plan(pr):
    """What a forked child keeps of its parent's memory and what it must still write and drop.

    kept: indexes of the child's VMAs kept as inherited; write: the child's
    PageSegments to read from the images; zap: (start, end) ranges to drop."""
    mm, parent = pr.mm, pr.parent
    segments = pr.image.page_segments[pr.pid]
    if parent is None or parent.mm is None:
        return Plan(set(), segments, [])
    have = merge([(v.start, v.end) for v in proc.read_vmas(pr.pid)])
    theirs = sorted(parent.mm.vmas, key=lambda v: v.start)
    kept, j = set(), 0
    for index, vma in enumerate(mm.vmas):
        while j < len(theirs) and theirs[j].end <= vma.start:
            j += 1
        if j < len(theirs) and _same_backing(vma, theirs[j]) and _covered(have, vma.start, vma.end):
            kept.add(index)
    kept_ranges = merge([(mm.vmas[i].start, mm.vmas[i].end) for i in sorted(kept)])
    inherited = [(r.vaddr, r.vaddr + r.nr_pages * PAGE_SIZE) for r in pr.image.pagemaps[pr.pid].inherited]
    shared_now = intersect(merge(inherited), kept_ranges)
    write = _segments_minus(segments, shared_now)
    parent_pages = merge([(g.vaddr, g.vaddr + g.nbytes) for g in pr.image.page_segments[parent.pid]])
    mine = merge([(g.vaddr, g.vaddr + g.nbytes) for g in segments])
    zap = subtract(intersect(parent_pages, kept_ranges), mine)
    return Plan(kept, write, zap)


def drop(pr, zap):
    for start, end in zap:
        pr.inj.call("madvise", start, end - start, MADV_DONTNEED,
                    detail=f"pages {start:#x}-{end:#x} the parent has and this process had not")


# -- page segments ----------------------------------------------------------------


def _segments_minus(segments, holes):
    """The parts of the PageSegments (sorted by address) outside `holes`."""
    out = []
    for g in segments:
        for start, end in subtract([(g.vaddr, g.vaddr + g.nbytes)], holes):
            out.append(PageSegment(start, end - start, g.pages_file, g.offset + (start - g.vaddr)))
    return out
