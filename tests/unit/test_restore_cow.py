"""What a forked child keeps of its parent's memory (restore/cow.py) and the
shared anonymous memory image format (shmem.py), without a process."""

import types

import pytest

from pyckpt import ranges, shmem
from pyckpt.errors import ImageError
from pyckpt.images.proto import mm_pb2
from pyckpt.pagemap import PAGE_SIZE as P
from pyckpt.restorer import cow
from pyckpt.restorer.image import PageSegment


def vma(start, end, kind=mm_pb2.Vma.ANON, **kw):
    return mm_pb2.Vma(start=start * P, end=end * P, kind=kind, **kw)


def test_ranges_arithmetic():
    assert ranges.merge([(5, 8), (0, 2), (2, 3), (7, 9)]) == [(0, 3), (5, 9)]
    assert ranges.intersect([(0, 10), (20, 30)], [(5, 25)]) == [(5, 10), (20, 25)]
    assert ranges.subtract([(0, 10), (20, 30)], [(2, 4), (8, 22), (29, 40)]) == [(0, 2), (4, 8), (22, 29)]
    assert ranges.subtract([(0, 10)], []) == [(0, 10)]


def test_segments_minus_keeps_file_offsets():
    segs = [PageSegment(10 * P, 4 * P, "pages-1.img", 0), PageSegment(20 * P, 2 * P, "pages-1.img", 4 * P)]
    out = cow._segments_minus(segs, [(11 * P, 12 * P), (20 * P, 21 * P)])
    assert out == [PageSegment(10 * P, P, "pages-1.img", 0), PageSegment(12 * P, 2 * P, "pages-1.img", 2 * P),
                   PageSegment(21 * P, P, "pages-1.img", 5 * P)]


@pytest.mark.parametrize("child, parent, same", [
    (vma(1, 4), vma(0, 8), True),                                   # a part of an anonymous mapping
    (vma(1, 9), vma(0, 8), False),                                  # reaches past it
    (vma(1, 4, growsdown=True), vma(0, 8), False),
    (vma(0, 4, mm_pb2.Vma.FILE_PRIVATE, pgoff=3 * P, file=mm_pb2.FileRef(path="/f", ino=7)),
     vma(0, 8, mm_pb2.Vma.FILE_PRIVATE, pgoff=3 * P, file=mm_pb2.FileRef(path="/f", ino=7)), True),
    (vma(2, 4, mm_pb2.Vma.FILE_PRIVATE, pgoff=5 * P, file=mm_pb2.FileRef(path="/f", ino=7)),
     vma(0, 8, mm_pb2.Vma.FILE_PRIVATE, pgoff=3 * P, file=mm_pb2.FileRef(path="/f", ino=7)), True),
    (vma(2, 4, mm_pb2.Vma.FILE_PRIVATE, pgoff=2 * P, file=mm_pb2.FileRef(path="/f", ino=7)),
     vma(0, 8, mm_pb2.Vma.FILE_PRIVATE, pgoff=3 * P, file=mm_pb2.FileRef(path="/f", ino=7)), False),
    (vma(0, 8, mm_pb2.Vma.FILE_PRIVATE, file=mm_pb2.FileRef(path="/f", ino=7)),
     vma(0, 8, mm_pb2.Vma.FILE_PRIVATE, file=mm_pb2.FileRef(path="/f", ino=8)), False),
    (vma(0, 8, mm_pb2.Vma.SHMEM, shmem_id=1), vma(0, 8, mm_pb2.Vma.SHMEM, shmem_id=2), False),
    (vma(0, 8, mm_pb2.Vma.SYSV_SHM, shmem_id=1), vma(0, 8, mm_pb2.Vma.SYSV_SHM, shmem_id=1), False),
    (vma(0, 8), vma(0, 8, mm_pb2.Vma.FILE_PRIVATE, file=mm_pb2.FileRef(path="/f")), False),
])
def test_same_backing(child, parent, same):
    assert cow._same_backing(child, parent) is same


