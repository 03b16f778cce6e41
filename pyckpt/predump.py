"""pre-dump: the memory of a process tree, taken while it is frozen only as long as needed.

The image holds the tree, each process's mappings and its private pages
(possibly only those changed since --prev-images-dir); it is a parent for a
later dump, never restored itself. Tracking of written pages is (re)started
while the tree is still frozen, so the next dump writes only what changed
after this one. The tree is thawed before the image is flushed to disk.
"""

import logging
import platform
import time

from . import __version__, images, incremental, pagemap, proc, tracking
from . import arch as archmod
from .dumper import _private_ranges, _refuse_io_uring, _vma_message
from .images.proto import files_pb2, inventory_pb2, mm_pb2
from .images.store import ImageWriter
from .oplog import log_to
from .options import DumpOptions
from .sources import open_source

log = logging.getLogger(__name__)


def pre_dump(pid, images_dir, options=None):
    """Pre-dump the tree rooted at `pid` into `images_dir`; the tree goes on. Returns a summary dict."""
    options = options or DumpOptions()
    writer = ImageWriter(images_dir)
    try:
        with log_to(writer.path(options.log_file)):
            return _pre_dump(pid, writer, options)
    except BaseException:
        writer.abort()
        raise


def _pre_dump(pid, writer, options):
    started = time.monotonic()
    source = open_source(options.backend, pid, options)
    parent = incremental.Parent(writer.final_dir, options.prev_images_dir) if options.prev_images_dir else None
    if options.track_mem:
        track = tracking.refuse_without(options.track_method, source.name)
    else:
        track, why = tracking.choose(options.track_method, source.name)
        if track in (None, tracking.COMPARE):
            log.info("not tracking written pages (%s): the next dump compares contents", why)
            track = None
    _refuse_io_uring(proc.process_tree(pid))
    pages = kept = 0
    with source:
        pids = source.freeze()
        frozen_at = time.monotonic()
        tracking.check_closable(source, pids)
        tree = files_pb2.PsTree()
        private = {}
        for p in pids:
            stat = proc.read_stat(p)
            tree.processes.add(pid=p, ppid=stat.ppid, pgid=stat.pgid, sid=stat.sid)
            vmas = source.vmas(p)
            mm = mm_pb2.Mm()
            for vma in tracking.untracked(vmas):
                _vma_message(mm.vmas.add(), p, vma, f"process {p} mapping {vma.start:#x}-{vma.end:#x} "
                             f"{vma.path or '(anonymous)'}")
            private[p] = _private_ranges(vmas, mm)
            ranges, in_parent = private[p], []
            if parent is not None:
                ranges, in_parent = parent.split(p, ranges, vmas, options.track_method)
            with writer.open_raw(images.pages(p)) as out:
                runs = source.dump_pages(p, ranges, out)
            page_map = mm_pb2.PageMap(pages_file=images.pages(p), start_time=tracking.start_time(p))
            for run in runs:
                page_map.runs.add(vaddr=run.vaddr, nr_pages=run.nr_pages)
            for vaddr, nr_pages in in_parent:
                page_map.in_parent.add(vaddr=vaddr, nr_pages=nr_pages)
            pages += sum(r.nr_pages for r in runs)
            kept += sum(n for _, n in in_parent)
            writer.write_message(images.mm(p), mm)
            writer.write_message(images.pagemap(p), page_map)
        track = tracking.restart(source, pids, track, private)
        source.release(kill=False)
    thawed_at = time.monotonic()
    arch = archmod.host()
    writer.write_message(images.PSTREE, tree)
    writer.write_message(images.INVENTORY, inventory_pb2.Inventory(
        format_version=images.FORMAT_VERSION, arch=arch.NAME, byteorder=arch.BYTEORDER,
        kernel_release=platform.release(), backend=source.name, created=time.time(), root_pid=pid,
        pyckpt_version=__version__, page_size=pagemap.PAGE_SIZE, pre_dump=True,
        parent=parent.relative if parent else "", parent_manifest=parent.manifest_sha if parent else b"",
        tracking=track or ""))
    writer.commit()
    incremental.remember(writer.final_dir, pids, track)
    summary = {"pid": pid, "pids": pids, "backend": source.name, "images": writer.final_dir, "pages": pages,
               "in_parent_pages": kept, "tracking": track or "", "frozen_s": thawed_at - frozen_at,
               "total_s": time.monotonic() - started}
    log.info("pre-dump complete: %s", summary)
    return summary
