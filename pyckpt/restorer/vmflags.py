"""Per-mapping advice and flags, as /proc/PID/smaps "VmFlags" shows them, and
the per-mm THP and KSM switches, put back once a process's memory is mapped
and filled (and before its children are forked from it: MADV_DONTFORK and
MADV_WIPEONFORK must already act then).

Every VmFlags mnemonic falls in one of the sets below; dump refuses a
mapping with any other (pyckpt.dumper), so nothing is dropped silently.
"""

import logging
import os

from .. import linux, pagemap, proc
from ..errors import ImageError, PyckptError
from ..images.proto import mm_pb2
from ..pagemap import PAGE_SIZE
from .image import PageSegment

log = logging.getLogger(__name__)

# madvise() that sets the flag on the exact range
ADVICE = {
    "dc": linux.MADV_DONTFORK, "dd": linux.MADV_DONTDUMP, "hg": linux.MADV_HUGEPAGE,
    "nh": linux.MADV_NOHUGEPAGE, "mg": linux.MADV_MERGEABLE, "wf": linux.MADV_WIPEONFORK,
    "sr": linux.MADV_SEQUENTIAL, "rr": linux.MADV_RANDOM,
}
AT_MMAP = {"nr", "dp"}          # MAP_NORESERVE, MAP_DROPPABLE: only mmap gives them (mmap_flags)
LOCKS = {"lo", "lf"}            # mlock, mlock2(MLOCK_ONFAULT)
GUARD = "gu"                    # the mapping has (had) guard regions: MADV_GUARD_INSTALL
BTI = "bt"                      # arm64 PROT_BTI
# Follow from the protection, the backing and MAP_GROWSDOWN as restore.memory
# maps them, or are the kernel's own bookkeeping: VM_ACCOUNT ("ac") and
# soft-dirty ("sd", set on every new mapping: tracking starts afresh).
DERIVED = {"rd", "wr", "ex", "sh", "mr", "mw", "me", "ms", "gd", "ac", "sd"}
RESTORED = frozenset(ADVICE) | AT_MMAP | LOCKS | {GUARD, BTI} | DERIVED
# MAP_DROPPABLE sets these itself
DROPPABLE_IMPLIES = {"nr", "wf", "dd"}
# madvise() that clears a flag the process has and the image has not
UNDO = {
    "dc": linux.MADV_DOFORK, "dd": linux.MADV_DODUMP, "mg": linux.MADV_UNMERGEABLE,
    "wf": linux.MADV_KEEPONFORK, "sr": linux.MADV_NORMAL, "rr": linux.MADV_NORMAL,
}


def can_turn_into(have, want):
    """Whether madvise can turn a mapping with VmFlags `have` (kept from a parent) into one with
    exactly `want`; where it cannot (MAP_NORESERVE, MAP_DROPPABLE or VM_ACCOUNT differ, a guard mark,
    one of hg/nh to none), the child maps it afresh instead of keeping it."""
    want, have = set(want), set(have)
    # only mmap gives these (and VM_ACCOUNT follows from how it was mapped): both ways must match
    if (have ^ want) & (AT_MMAP | {"ac"}):
        return False
    for mnemonic in have - want:
        if mnemonic in UNDO or mnemonic in DERIVED or mnemonic in LOCKS:   # fork drops locks itself
            continue
        if mnemonic in ("hg", "nh") and ({"hg", "nh"} - {mnemonic}) & want:
            continue
        return False
    return True


def mmap_flags(arch, vma, map_type):
    """mmap's map type and flags for `vma`: MAP_DROPPABLE instead of MAP_PRIVATE, MAP_NORESERVE."""
    flags = set(vma.vmflags)
    if "dp" in flags:
        return arch.MAP_DROPPABLE
    return map_type | (arch.MAP_NORESERVE if "nr" in flags else 0)


PROT_WRITE = 2
MEM_CHUNK = 1 << 20
PRIVATE_KINDS = (mm_pb2.Vma.ANON, mm_pb2.Vma.FILE_PRIVATE, mm_pb2.Vma.MEMFD_PRIVATE)