def test_plan_writes_own_pages_keeps_inherited_and_drops_the_parents_extra(monkeypatch):
    """Child keeps [0,8) (inherited pages 0-3 and 6), writes page 4 (its own) and
    page 9 of a mapping it does not keep; the parent's page 5 and 7 are dropped."""
    parent_mm = mm_pb2.Mm(vmas=[vma(0, 8), vma(8, 10)])
    child_mm = mm_pb2.Mm(vmas=[vma(0, 8), vma(8, 10, growsdown=True)])
    child_pm = mm_pb2.PageMap(pages_file="pages-2.img")
    child_pm.runs.add(vaddr=4 * P, nr_pages=1)
    child_pm.runs.add(vaddr=9 * P, nr_pages=1)
    child_pm.inherited.add(vaddr=0, nr_pages=4)
    child_pm.inherited.add(vaddr=6 * P, nr_pages=1)
    image = types.SimpleNamespace(
        pagemaps={2: child_pm},
        page_segments={
            1: [PageSegment(0, 8 * P, "pages-1.img", 0)],
            2: [PageSegment(0, 4 * P, "pages-1.img", 0), PageSegment(4 * P, P, "pages-2.img", 0),
                PageSegment(6 * P, P, "pages-1.img", 6 * P), PageSegment(9 * P, P, "pages-2.img", P)],
        })
    parent = types.SimpleNamespace(pid=1, mm=parent_mm)
    pr = types.SimpleNamespace(pid=2, mm=child_mm, parent=parent, image=image)
    monkeypatch.setattr(cow.proc, "read_vmas", lambda pid: [types.SimpleNamespace(start=0, end=10 * P)])
    plan = cow.plan(pr)
    assert plan.kept == {0}
    assert plan.write == [PageSegment(4 * P, P, "pages-2.img", 0), PageSegment(9 * P, P, "pages-2.img", P)]
    assert plan.zap == [(5 * P, 6 * P), (7 * P, 8 * P)]


def test_plan_keeps_nothing_the_child_no_longer_has(monkeypatch):
    """A parent mapping not inherited (MADV_DONTFORK) is mapped fresh."""
    image = types.SimpleNamespace(pagemaps={2: mm_pb2.PageMap()}, page_segments={1: [], 2: []})
    pr = types.SimpleNamespace(pid=2, mm=mm_pb2.Mm(vmas=[vma(0, 8)]), image=image,
                               parent=types.SimpleNamespace(pid=1, mm=mm_pb2.Mm(vmas=[vma(0, 8)])))
    monkeypatch.setattr(cow.proc, "read_vmas", lambda pid: [types.SimpleNamespace(start=0, end=4 * P)])
    assert cow.plan(pr).kept == set()


def test_shmem_image_holds_runs_only(tmp_path):
    obj = tmp_path / "object"
    with open(obj, "wb") as f:
        f.truncate(1 << 30)
        f.seek(5 * P)
        f.write(b"a" * P)
        f.seek(900 << 20)
        f.write(b"b" * 2 * P)
    image = tmp_path / "shmem-1.img"
    shmem.save([(str(obj), 0, 512 << 20), (str(obj), 512 << 20, 1 << 30), (str(obj), 0, 8 * P)], image)
    runs = shmem.read_runs(image)
    assert [(o, n) for o, n, _ in runs] == [(5 * P, P), (900 << 20, 2 * P)]
    assert image.stat().st_size == runs[-1][2] + 2 * P
    data = image.read_bytes()
    assert data[runs[0][2]:runs[0][2] + P] == b"a" * P and data[runs[1][2]:] == b"b" * 2 * P


def test_shmem_image_refuses_another_format(tmp_path):
    image = tmp_path / "shmem-1.img"
    image.write_bytes(b"\0" * 100)
    with pytest.raises(ImageError, match="not a shared memory image"):
        shmem.read_runs(image)
