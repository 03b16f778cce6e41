"""pyckpt merge: an incremental image and its chain of parents made one standalone image.

Each process's pages come together in its own pages file (its runs and the
pages it kept in the parents, by address; pages shared copy-on-write with
its parent process stay shared); every other file is copied as it is. The
parents are left alone: once the merged image exists they may be removed.
"""

import os
import shutil

from . import images, incremental
from .errors import ImageError
from .images.proto import files_pb2, inventory_pb2, mm_pb2
from .images.store import ImageReader, ImageWriter
from .pagemap import PAGE_SIZE

_COPY = 64 << 20


def merge(image_dir, out_dir):
    """Write the standalone equivalent of `image_dir` into `out_dir`; returns the number of pages."""
    reader = ImageReader(image_dir)
    above = incremental.parent_segments(reader)     # verifies the whole chain
    tree = reader.read_message(images.PSTREE, files_pb2.PsTree)
    writer = ImageWriter(out_dir)
    try:
        pages = 0
        rewritten = {images.INVENTORY}
        for entry in tree.processes:
            if entry.zombie:
                continue
            page_map = reader.read_message(images.pagemap(entry.pid), mm_pb2.PageMap)
            pages += _flatten(reader, writer, entry.pid, page_map, above.get(entry.pid, []))
            rewritten.update((images.pagemap(entry.pid), page_map.pages_file))
        for name in reader.entries:
            if name not in rewritten:
                shutil.copyfile(reader.path(name), writer.path(name))
        inventory = inventory_pb2.Inventory()
        inventory.CopyFrom(reader.inventory)
        inventory.ClearField("parent")
        inventory.ClearField("parent_manifest")
        inventory.ClearField("tracking")     # the tracking bits count from the image merged, not this copy
        writer.write_message(images.INVENTORY, inventory)
        writer.commit()
        return pages
    except BaseException:
        writer.abort()
        raise


def _flatten(reader, writer, pid, page_map, held_above):
    """The process's own runs and its in_parent runs, in one pages file by address."""
    from .restorer.image import PageSegment, _slice_segments
    segments, offset = [], 0
    for run in page_map.runs:
        segments.append(PageSegment(run.vaddr, run.nr_pages * PAGE_SIZE, reader.path(page_map.pages_file), offset))
        offset += run.nr_pages * PAGE_SIZE
    for run in page_map.in_parent:
        if not held_above:
            raise ImageError(f"{reader.path(images.pagemap(pid))}: pages kept in a parent image that has none "
                             f"of process {pid}")
        segments.extend(_slice_segments(held_above, run.vaddr, run.nr_pages * PAGE_SIZE, pid, "the parent image"))
    segments.sort(key=lambda g: g.vaddr)
    merged = mm_pb2.PageMap()
    merged.CopyFrom(page_map)
    merged.ClearField("runs")
    merged.ClearField("in_parent")
    files = {}
    try:
        with writer.open_raw(page_map.pages_file) as out:
            for g in segments:
                if g.pages_file not in files:
                    files[g.pages_file] = os.open(g.pages_file, os.O_RDONLY)
                _copy_range(files[g.pages_file], g.offset, g.nbytes, out.fileno())
                last = merged.runs[-1] if merged.runs else None
                if last is not None and last.vaddr + last.nr_pages * PAGE_SIZE == g.vaddr:
                    last.nr_pages += g.nbytes // PAGE_SIZE
                else:
                    merged.runs.add(vaddr=g.vaddr, nr_pages=g.nbytes // PAGE_SIZE)
    finally:
        for fd in files.values():
            os.close(fd)
    writer.write_message(images.pagemap(pid), merged)
    return sum(r.nr_pages for r in merged.runs)


def _copy_range(src, offset, nbytes, dst):
    """The kernel copies (copy_file_range), in large runs; the file position of dst advances."""
    while nbytes:
        n = os.copy_file_range(src, dst, min(nbytes, _COPY), offset)
        if n <= 0:
            raise ImageError(f"short copy from a pages file at offset {offset}")
        offset += n
        nbytes -= n
