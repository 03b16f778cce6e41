"""Incremental images: a chain of parents, and which pages a dump may leave in its parent.

An image taken with --prev-images-dir names its parent in the inventory by
a path relative to its own folder (CRIU's convention: --prev-images-dir is
relative to -D) together with the sha256 of the parent's manifest.img, and
lists per process the runs of pages still as the parent holds them
(PageMap.in_parent). Every reader (restore, check-image, show, the next
dump) opens the whole chain, each image verified against its manifest and
against the checksum its child recorded, and refuses a missing or changed
parent by name before anything is created.

A page may stay in the parent when the same process (pid and start time)
had it in the parent image, it is present now, and it was not written since
(tracking.changed_runs) or, without tracking, its contents equal the
parent's copy (compared in 4 MiB runs). Everything else is written.
"""

import hashlib
import logging
import os

from . import images, pagemap, tracking
from .errors import ImageError
from .images.proto import files_pb2, mm_pb2
from .images.store import ImageReader
from .ranges import Range, intersect, merge, subtract

log = logging.getLogger(__name__)

_CHUNK = 4 << 20


def manifest_sha(reader):
    with open(reader.path(images.MANIFEST), "rb") as f:
        return hashlib.sha256(f.read()).digest()


def _parent_of(reader, seen):
    """The verified parent reader of `reader`, or None; refuses a missing or changed one."""
    rel = reader.inventory.parent
    if not rel:
        return None
    where = os.path.normpath(os.path.join(reader.dir, rel))
    if not os.path.isdir(where):
        raise ImageError(f"{reader.dir}: its parent image {where} (\"{rel}\") is missing")
    if os.path.realpath(where) in seen:
        raise ImageError(f"{reader.dir}: its chain of parent images loops back to {where}")
    try:
        parent = ImageReader(where)
    except ImageError as err:
        raise ImageError(f"{reader.dir}: its parent image is unusable: {err}") from err
    if manifest_sha(parent) != reader.inventory.parent_manifest:
        raise ImageError(f"{reader.dir}: its parent image {where} changed since this image was taken "
                         "(its manifest checksum differs)")
    inv, pinv = reader.inventory, parent.inventory
    if (pinv.arch, pinv.page_size) != (inv.arch, inv.page_size):
        raise ImageError(f"{reader.dir}: its parent image {where} is of another machine ({pinv.arch})")
    return parent


def chain(reader):
    """[reader, its parent, grandparent, ...], every one verified."""
    out, seen = [reader], {os.path.realpath(reader.dir)}
    while (parent := _parent_of(out[-1], seen)) is not None:
        seen.add(os.path.realpath(parent.dir))
        out.append(parent)
    return out


def _pagemaps(reader):
    tree = reader.read_message(images.PSTREE, files_pb2.PsTree)
    maps = {e.pid: reader.read_message(images.pagemap(e.pid), mm_pb2.PageMap)
            for e in tree.processes if not e.zombie}
    return tree, maps


def parent_segments(reader):
    """pid -> [PageSegment] of the parent image of `reader` ({} without one), pages files by
    absolute path, resolved down the whole chain."""
    from .restorer.image import page_segments
    readers = chain(reader)
    segments = {}
    for older in reversed(readers[1:]):
        tree, maps = _pagemaps(older)
        resolved = page_segments(tree, maps, segments)
        segments = {pid: [g._replace(pages_file=older.path(g.pages_file)) for g in segs]
                    for pid, segs in resolved.items()}
    return segments


def describe_chain(reader, tree):
    """For `pyckpt show`: ([{image, pre_dump, tracking}] newest first, pid -> {image folder: pages}
    of the pages each image of the chain holds for the process)."""
    from .restorer.image import page_segments
    readers = chain(reader)
    images_of = [{"image": r.dir, "pre_dump": r.inventory.pre_dump, "tracking": r.inventory.tracking}
                 for r in readers]
    maps = {e.pid: reader.read_message(images.pagemap(e.pid), mm_pb2.PageMap)
            for e in tree.processes if not e.zombie}
    where = {}
    for pid, segs in page_segments(tree, maps, parent_segments(reader)).items():
        counts = where.setdefault(pid, {})
        for g in segs:
            folder = os.path.dirname(reader.path(g.pages_file))
            counts[folder] = counts.get(folder, 0) + g.nbytes // pagemap.PAGE_SIZE
    return images_of, where


