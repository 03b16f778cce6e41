"""Writing an image folder atomically and reading one only after checking it.

A dump writes into a hidden sibling folder and renames it into place once
every file and the manifest are on disk, so a folder with the final name is
always a whole image. A reader verifies sizes and checksums of every file
before handing out anything.
"""

import hashlib
import logging
import os
import shutil
import tempfile

from ..errors import ImageError, PyckptError
from . import FORMAT_VERSION, INVENTORY, MANIFEST, validate
from .proto import inventory_pb2

log = logging.getLogger(__name__)

_CHUNK = 1 << 20


def _sha256_of(path):
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while True:
            chunk = f.read(_CHUNK)
            if not chunk:
                return digest.digest(), size
            size += len(chunk)
            digest.update(chunk)


def _is_image_file(name):
    return name.endswith(".img") and name != MANIFEST


class ImageWriter:
    """Collects files in a temporary folder; `commit()` makes them an image."""

    def __init__(self, final_dir):
        self.final_dir = os.path.abspath(final_dir)
        if os.path.exists(self.final_dir):
            if not os.path.isdir(self.final_dir):
                raise ImageError(f"{final_dir} exists and is not a directory")
            if os.listdir(self.final_dir):
                raise ImageError(f"{final_dir} exists and is not empty; pyckpt never overwrites an image")
        parent = os.path.dirname(self.final_dir)
        if not os.path.isdir(parent):
            raise ImageError(f"cannot create {final_dir}: {parent} does not exist")
        self.dir = tempfile.mkdtemp(prefix=f".{os.path.basename(self.final_dir)}.partial-", dir=parent)
        os.chmod(self.dir, 0o700)   # pages and ghost files hold the process's secrets: the owner's only
        self.committed = False

    def path(self, name):
        return os.path.join(self.dir, name)

    def write_message(self, name, message):
        with open(self.path(name), "wb", opener=_private) as f:
            f.write(message.SerializeToString())

    def open_raw(self, name):
        """A file for bulk data (pages, ghost files); the caller closes it."""
        return open(self.path(name), "wb", buffering=0, opener=_private)

    def commit(self):
        manifest = inventory_pb2.Manifest()
        names = sorted(n for n in os.listdir(self.dir) if _is_image_file(n))
        if INVENTORY not in names:
            raise ImageError("internal error: no inventory written")
        for name in names:
            digest, size = _sha256_of(self.path(name))
            manifest.entries.add(name=name, size=size, sha256=digest)
            _fsync_path(self.path(name))
        self.write_message(MANIFEST, manifest)
        _fsync_path(self.path(MANIFEST))
        _fsync_path(self.dir)
        if os.path.isdir(self.final_dir):
            os.rmdir(self.final_dir)  # empty, checked in __init__
        os.rename(self.dir, self.final_dir)
        _fsync_path(os.path.dirname(self.final_dir))
        self.dir = self.final_dir
        self.committed = True

    def abort(self):
        if not self.committed and os.path.isdir(self.dir):
            shutil.rmtree(self.dir, ignore_errors=True)


def _private(path, flags):
    return os.open(path, flags, 0o600)


def _fsync_path(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class ImageReader:
    """An image folder, verified against its manifest when opened."""

    def __init__(self, image_dir, verify=True):
        self.dir = os.path.abspath(image_dir)
        if not os.path.isdir(self.dir):
            raise ImageError(f"{image_dir}: no such image folder")
        manifest_path = self.path(MANIFEST)
        if not os.path.exists(manifest_path):
            raise ImageError(f"{manifest_path}: missing; {image_dir} is not a complete pyckpt image")
        self.manifest = inventory_pb2.Manifest()
        try:
            with open(manifest_path, "rb") as f:
                self.manifest.ParseFromString(f.read())
        except Exception as err:  # protobuf raises DecodeError, a bare Exception subclass
            raise ImageError(f"{manifest_path}: corrupted ({err})") from err
        self.entries = {e.name: e for e in self.manifest.entries}
        if verify:
            self.verify()
        self._checks = validate.Context(self)
        self.inventory = self.read_message(INVENTORY, inventory_pb2.Inventory)
        self._checks.nsig = _signal_count(self.inventory.arch)
        if self.inventory.format_version != FORMAT_VERSION:
            raise ImageError(
                f"{self.path(INVENTORY)}: image format {self.inventory.format_version}, "
                f"this pyckpt reads format {FORMAT_VERSION}")

    def path(self, name):
        return os.path.join(self.dir, name)

    def verify(self):
        """Every file in the manifest is present, whole and unchanged."""
        if INVENTORY not in self.entries:
            raise ImageError(f"{self.path(MANIFEST)}: lists no inventory.img")
        for name, entry in sorted(self.entries.items()):
            path = self.path(name)
            if not os.path.exists(path):
                raise ImageError(f"{path}: missing from the image")
            actual_size = os.path.getsize(path)
            if actual_size != entry.size:
                raise ImageError(f"{path}: truncated or extended ({actual_size} bytes, manifest says {entry.size})")
            digest, _ = _sha256_of(path)
            if digest != entry.sha256:
                raise ImageError(f"{path}: corrupted (checksum does not match the manifest)")

    def has(self, name):
        return name in self.entries

    def read_message(self, name, cls):
        if name not in self.entries:
            raise ImageError(f"{self.path(name)}: missing from the image")
        message = cls()
        try:
            with open(self.path(name), "rb") as f:
                message.ParseFromString(f.read())
        except Exception as err:
            raise ImageError(f"{self.path(name)}: cannot be decoded ({err})") from err
        validate.check_message(message, self.path(name), self._checks)
        return message


def _signal_count(arch_name):
    from .. import arch
    try:
        return arch.by_name(arch_name).NSIG
    except PyckptError:
        return 64   # an unknown arch is refused by whoever needs it