def fill_without_write(vma):
    """A private mapping with data that is not writable and was never charged as writable
    (no "ac"): its pages came from the zero page or a debugger-style write (FOLL_FORCE).
    Mapping it writable to fill it would charge it, and "ac" would stay: it is mapped with
    its own protection and filled as it was filled, through /proc/PID/mem (fill_through_mem)."""
    flags = set(vma.vmflags)
    return (bool(flags) and vma.kind in PRIVATE_KINDS and not vma.prot & PROT_WRITE
            and not flags & {"ac", "nr"})


def split_segments(segments, ranges):
    """(segments inside the (start, end) ranges, the others), cut at the range borders."""
    inside, outside = [], []
    for seg in segments:
        cursor, end = seg.vaddr, seg.vaddr + seg.nbytes
        for start, stop in sorted(ranges):
            if stop <= cursor or start >= end:
                continue
            if start > cursor:
                outside.append(_cut(seg, cursor, start))
                cursor = start
            inside.append(_cut(seg, cursor, min(stop, end)))
            cursor = min(stop, end)
        if cursor < end:
            outside.append(_cut(seg, cursor, end))
    return inside, outside


def _cut(seg, start, end):
    return PageSegment(start, end - start, seg.pages_file, seg.offset + start - seg.vaddr)


def fill_through_mem(pr, segments):
    """Write the segments' pages through /proc/PID/mem, which writes a private page the
    mapping does not allow writing (breaking copy-on-write, as a debugger does) without
    making the mapping writable."""
    if not segments:
        return
    files = {}
    mem = os.open(f"/proc/{pr.pid}/mem", os.O_RDWR)
    try:
        for seg in segments:
            if seg.pages_file not in files:
                files[seg.pages_file] = os.open(pr.image.path(seg.pages_file), os.O_RDONLY)
            for done in range(0, seg.nbytes, MEM_CHUNK):
                n = min(MEM_CHUNK, seg.nbytes - done)
                data = os.pread(files[seg.pages_file], n, seg.offset + done)
                if len(data) != n or os.pwrite(mem, data, seg.vaddr + done) != n:
                    raise ImageError(f"short copy of {seg.pages_file} into process {pr.pid} "
                                     f"at {seg.vaddr + done:#x}")
    finally:
        os.close(mem)
        for fd in files.values():
            os.close(fd)


def apply_advice(pr):
    """Every mapping's advice, locks and guard regions, and the mm's THP/KSM switches, as dumped.

    Done as a difference from what the process has now, so that it holds
    also for mappings a process kept from the parent it was forked from
    (which carry the parent's advice)."""
    _set_mm_switches(pr)
    now = proc.read_vmas(pr.pid)
    for vma in pr.mm.vmas:
        if vma.kind not in (mm_pb2.Vma.VDSO, mm_pb2.Vma.VSYSCALL):
            _apply_to(pr, vma, now)
    if pr.mm.mlock_future:
        # only new mappings: restore's own (the trampoline's last calls) are gone before the process runs
        pr.inj.call("mlockall", pr.mm.mlock_future, detail=f"mlockall({pr.mm.mlock_future:#x})")


