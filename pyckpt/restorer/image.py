"""The image as restore sees it: read and checked whole before anything is
created (Image), where each saved page is (page_segments), and the checks
against this machine that need nothing created (preflight)."""

import bisect
import collections
import os

from .. import arch as archmod
from .. import images, incremental, proc, sysvipc, vdso
from ..errors import ImageError, RestoreConflict, UnsupportedArch
from ..files import pty as pty_files
from ..files import regular as regular_files
from ..files import inet, unix
from ..images.proto import core_pb2, files_pb2, ipc_pb2, mm_pb2
from ..images import relations
from ..images.store import ImageReader
from ..pagemap import PAGE_SIZE
from . import creds, seccomp


class Image:
    """Everything read from an image folder, checked before anything is created."""

    def __init__(self, image_dir):
        self.reader = ImageReader(image_dir)
        inv = self.reader.inventory
        self.inventory = inv
        if inv.pre_dump:
            raise ImageError(f"{image_dir} is a pre-dump (memory only): restore a dump taken after it")
        try:
            self.arch = archmod.by_name(inv.arch)
        except UnsupportedArch as err:
            raise ImageError(f"{self.reader.path(images.INVENTORY)}: arch: {err}") from None
        host = archmod.host()
        if self.arch is not host:
            raise ImageError(f"{self.reader.path(images.INVENTORY)}: image was taken on {inv.arch}; "
                             f"this machine is {host.NAME}")
        if inv.page_size != PAGE_SIZE:
            raise ImageError(f"{self.reader.path(images.INVENTORY)}: image uses {inv.page_size}-byte pages; "
                             f"this kernel uses {PAGE_SIZE}")
        read = self.reader.read_message
        self.tree = read(images.PSTREE, files_pb2.PsTree)
        files = read(images.FILES, files_pb2.Files)
        self.files_list, self.pipes_list = files.files, files.pipes
        self.files = {f.id: f for f in files.files}
        self.pipes = {p.id: p for p in files.pipes}
        self.ipc = read(images.IPC, ipc_pb2.Ipc) if self.reader.has(images.IPC) else ipc_pb2.Ipc()
        self.memfds = {m.id: m for m in self.ipc.memfds}
        self.ptys = {p.index: p for p in files.ptys}
        self.tcp_block = files.tcp_block  # nft table the dump left: lifted once restore is over
        self.tasks, self.mms, self.pagemaps, self.fds = {}, {}, {}, {}
        for entry in self.tree.processes:
            pid = entry.pid
            if entry.zombie:
                continue
            self.tasks[pid] = read(images.core(pid), core_pb2.Task)
            self.mms[pid] = read(images.mm(pid), mm_pb2.Mm)
            self.pagemaps[pid] = read(images.pagemap(pid), mm_pb2.PageMap)
            self.fds[pid] = read(images.fds(pid), files_pb2.FdTable)
        if not self.tree.processes:
            raise ImageError(f"{self.reader.path(images.PSTREE)}: lists no process")
        relations.check_image(self)
        for pid, task in self.tasks.items():
            seccomp.check_filters(task, self.reader.path(images.core(pid)))
        self.page_segments = page_segments(self.tree, self.pagemaps, incremental.parent_segments(self.reader))

    def path(self, name):
        return self.reader.path(name)

    @property
    def has_seccomp(self):
        return any(task.seccomp_filters or any(th.seccomp_mode for th in task.threads)
                   for task in self.tasks.values())




def preflight(image, options):
    """Everything that can be checked without touching the machine."""
    creds.check_caller_may_restore(image)
    creds.check_rlimits(image)
    for entry in image.tree.processes:
        if proc.exists(entry.pid):
            raise RestoreConflict(f"PID {entry.pid} is in use by process {proc.holder_description(entry.pid)}")
    for pid, mm in image.mms.items():
        for vma in mm.vmas:
            if vma.kind in (mm_pb2.Vma.FILE_PRIVATE, mm_pb2.Vma.FILE_SHARED) and vma.deleted_file:
                ghost = image.files.get(vma.deleted_file)
                if ghost is None or not ghost.HasField("deleted"):
                    raise ImageError(f"mapping {vma.start:#x}-{vma.end:#x} of process {pid}: no deleted file "
                                     f"{vma.deleted_file} in {images.FILES}")
            elif vma.kind in (mm_pb2.Vma.FILE_PRIVATE, mm_pb2.Vma.FILE_SHARED):
                _check_same_file(vma.file, f"mapping {vma.start:#x}-{vma.end:#x} of process {pid}")
        _check_same_file(mm.exe, f"executable of process {pid}")
    here = vdso.identity(os.getpid())
    for pid, mm in image.mms.items():
        if mm.vdso and mm.vdso != here:
            raise RestoreConflict(
                f"process {pid} was using another kernel's vDSO ({mm.vdso}; this kernel's: {here or 'none'}): "
                f"restore on the kernel it was dumped on ({image.inventory.kernel_release})")
    sysvipc.check_free(image.ipc)
    for entry in image.files.values():
        if entry.kind == files_pb2.OpenFile.TTY and not options.shell_job:
            raise RestoreConflict(f"the image holds a terminal ({entry.file.path}); restore with --shell-job")
        if entry.kind in (files_pb2.OpenFile.REGULAR, files_pb2.OpenFile.DIRECTORY,
                          files_pb2.OpenFile.CHARDEV, files_pb2.OpenFile.FIFO) and not entry.ghost:
            regular_files.check_file(entry, f"open file {entry.file.path}")
    unix.preflight(image, options)
    inet.preflight(image)
    pty_files.check_free(image)


