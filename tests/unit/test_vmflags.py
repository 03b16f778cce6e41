"""VmFlags: which dump keeps, which it refuses by name, and what restore maps with."""

import types

import pytest

from pyckpt import arch as archmod
from pyckpt import proc
from pyckpt.dumper import _vma_flags
from pyckpt.errors import PyckptError, UnsupportedState
from pyckpt.images.proto import mm_pb2
from pyckpt.pagemap import PAGE_SIZE as P
from pyckpt.restorer import vmflags
from pyckpt.restorer.image import PageSegment

X86 = archmod.by_name("x86_64")
MIPS = archmod.by_name("mips64")


def vma(*flags, start=0x10000, end=0x10000 + 4 * P):
    return proc.Vma(start, end, "rw-p", 0, "00:00", 0, "", frozenset(flags))


def anon():
    return mm_pb2.Vma(kind=mm_pb2.Vma.ANON)


def test_advice_and_locks_are_kept_with_the_guards():
    msg = anon()
    _vma_flags(msg, vma("rd", "wr", "mr", "mw", "me", "ac", "dc", "hg", "lo", "lf", "gu"), "m",
               [(0x10000 + P, 2)])
    assert list(msg.vmflags) == sorted(["rd", "wr", "mr", "mw", "me", "ac", "dc", "hg", "lo", "lf", "gu"])
    assert [(g.vaddr, g.nr_pages) for g in msg.guards] == [(0x10000 + P, 2)]


@pytest.mark.parametrize("flag, words", [("uw", "userfaultfd"), ("um", "userfaultfd"), ("sl", "mseal"),
                                         ("ss", "shadow stack"), ("zz", "does not know")])
def test_a_flag_restore_cannot_set_is_refused_by_name(flag, words):
    with pytest.raises(UnsupportedState, match=rf'mapping 7 .*{words}.*"{flag}"'):
        _vma_flags(anon(), vma("rd", "wr", flag), "mapping 7", [])


def test_droppable_or_noreserve_shared_memory_is_refused():
    with pytest.raises(UnsupportedState, match="MAP_DROPPABLE"):
        _vma_flags(mm_pb2.Vma(kind=mm_pb2.Vma.FILE_PRIVATE), vma("rd", "dp"), "m", [])
    with pytest.raises(UnsupportedState, match="MAP_NORESERVE"):
        _vma_flags(mm_pb2.Vma(kind=mm_pb2.Vma.SHMEM), vma("rd", "nr", "sh", "ms"), "m", [])


@pytest.mark.parametrize("arch", [X86, MIPS], ids=["x86_64", "mips64"])
def test_mmap_flags(arch):
    assert vmflags.mmap_flags(arch, vma("rd"), arch.MAP_PRIVATE) == arch.MAP_PRIVATE
    assert vmflags.mmap_flags(arch, vma("nr"), arch.MAP_PRIVATE) == arch.MAP_PRIVATE | arch.MAP_NORESERVE
    assert vmflags.mmap_flags(arch, vma("nr", "wf", "dd", "dp"), arch.MAP_PRIVATE) == arch.MAP_DROPPABLE


@pytest.mark.parametrize("segments, want", [
    ([], 0x10000),
    ([(0x10000, 4 * P)], None),
    ([(0x10000, P), (0x10000 + P, P)], 0x10000 + 2 * P),
    ([(0x8000, 0x8000 + P)], 0x10000 + P),
    ([(0x10000 + P, 3 * P)], 0x10000),
    ([(0x20000, P)], 0x10000),
])
def test_page_without_data(segments, want):
    pr = types.SimpleNamespace(pid=1, image=types.SimpleNamespace(page_segments={
        1: [PageSegment(vaddr=v, nbytes=n, pages_file="p", offset=0) for v, n in segments]}))
    assert vmflags._page_without_data(pr, mm_pb2.Vma(start=0x10000, end=0x10000 + 4 * P)) == want


def seg(vaddr, nbytes, offset=0):
    return PageSegment(vaddr=vaddr, nbytes=nbytes, pages_file="p", offset=offset)


def test_split_segments_cuts_at_range_borders():
    inside, outside = vmflags.split_segments([seg(0, 10 * P, 100 * P), seg(20 * P, P, 0)],
                                             [(2 * P, 4 * P), (8 * P, 12 * P)])
    assert inside == [seg(2 * P, 2 * P, 102 * P), seg(8 * P, 2 * P, 108 * P)]
    assert outside == [seg(0, 2 * P, 100 * P), seg(4 * P, 4 * P, 104 * P), seg(20 * P, P, 0)]


