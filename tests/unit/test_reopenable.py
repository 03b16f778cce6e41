"""files/reopenable.py: dump refuses, naming the fd or mapping, whatever restore could not reopen."""

import os

import pytest

from pyckpt.errors import UnsupportedState
from pyckpt.files import reopenable
from pyckpt.files.ghost import TMPFILE_BIT
from pyckpt.files.regular import file_ref
from pyckpt.images.proto import files_pb2, mm_pb2

K = files_pb2.OpenFile


def _files(*entries):
    files = files_pb2.Files()
    files.files.extend(entries)
    return files


def _regular(path, **kw):
    entry = K(id=1, kind=K.REGULAR, **kw)
    file_ref(entry.file, path, os.stat(path))
    return entry


def _replace(f):
    """Another file at f's path (the old one kept linked, so its inode number is not reused)."""
    os.link(f, f.with_name(f.name + ".old"))
    new = f.with_name(f.name + ".new")
    new.write_text("y")
    os.replace(new, f)


def _check(*entries, mms=None):
    reopenable.check(_files(*entries), {1: "process 7 fd 9 (x)"}, mms or {})


def test_a_file_that_is_still_there_passes(tmp_path):
    f = tmp_path / "f"
    f.write_text("x")
    _check(_regular(str(f), flags=os.O_RDWR))


def test_path_now_naming_another_file_is_refused(tmp_path):
    f = tmp_path / "f"
    f.write_text("x")
    entry = _regular(str(f))
    _replace(f)
    with pytest.raises(UnsupportedState, match="process 7 fd 9.*now leads to another file"):
        _check(entry)


def test_vanished_path_is_refused(tmp_path):
    f = tmp_path / "f"
    f.write_text("x")
    entry = _regular(str(f))
    f.unlink()
    with pytest.raises(UnsupportedState, match="fd 9.*no longer leads to it"):
        _check(entry)


def test_name_removed_but_file_linked_elsewhere_is_refused(tmp_path):
    f = tmp_path / "f"
    f.write_text("x")
    entry = _regular(str(f))
    entry.file.path += " (deleted)"
    with pytest.raises(UnsupportedState, match="opened through a name since removed"):
        _check(entry)


def test_tmpfile_flags_on_a_named_file_are_refused(tmp_path):
    f = tmp_path / "f"
    f.write_text("x")
    with pytest.raises(UnsupportedState, match="O_TMPFILE"):
        _check(_regular(str(f), flags=os.O_RDWR | TMPFILE_BIT | os.O_DIRECTORY))


def test_deleted_file_needs_its_saved_contents(tmp_path):
    f = tmp_path / "f"
    f.write_text("x")
    entry = _regular(str(f))
    entry.deleted.extents.add(offset=0, length=1)
    with pytest.raises(UnsupportedState, match="contents are not saved"):
        _check(entry)
    entry.ghost = "ghost-1.img"
    _check(entry)


def test_unknown_kind_is_refused(tmp_path):
    with pytest.raises(UnsupportedState, match="cannot reopen"):
        _check(K(id=1, kind=99))


def test_other_device_is_refused():
    entry = K(id=1, kind=K.CHARDEV, rdev=os.stat("/dev/null").st_rdev + 1)
    file_ref(entry.file, "/dev/null", os.stat("/dev/null"))
    with pytest.raises(UnsupportedState, match="another device"):
        _check(entry)


def test_replaced_mapped_file_is_refused(tmp_path):
    f = tmp_path / "lib.so"
    f.write_text("x")
    mm = mm_pb2.Mm()
    file_ref(mm.exe, "/proc/self/exe", os.stat("/proc/self/exe"))
    mm.exe.path = os.path.realpath("/proc/self/exe")
    vma = mm.vmas.add(start=0x1000, end=0x2000, kind=mm_pb2.Vma.FILE_PRIVATE)
    file_ref(vma.file, str(f), os.stat(f))
    _check(mms={5: mm})
    _replace(f)
    with pytest.raises(UnsupportedState, match="process 5 mapping 0x1000-0x2000"):
        _check(mms={5: mm})


def test_mapping_of_a_layer_file_under_a_stacked_path_passes_if_unchanged(tmp_path):
    """overlayfs: a mapping's map_files is the layer's file (another device) than its path's."""
    f = tmp_path / "lib.so"
    f.write_text("x")
    mm = mm_pb2.Mm()
    file_ref(mm.exe, os.path.realpath("/proc/self/exe"), os.stat("/proc/self/exe"))
    vma = mm.vmas.add(start=0x1000, end=0x2000, kind=mm_pb2.Vma.FILE_PRIVATE)
    file_ref(vma.file, str(f), os.stat(f))
    vma.file.dev += 1
    vma.file.ino += 1
    _check(mms={5: mm})
    vma.file.mtime_ns += 1
    with pytest.raises(UnsupportedState, match="process 5 mapping 0x1000-0x2000"):
        _check(mms={5: mm})