def _apply_to(pr, vma, now):
    inj = pr.inj
    want = set(vma.vmflags)
    length = vma.end - vma.start
    where = f"mapping {vma.start:#x}-{vma.end:#x} {vma.name or vma.file.path or '(anonymous)'}"
    over = [v.vmflags for v in now if v.start < vma.end and vma.start < v.end]
    has_any = set().union(*over) if over else set()
    has_all = set.intersection(*map(set, over)) if over else set()

    def madvise(advice, what, start=vma.start, size=length):
        inj.call("madvise", start, size, advice, detail=f"{where}: {what}")

    # What the process has and the image has not (kept from a parent): undone first.
    if GUARD in has_any:
        wanted = {(g.vaddr, g.nr_pages) for g in vma.guards}
        for vaddr, nr_pages in pagemap.guard_runs(pr.pid, [(vma.start, vma.end)]):
            if (vaddr, nr_pages) not in wanted:
                madvise(linux.MADV_GUARD_REMOVE, "a guard region not in the image", vaddr, nr_pages * PAGE_SIZE)
    for mnemonic in sorted(has_any - want):
        if mnemonic in UNDO:
            madvise(UNDO[mnemonic], f"no VmFlags {mnemonic}")
            has_all -= {"sr", "rr"} if UNDO[mnemonic] == linux.MADV_NORMAL else {mnemonic}
        elif mnemonic in ("hg", "nh") and ({"hg", "nh"} - {mnemonic}) & want:
            continue            # the other one, set below, clears it
        elif mnemonic not in DERIVED:
            raise PyckptError(f"{where} has VmFlags {mnemonic} (from its parent?), which the image has not "
                              "and which cannot be cleared")
    # guards before mlock: the kernel refuses to install them in a locked mapping
    for run in vma.guards:
        madvise(linux.MADV_GUARD_INSTALL, f"guard region at {run.vaddr:#x}", run.vaddr, run.nr_pages * PAGE_SIZE)
    if GUARD in want and not vma.guards and GUARD not in has_all:
        _mark_maybe_guard(pr, vma, where)
    for mnemonic, advice in ADVICE.items():
        if mnemonic in want - has_all and not ("dp" in want and mnemonic in DROPPABLE_IMPLIES):
            madvise(advice, f"VmFlags {mnemonic}")
    if BTI in want - has_all:
        inj.call("mprotect", vma.start, length, vma.prot | pr.arch.PROT_BTI, detail=f"{where}: PROT_BTI")
    if "lf" in want - has_all:
        inj.call("mlock2", vma.start, length, linux.MLOCK_ONFAULT, detail=f"{where}: mlock2(MLOCK_ONFAULT)")
    elif "lo" in want - has_all:
        inj.call("mlock", vma.start, length, detail=f"{where}: mlock")


def _set_mm_switches(pr):
    """Set explicitly, also when off: a process forked from a restored parent inherits the parent's."""
    inj, mm = pr.inj, pr.mm
    inj.call("prctl", linux.PR_SET_THP_DISABLE, mm.thp_disable & 1, mm.thp_disable & ~1, 0, 0,
             detail=f"PR_SET_THP_DISABLE {mm.thp_disable:#x}")
    result = inj.raw("prctl", linux.PR_SET_MEMORY_MERGE, int(mm.ksm_merge_any), 0, 0, 0)
    if result < 0 and (mm.ksm_merge_any or result != -22):  # EINVAL when off: a kernel without it
        inj.call("prctl", linux.PR_SET_MEMORY_MERGE, int(mm.ksm_merge_any), 0, 0, 0,
                 detail="PR_SET_MEMORY_MERGE (KSM for the whole process)")


def _mark_maybe_guard(pr, vma, where):
    """VmFlags "gu" stays on a mapping whose guard regions were all removed again: the kernel
    sets it only by installing one. Do that on a page without data and remove it; if every
    page has data, keep that page's contents across the install (which zaps it)."""
    inj = pr.inj
    page = _page_without_data(pr, vma)
    keep = None
    if page is None:
        page = vma.start
        if vma.kind in (mm_pb2.Vma.ANON, mm_pb2.Vma.FILE_PRIVATE, mm_pb2.Vma.MEMFD_PRIVATE):
            keep = _mem_io(pr.pid, page, None)
    inj.call("madvise", page, PAGE_SIZE, linux.MADV_GUARD_INSTALL, detail=f"{where}: VmFlags gu")
    inj.call("madvise", page, PAGE_SIZE, linux.MADV_GUARD_REMOVE, detail=f"{where}: VmFlags gu")
    if keep is not None:
        _mem_io(pr.pid, page, keep)


def _page_without_data(pr, vma):
    """The first page of `vma` that the pages image does not fill, or None."""
    cursor = vma.start
    for seg in sorted(pr.image.page_segments[pr.pid], key=lambda s: s.vaddr):
        if seg.vaddr + seg.nbytes <= cursor:
            continue
        if seg.vaddr > cursor or cursor >= vma.end:
            break
        cursor = seg.vaddr + seg.nbytes
    return cursor if cursor < vma.end else None


def _mem_io(pid, address, data):
    """Read one page of the process (data None) or write it back, through /proc/PID/mem (which
    may write a read-only private page, as a debugger does)."""
    fd = os.open(f"/proc/{pid}/mem", os.O_RDWR)
    try:
        if data is None:
            return os.pread(fd, PAGE_SIZE, address)
        os.pwrite(fd, data, address)
        return None
    finally:
        os.close(fd)
