"""Incremental images: where a page kept in the parent image is read from, and how the
tracking method is picked."""

import pytest

from pyckpt import tracking
from pyckpt.errors import ImageError
from pyckpt.images.proto import files_pb2, mm_pb2
from pyckpt.pagemap import PAGE_SIZE as P
from pyckpt.restorer.image import PageSegment, page_segments


def _tree(*pid_ppid):
    return files_pb2.PsTree(processes=[files_pb2.ProcessEntry(pid=p, ppid=pp) for p, pp in pid_ppid])


def _run(vaddr, pages):
    return mm_pb2.PageRun(vaddr=vaddr, nr_pages=pages)


def test_in_parent_runs_resolve_through_the_parent_image():
    """Own runs from this image, kept runs sliced out of the parent image's segments."""
    parent = {1: [PageSegment(16 * P, 8 * P, "/img/1/pages-1.img", 0)]}
    maps = {1: mm_pb2.PageMap(pages_file="pages-1.img", runs=[_run(18 * P, 1)],
                              in_parent=[_run(16 * P, 2), _run(19 * P, 3)])}
    assert page_segments(_tree((1, 0)), maps, parent)[1] == [
        PageSegment(16 * P, 2 * P, "/img/1/pages-1.img", 0),
        PageSegment(18 * P, P, "pages-1.img", 0),
        PageSegment(19 * P, 3 * P, "/img/1/pages-1.img", 3 * P)]


def test_inherited_pages_of_a_child_resolve_into_the_parent_image():
    """A child's copy-on-write pages come from its parent process, whose pages are in the parent image."""
    parent = {1: [PageSegment(16 * P, 4 * P, "/img/1/pages-1.img", 0)]}
    maps = {1: mm_pb2.PageMap(pages_file="pages-1.img", in_parent=[_run(16 * P, 4)]),
            2: mm_pb2.PageMap(pages_file="pages-2.img", inherited=[_run(17 * P, 2)])}
    assert page_segments(_tree((1, 0), (2, 1)), maps, parent)[2] == [
        PageSegment(17 * P, 2 * P, "/img/1/pages-1.img", P)]


@pytest.mark.parametrize("parent", [None, {}, {1: [PageSegment(16 * P, P, "/img/1/pages-1.img", 0)]}])
def test_in_parent_runs_the_parent_does_not_hold_are_a_damaged_image(parent):
    maps = {1: mm_pb2.PageMap(pages_file="pages-1.img", in_parent=[_run(16 * P, 2)])}
    with pytest.raises(ImageError, match="parent image"):
        page_segments(_tree((1, 0)), maps, parent)


@pytest.mark.parametrize("found,requested,backend,expected", [
    ({"uffd-wp": True, "soft-dirty": True}, "auto", "ptrace", "uffd-wp"),
    ({"uffd-wp": True, "soft-dirty": True}, "auto", "kmod", "soft-dirty"),   # kmod cannot inject
    ({"uffd-wp": False, "soft-dirty": True}, "auto", "ptrace", "soft-dirty"),
    ({"uffd-wp": False, "soft-dirty": False}, "auto", "ptrace", None),
    ({"uffd-wp": True, "soft-dirty": False}, "soft-dirty", "ptrace", None),
    ({"uffd-wp": True, "soft-dirty": True}, "compare", "ptrace", "compare"),
])
def test_tracking_method_picked(monkeypatch, found, requested, backend, expected):
    monkeypatch.setattr(tracking, "_probed", {m: (ok, "why") for m, ok in found.items()})
    assert tracking.choose(requested, backend)[0] == expected
    if expected in (None, "compare"):
        with pytest.raises(tracking.UnsupportedState, match="--track-mem"):
            tracking.refuse_without(requested, backend)