@pytest.mark.parametrize("kind, prot, flags, want", [
    (mm_pb2.Vma.ANON, 1, ["rd", "mr", "mw", "me"], True),          # zero pages read, never written
    (mm_pb2.Vma.FILE_PRIVATE, 5, ["rd", "ex", "mr", "mw", "me"], True),  # a breakpoint in code
    (mm_pb2.Vma.ANON, 1, ["rd", "mr", "mw", "me", "ac"], False),   # was writable once
    (mm_pb2.Vma.ANON, 3, ["rd", "wr", "mr", "mw", "me", "ac"], False),
    (mm_pb2.Vma.ANON, 1, ["rd", "mr", "mw", "me", "nr"], False),   # MAP_NORESERVE: never charged
    (mm_pb2.Vma.FILE_SHARED, 1, ["rd", "sh", "mr", "mw", "me", "ms"], False),
    (mm_pb2.Vma.ANON, 1, [], False),                               # an image without VmFlags
])
def test_fill_without_write(kind, prot, flags, want):
    assert vmflags.fill_without_write(mm_pb2.Vma(kind=kind, prot=prot, vmflags=flags)) == want


class RecordingInjector:
    def __init__(self):
        self.calls = []

    def call(self, name, *args, detail=""):
        self.calls.append((name, *args))
        return 0


def advice_calls(now_flags, want_flags):
    """madvise()/mlock calls _apply_to makes for one 4-page mapping."""
    pr = types.SimpleNamespace(pid=1, arch=X86, inj=RecordingInjector())
    start, end = 0x10000, 0x10000 + 4 * P
    vma_msg = mm_pb2.Vma(start=start, end=end, prot=3, kind=mm_pb2.Vma.ANON, vmflags=want_flags)
    vmflags._apply_to(pr, vma_msg, [vma(*now_flags, start=start, end=end)])
    return [(c[0], c[3]) if c[0] == "madvise" else (c[0],) for c in pr.inj.calls]


def test_advice_is_what_the_image_has_and_the_process_not():
    assert advice_calls({"rd", "wr", "ac"}, ["rd", "wr", "ac", "dc", "hg", "lo"]) == [
        ("madvise", 10), ("madvise", 14), ("mlock",)]
    assert advice_calls({"rd", "wr", "ac", "dc", "hg"}, ["rd", "wr", "ac", "dc", "hg"]) == []


def test_advice_kept_from_a_parent_is_undone():
    assert advice_calls({"rd", "wr", "dc", "wf", "mg"}, ["rd", "wr"]) == [
        ("madvise", 11), ("madvise", 13), ("madvise", 19)]       # DOFORK, UNMERGEABLE, KEEPONFORK
    assert advice_calls({"rd", "sr"}, ["rd", "rr"]) == [("madvise", 0), ("madvise", 1)]  # NORMAL, RANDOM
    assert advice_calls({"rd", "hg"}, ["rd", "nh"]) == [("madvise", 15)]


def test_advice_that_cannot_be_undone_is_an_error():
    with pytest.raises(PyckptError, match="VmFlags hg"):
        advice_calls({"rd", "hg"}, ["rd"])


@pytest.mark.parametrize("tokens, spelling, want", [
    (["rd", "wr", "lo", "??"], "??", {"rd", "wr", "lo", "lf"}),   # 6.1: VM_LOCKONFAULT had no name
    (["rd", "wr", "lo", "??"], "lf", {"rd", "wr", "lo", "??"}),   # a kernel that names it: unknown
    (["rd", "wr", "??"], "??", {"rd", "wr", "??"}),               # not locked: not it
    (["rd", "lo", "??", "??"], "??", {"rd", "lo", "??"}),         # two unnamed bits: cannot tell
    (["rd", "lo", "lf"], "lf", {"rd", "lo", "lf"}),
])
def test_lockonfault_named_where_the_kernel_prints_question_marks(tokens, spelling, want):
    assert proc.canonical_vmflags(tokens, spelling) == want


@pytest.mark.parametrize("have, want, keep", [
    (["rd", "wr", "dc"], ["rd", "wr"], True),        # MADV_DOFORK undoes it
    (["rd", "hg"], ["rd", "nh"], True),              # MADV_NOHUGEPAGE replaces it
    (["rd", "lo"], ["rd"], True),                    # fork does not pass mlock on
    (["rd", "hg"], ["rd"], False),                   # no madvise clears both hg and nh
    (["rd", "nr"], ["rd"], False),                   # only mmap gives (or not) MAP_NORESERVE
    (["rd", "gu"], ["rd"], False),                   # the guard mark stays
    (["rd", "nr"], ["rd", "nr", "wf", "dd", "dp"], False),   # nor MAP_DROPPABLE
    (["rd", "ac", "mg"], ["rd", "nr", "mg"], False),   # VM_ACCOUNT follows from the mmap
], ids=["dontfork", "hugepage-to-nohugepage", "locked", "hugepage-to-none", "noreserve", "guard",
        "to-droppable", "accounted-to-noreserve"])
def test_child_keeps_parent_mapping_only_when_its_flags_can_be_made_exact(have, want, keep):
    """A forked child keeps a mapping of its parent (copy-on-write) only if madvise can give it
    exactly its own VmFlags; otherwise it maps it afresh."""
    assert vmflags.can_turn_into(have, want) is keep
