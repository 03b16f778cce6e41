"""pyckpt.images.store: a folder with an image's name is a whole image; a damaged one is refused by name."""

import filecmp
import os
import pathlib
import subprocess
import sys

import pytest

from sample_image import PID, write_tiny_image
from pyckpt import images
from pyckpt.errors import ImageError
from pyckpt.images.proto import core_pb2, inventory_pb2, mm_pb2
from pyckpt.images.store import ImageReader, ImageWriter

REPO = pathlib.Path(__file__).resolve().parents[2]
PROTO_DIR = REPO / "pyckpt" / "images" / "proto"


def _inventory():
    return inventory_pb2.Inventory(format_version=images.FORMAT_VERSION, arch="x86_64", page_size=4096)


def test_image_appears_under_its_name_only_at_commit(tmp_path):
    final = tmp_path / "img"
    writer = ImageWriter(final)
    writer.write_message(images.INVENTORY, _inventory())
    with writer.open_raw(images.pages(1)) as f:
        f.write(b"\1" * 4096)
    assert not final.exists()
    assert [p.name for p in tmp_path.iterdir()][0].startswith(".img.partial-")   # hidden while incomplete
    writer.commit()
    assert sorted(os.listdir(final)) == [images.INVENTORY, images.MANIFEST, images.pages(1)]
    assert os.listdir(tmp_path) == ["img"], "no partial folder left behind"
    reader = ImageReader(final)
    assert reader.inventory.arch == "x86_64"
    assert sorted(reader.entries) == [images.INVENTORY, images.pages(1)]


def test_aborted_image_leaves_nothing(tmp_path):
    writer = ImageWriter(tmp_path / "img")
    writer.write_message(images.INVENTORY, _inventory())
    writer.abort()
    assert os.listdir(tmp_path) == []


def test_commit_without_inventory_is_an_error(tmp_path):
    writer = ImageWriter(tmp_path / "img")
    with pytest.raises(ImageError, match="no inventory"):
        writer.commit()
    writer.abort()
    assert os.listdir(tmp_path) == []


def test_an_existing_empty_folder_is_used(tmp_path):
    (tmp_path / "img").mkdir()
    write_tiny_image(tmp_path / "img")
    assert ImageReader(tmp_path / "img").inventory.root_pid == PID


@pytest.mark.parametrize("setup,message", [
    (lambda d: (d.mkdir(), (d / "old.img").write_bytes(b"x")), "not empty"),
    (lambda d: d.write_bytes(b"x"), "not a directory"),
    (lambda d: None, "does not exist"),
], ids=["non-empty dir", "a file", "missing parent"])
def test_writer_refuses_a_target_it_would_clobber(tmp_path, setup, message):
    target = tmp_path / "img"
    setup(target)
    if message == "does not exist":
        target = tmp_path / "no" / "img"
    with pytest.raises(ImageError, match=message):
        ImageWriter(target)


# -- damage: every kind is refused before anything is read, and the message names the file ----------------


def _truncate(path):
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) - 1)


def _extend(path):
    with open(path, "ab") as f:
        f.write(b"\0")


def _flip_one_byte(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


DAMAGE = [
    ("manifest missing", images.MANIFEST, os.unlink, "missing"),
    ("manifest garbage", images.MANIFEST, lambda p: p.write_bytes(b"\xff\xff\xff"), "corrupted"),
    ("file missing", images.mm(PID), os.unlink, "missing"),
    ("pages missing", images.pages(PID), os.unlink, "missing"),
    ("truncated", images.pages(PID), _truncate, "truncated"),
    ("extended", images.core(PID), _extend, "truncated or extended"),
    ("one byte flipped in pages", images.pages(PID), _flip_one_byte, "checksum"),
    ("one byte flipped in a message", images.core(PID), _flip_one_byte, "checksum"),
    ("inventory flipped", images.INVENTORY, _flip_one_byte, "checksum"),
]


@pytest.mark.parametrize("name,damage,words", [d[1:] for d in DAMAGE], ids=[d[0] for d in DAMAGE])
def test_reader_refuses_a_damaged_image_naming_the_file(tiny_image, name, damage, words):
    path = pathlib.Path(tiny_image) / name
    damage(path)
    with pytest.raises(ImageError, match=words) as info:
        ImageReader(tiny_image)
    assert str(path) in str(info.value)
    assert info.value.exit_code == 4


def test_reader_refuses_a_missing_folder(tmp_path):
    with pytest.raises(ImageError, match="no such image folder") as info:
        ImageReader(tmp_path / "nope")
    assert "nope" in str(info.value)


def test_reader_refuses_another_format_version(tmp_path):
    writer = ImageWriter(tmp_path / "img")
    writer.write_message(images.INVENTORY, inventory_pb2.Inventory(format_version=images.FORMAT_VERSION + 1))
    writer.commit()
    with pytest.raises(ImageError, match=f"format {images.FORMAT_VERSION + 1}"):
        ImageReader(tmp_path / "img")


def test_reader_reads_back_what_was_written(tiny_image):
    reader = ImageReader(tiny_image)
    task = reader.read_message(images.core(PID), core_pb2.Task)
    assert task.threads[0].regs.x86_64.rip == 0x401000
    page_map = reader.read_message(images.pagemap(PID), mm_pb2.PageMap)
    assert [(r.vaddr, r.nr_pages) for r in page_map.runs] == [(0x600000, 2)]
    assert os.path.getsize(reader.path(page_map.pages_file)) == 2 * 4096
    with pytest.raises(ImageError, match="missing from the image"):
        reader.read_message(images.core(PID + 1), core_pb2.Task)


def test_unverified_reader_still_reads_a_damaged_image(tiny_image):
    _flip_one_byte(pathlib.Path(tiny_image) / images.pages(PID))
    assert ImageReader(tiny_image, verify=False).inventory.root_pid == PID


# -- generated code ------------------------------------------------------------------------------------


def test_every_proto_has_its_generated_module():
    protos = {p.stem for p in PROTO_DIR.glob("*.proto")}
    generated = {p.name[: -len("_pb2.py")] for p in PROTO_DIR.glob("*_pb2.py")}
    assert protos == generated and {"core", "files", "inventory", "mm", "regs"} <= protos


def test_generated_pb2_modules_are_up_to_date(tmp_path):
    try:
        import grpc_tools  # noqa: F401  (the dev extra; the version pins the generated header)
    except ImportError:
        pytest.fail("grpc_tools is not installed: pip install -e '.[dev]' (or `make protos` to regenerate)")
    protos = sorted(str(p.relative_to(REPO)) for p in PROTO_DIR.glob("*.proto"))
    subprocess.run([sys.executable, "-m", "grpc_tools.protoc", "-I", str(REPO), f"--python_out={tmp_path}",
                    *protos], check=True, cwd=REPO)
    stale = [p for p in protos if not filecmp.cmp(REPO / p.replace(".proto", "_pb2.py"),
                                                  tmp_path / p.replace(".proto", "_pb2.py"), shallow=False)]
    assert not stale, f"{stale}: generated code is stale; run `make protos` and commit the *_pb2.py"