class Parent:
    """The image a dump with --prev-images-dir builds on; checked before anything is frozen."""

    def __init__(self, images_dir, prev):
        self.dir = os.path.normpath(os.path.join(images_dir, prev))
        if not os.path.isdir(self.dir):
            raise ImageError(f"--prev-images-dir {prev}: no image at {self.dir}")
        try:
            self.reader = ImageReader(self.dir)
        except ImageError as err:
            raise ImageError(f"--prev-images-dir {prev}: {err}") from err
        self.relative = os.path.relpath(self.dir, images_dir)
        self.manifest_sha = manifest_sha(self.reader)
        # the whole chain, verified, then this image's own pages on top
        self.segments = parent_segments(self.reader)
        from .restorer.image import page_segments
        tree, self.pagemaps = _pagemaps(self.reader)
        own = page_segments(tree, self.pagemaps, self.segments)
        self.segments = {pid: [g._replace(pages_file=self.reader.path(g.pages_file)) for g in segs]
                         for pid, segs in own.items()}

    def held(self, pid):
        """Merged ranges of the pages the parent holds for this very process (none for a new
        process, or another one that got the same pid)."""
        page_map = self.pagemaps.get(pid)
        if page_map is None or page_map.start_time != tracking.start_time(pid):
            return []
        return merge([(g.vaddr, g.vaddr + g.nbytes) for g in self.segments[pid]])

    def split(self, pid, ranges, vmas, requested_method):
        """(ranges to write, [(vaddr, nr_pages)] left in the parent) for the private `ranges`."""
        held = self.held(pid)
        if not held:
            return ranges, []
        present = merge([(v, v + n * pagemap.PAGE_SIZE) for v, n in pagemap.data_runs(pid, ranges)])
        candidates = intersect(present, held)
        method = None if requested_method == tracking.COMPARE else \
            tracking.usable_since(pid, self.dir, self.manifest_sha)
        if method is None:
            log.info("process %d: no write tracking since %s: comparing page contents with it (slower)",
                     pid, self.dir)
            clean = self._same_contents(pid, candidates)
        else:
            clean = subtract(candidates, tracking.changed_runs(pid, candidates, method, vmas))
        kept = [(s, (e - s) // pagemap.PAGE_SIZE) for s, e in clean]
        log.info("process %d: %d pages left in the parent image (%s), %d to look at",
                 pid, sum(n for _, n in kept), method or "compared", sum((e - s) // pagemap.PAGE_SIZE
                                                                         for s, e in ranges))
        return subtract(ranges, clean), kept

    def _same_contents(self, pid, candidates):
        """Ranges of `candidates` whose pages equal the parent's copy, compared in large runs."""
        from .restorer.image import _slice_segments
        same, files = [], {}
        mem = os.open(f"/proc/{pid}/mem", os.O_RDONLY)
        try:
            for start, end in candidates:
                for seg in _slice_segments(self.segments[pid], start, end - start, pid, pid):
                    if seg.pages_file not in files:
                        files[seg.pages_file] = os.open(seg.pages_file, os.O_RDONLY)
                    done = 0
                    while done < seg.nbytes:
                        n = min(_CHUNK, seg.nbytes - done)
                        mine = _pread(mem, n, seg.vaddr + done)
                        theirs = os.pread(files[seg.pages_file], n, seg.offset + done)
                        if mine == theirs:
                            same.append(Range(seg.vaddr + done, seg.vaddr + done + n))
                        elif len(mine) == n and len(theirs) == n:
                            same.extend(_same_pages(mine, theirs, seg.vaddr + done))
                        done += n
        finally:
            os.close(mem)
            for fd in files.values():
                os.close(fd)
        return merge(same)


def _pread(fd, n, offset):
    try:
        return os.pread(fd, n, offset)
    except OSError:
        return b""     # unreadable (e.g. a guard page): counts as changed, the dump reports it


def _same_pages(a, b, vaddr):
    page = pagemap.PAGE_SIZE
    return [Range(vaddr + i, vaddr + i + page) for i in range(0, len(a), page) if a[i:i + page] == b[i:i + page]]


def remember(image_dir, pids, method):
    """Once the image is whole: the tracking bits of `pids` count from it."""
    if method:
        sha = manifest_sha(ImageReader(image_dir, verify=False))
        for p in pids:
            tracking.remember(p, image_dir, sha, method)