def _check_same_file(ref, what):
    try:
        st = os.stat(ref.path)
    except OSError as err:
        raise RestoreConflict(f"{what}: {ref.path}: {err.strerror}") from None
    if st.st_size != ref.size or st.st_mtime_ns != ref.mtime_ns:
        raise RestoreConflict(
            f"{what}: {ref.path} changed since the dump (size {ref.size} -> {st.st_size}, "
            f"mtime {ref.mtime_ns} -> {st.st_mtime_ns}); restoring would map different code or data")



PageSegment = collections.namedtuple("PageSegment", "vaddr nbytes pages_file offset")


def page_segments(tree, pagemaps, in_parent=None):
    """pid -> [PageSegment] by address: where in which pages image each saved
    page of the process is. Inherited runs (copy-on-write shared with the
    parent at dump time) resolve through the parent's segments, so a page is
    stored once for the whole tree; in_parent runs (incremental images)
    through `in_parent`, the parent image's segments (incremental.py). A run
    nothing resolves is a damaged image."""
    parents = {e.pid: e.ppid for e in tree.processes}
    resolved = {}

    def segments_of(pid, chain=()):
        if pid in resolved:
            return resolved[pid]
        if pid in chain:
            raise ImageError(f"pagemap-{pid}.img: inherited pages loop through processes {chain}")
        page_map = pagemaps[pid]
        out, offset = [], 0
        for run in page_map.runs:
            out.append(PageSegment(run.vaddr, run.nr_pages * PAGE_SIZE, page_map.pages_file, offset))
            offset += run.nr_pages * PAGE_SIZE
        if page_map.inherited:
            parent = parents.get(pid)
            if parent not in pagemaps:
                raise ImageError(f"pagemap-{pid}.img: pages inherited from process {parent}, "
                                 "which has no memory image")
            theirs = segments_of(parent, chain + (pid,))
            for run in page_map.inherited:
                out.extend(_slice_segments(theirs, run.vaddr, run.nr_pages * PAGE_SIZE, pid, parent))
        for run in page_map.in_parent:
            held = (in_parent or {}).get(pid)
            if held is None:
                raise ImageError(f"pagemap-{pid}.img: pages kept in the parent image, which has none of process {pid}")
            out.extend(_slice_segments(held, run.vaddr, run.nr_pages * PAGE_SIZE, pid, "the parent image"))
        out.sort(key=lambda g: g.vaddr)
        resolved[pid] = out
        return out

    return {pid: segments_of(pid) for pid in pagemaps}


def _slice_segments(segments, vaddr, nbytes, pid, parent):
    """The part of sorted `segments` covering [vaddr, vaddr + nbytes), which must be covered whole."""
    starts = [g.vaddr for g in segments]
    i = max(bisect.bisect_right(starts, vaddr) - 1, 0)
    out, cursor, end = [], vaddr, vaddr + nbytes
    while cursor < end and i < len(segments):
        g = segments[i]
        if g.vaddr <= cursor < g.vaddr + g.nbytes:
            take = min(end, g.vaddr + g.nbytes) - cursor
            out.append(PageSegment(cursor, take, g.pages_file, g.offset + (cursor - g.vaddr)))
            cursor += take
        elif g.vaddr > cursor:
            break
        i += 1
    if cursor < end:
        source = parent if isinstance(parent, str) else f"process {parent}"
        raise ImageError(f"pagemap-{pid}.img: page {cursor:#x} is inherited from {source}, "
                         "whose image does not hold it")
    return out

