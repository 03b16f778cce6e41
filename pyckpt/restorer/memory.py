"""Memory of a restored process: every mapping at its old address with its old
backing and protection, filled from the pages images by the kernel itself
(injected preadv, never page by page through Python), the vDSO moved to where
the image had it, and the mm fields (brk, args, auxv, exe) set with PR_SET_MM."""

import os
import struct

from .. import images, linux, proc, shmem, sysvipc, vdso
from ..errors import ImageError, PyckptError, RestoreConflict
from ..files import ghost, memfd
from ..images.proto import mm_pb2
from . import cow, vmflags

PROT_READ, PROT_WRITE, PROT_EXEC = 1, 2, 4
PR_SET_MM = 35
PR_SET_MM_MAP = 14
IOV_MAX = 1024
MAX_RW = 0x7FFFF000            # the kernel's MAX_RW_COUNT: one preadv reads at most this


def restore_memory(pr):
    """A forked process first keeps what it shares with its parent (cow.py) and drops the rest."""
    arch, inj, scratch = pr.arch, pr.inj, pr.scratch
    inherited = cow.plan(pr)
    if pr.parent is not None:
        _unmap_parent_memory(pr, inherited.kept)
    segments = inherited.write
    filled = vmas_with_data(pr.mm.vmas, segments)
    unaccounted = {i for i in filled if vmflags.fill_without_write(pr.mm.vmas[i])}
    file_fds = {}
    try:
        for index, vma in enumerate(pr.mm.vmas):
            if vma.kind in (mm_pb2.Vma.VDSO, mm_pb2.Vma.VSYSCALL):
                continue
            prot = vma.prot | (PROT_READ | PROT_WRITE if index in filled - unaccounted else 0)
            length = vma.end - vma.start
            where = f"mapping {vma.start:#x}-{vma.end:#x} {vma.name or vma.file.path or '(anonymous)'}"
            if index in inherited.kept:
                inj.call("mprotect", vma.start, length, prot, detail=f"{where} (kept from the parent)")
                continue
            if vma.kind == mm_pb2.Vma.SHMEM:
                _map_shmem(pr, vma, where)
                continue
            if vma.kind in (mm_pb2.Vma.MEMFD_SHARED, mm_pb2.Vma.MEMFD_PRIVATE):
                _map_memfd(pr, vma, prot, where)
                continue
            if vma.kind == mm_pb2.Vma.SYSV_SHM:
                _attach_sysv_shm(pr, vma, where)
                continue
            if vma.kind == mm_pb2.Vma.ANON:
                flags = vmflags.mmap_flags(arch, vma, arch.MAP_PRIVATE) | arch.MAP_ANONYMOUS | arch.MAP_FIXED
                if vma.growsdown:
                    flags |= arch.MAP_GROWSDOWN
                inj.call("mmap", vma.start, length, prot, flags, -1, 0, detail=where)
                continue
            shared = vma.kind == mm_pb2.Vma.FILE_SHARED
            writable = shared and vma.may_write
            key = (vma.deleted_file or vma.file.path, writable)
            if key not in file_fds and vma.deleted_file:
                file_fds[key] = ghost.open_for_mapping(pr, pr.image.files[vma.deleted_file], writable, where)
            if key not in file_fds:
                scratch.reset()
                path = scratch.put_str(vma.file.path)
                # O_NOATIME: mmap through it would touch the file's atime
                flags = (os.O_RDWR if writable else os.O_RDONLY) | os.O_NOATIME
                file_fds[key] = inj.call("openat", linux.AT_FDCWD, path, flags | os.O_CLOEXEC, 0, detail=vma.file.path)
            flags = vmflags.mmap_flags(arch, vma, arch.MAP_SHARED if shared else arch.MAP_PRIVATE) | arch.MAP_FIXED
            inj.call("mmap", vma.start, length, prot, flags, file_fds[key], vma.pgoff, detail=where)
            if vma.deleted_file:
                ghost.mapped(pr, pr.image.files[vma.deleted_file], vma.start)
    finally:
        for fd in file_fds.values():
            inj.call("close", fd)
    cow.drop(pr, inherited.zap)
    forced, segments = vmflags.split_segments(
        segments, [(pr.mm.vmas[i].start, pr.mm.vmas[i].end) for i in unaccounted])
    _fill_pages(pr, segments)
    vmflags.fill_through_mem(pr, forced)
    for index in filled:
        vma = pr.mm.vmas[index]
        inj.call("mprotect", vma.start, vma.end - vma.start, vma.prot)
    _set_mm_fields(pr)
    vmflags.apply_advice(pr)

def _unmap_parent_memory(pr, kept):
    """A forked stub: unmap every mapping of the parent it does not keep, then move the vDSO."""
    keep_only(pr, proc.read_vmas(pr.pid), [(pr.mm.vmas[i].start, pr.mm.vmas[i].end) for i in kept],
              "the parent's memory this process does not have")


def keep_only(pr, current, keep, why):
    """Unmap everything of the process (`current`: its mappings as /proc lists them) but the
    trampoline, the ranges in `keep` and the kernel's own mappings; then move its vDSO to where
    the image has it."""
    keep = [pr.trampoline] + list(keep)
    keep += [(v.start, v.end) for v in current if v.special and v.path in vdso.KERNEL_MAPPINGS]
    top = max(v.end for v in current if v.path != "[vsyscall]")
    for start, end in complement(keep, 0, top):
        pr.inj.call("munmap", start, end - start, detail=why)
    move_vdso(pr, [v for v in current if v.path in vdso.VDSO_NAMES])


def _map_shmem(pr, vma, where):
    """The first process to map a shmem object creates and fills it; the others map that same object."""
    arch, inj, scratch = pr.arch, pr.inj, pr.scratch
    length = vma.end - vma.start
    first = pr.tree.shmem_registry.get(vma.shmem_id)
    if first is None:
        _create_shmem(pr, vma.shmem_id, where)
        return
    owner = first[0]
    if (vma.start, vma.end) in pr.shmem_placed:
        return   # placed with the rest of the object when it was created
    scratch.reset()
    path = scratch.put_str(map_files_path(*first))
    fd = inj.call("openat", linux.AT_FDCWD, path, os.O_RDWR | os.O_CLOEXEC, 0, detail=f"{where} (shared with {owner})")
    try:
        inj.call("mmap", vma.start, length, vma.prot, arch.MAP_SHARED | arch.MAP_FIXED, fd, vma.pgoff, detail=where)
    finally:
        inj.call("close", fd)

def _create_shmem(pr, shmem_id, where):
    """The object as large as the farthest any process maps it (a piece mapped past
    its end would fault SIGBUS), filled where the image has data and nowhere else,
    then every piece this process maps moved to its place (keeping its offset)."""
    arch, inj = pr.arch, pr.inj
    size = max(v.pgoff + v.end - v.start for mm in pr.image.mms.values() for v in mm.vmas
               if v.kind == mm_pb2.Vma.SHMEM and v.shmem_id == shmem_id)
    busy = [pr.trampoline] + [(v.start, v.end) for v in pr.mm.vmas]
    busy += [(v.start, v.end) for v in proc.read_vmas(pr.pid)]
    base = free_gap(busy, size)
    flags = arch.MAP_SHARED | arch.MAP_ANONYMOUS | arch.MAP_FIXED_NOREPLACE
    inj.call("mmap", base, size, PROT_READ | PROT_WRITE, flags, -1, 0, detail=f"{where} (the whole object)")
    whole = mm_pb2.Vma(start=base, end=base + size, pgoff=0)
    shmem.fill(pr, whole, pr.image.path(shmem.image_name(shmem_id)))
    mremap_flags = 1 | 2  # MREMAP_MAYMOVE | MREMAP_FIXED
    moved = []
    for piece in pr.mm.vmas:
        if piece.kind == mm_pb2.Vma.SHMEM and piece.shmem_id == shmem_id:
            length = piece.end - piece.start
            window = (piece.pgoff, piece.pgoff + length)
            if any(lo < window[1] and window[0] < hi for lo, hi in moved):
                continue   # the same part mapped twice: the second is mapped like another process's
            moved.append(window)
            pr.shmem_placed.add((piece.start, piece.end))
            inj.call("mremap", base + piece.pgoff, length, length, mremap_flags, piece.start, detail=where)
            inj.call("mprotect", piece.start, length, piece.prot, detail=where)
            pr.tree.shmem_registry.setdefault(shmem_id, (pr.pid, piece.start))
    inj.call("munmap", base, size)


def _map_memfd(pr, vma, prot, where):
    """The first mapping of a memfd object creates it (unsealed); later ones open it where it is."""
    arch, inj, scratch = pr.arch, pr.inj, pr.scratch
    shared = vma.kind == mm_pb2.Vma.MEMFD_SHARED
    # A shared mapping may become writable only through a writable fd (VM_MAYWRITE).
    mode = os.O_RDWR if shared and vma.may_write else os.O_RDONLY
    location = pr.tree.memfd_location(vma.shmem_id)
    created = None
    if location is None:
        obj = pr.image.memfds.get(vma.shmem_id)
        if obj is None:
            raise ImageError(f"{pr.image.path(images.IPC)}: no memfd object {vma.shmem_id} for {where}")
        created = memfd.create(pr, obj.name, obj.seals, obj.size, pr.image.path(obj.data), obj)
        location = f"/proc/{pr.pid}/fd/{created}"
    # a new open even of the one just created: O_NOATIME, as mmap would touch the object's atime
    scratch.reset()
    fd = inj.call("openat", linux.AT_FDCWD, scratch.put_str(location), mode | os.O_NOATIME | os.O_CLOEXEC, 0,
                  detail=f"{where} ({location})")
    try:
        flags = (arch.MAP_SHARED if shared else arch.MAP_PRIVATE) | arch.MAP_FIXED
        inj.call("mmap", vma.start, vma.end - vma.start, prot, flags, fd, vma.pgoff, detail=where)
    finally:
        inj.call("close", fd)
        if created is not None:
            inj.call("close", created)
    if created is not None:
        pr.tree.memfd_registry[vma.shmem_id] = (pr.pid, vma.start)

def _attach_sysv_shm(pr, vma, where):
    """shmat where the attach began (pgoff 0); every piece then gets its own protection."""
    if vma.pgoff == 0:
        result = pr.inj.call("shmat", vma.shmem_id, vma.start, sysvipc.attach_flags(vma), detail=where)
        if result != vma.start:
            raise PyckptError(f"{where}: shmat attached at {result:#x}")
    pr.inj.call("mprotect", vma.start, vma.end - vma.start, vma.prot, detail=where)

def _fill_pages(pr, segments):
    """preadv from the pages images straight into the process: the kernel copies, Python never sees a page."""
    inj, scratch = pr.inj, pr.scratch
    by_file = {}
    for seg in segments:
        by_file.setdefault(seg.pages_file, []).append(seg)
    for pages_file, segs in by_file.items():
        scratch.reset()
        path = scratch.put_str(pr.image.path(pages_file))
        fd = inj.call("openat", linux.AT_FDCWD, path, os.O_RDONLY | os.O_CLOEXEC, 0, detail=pages_file)
        iov_room = min(IOV_MAX, (scratch.size - scratch.used) // 16)
        iov_base = scratch.alloc(iov_room * 16)
        batch, batch_bytes, batch_offset = [], 0, 0
        for seg in sorted(segs, key=lambda g: g.offset):
            vaddr, offset, remaining = seg.vaddr, seg.offset, seg.nbytes
            while remaining:
                # one preadv reads one contiguous stretch of the file
                if batch and (batch_offset + batch_bytes != offset or len(batch) == iov_room
                              or batch_bytes == MAX_RW):
                    _preadv(pr, fd, iov_base, batch, batch_offset)
                    batch, batch_bytes = [], 0
                if not batch:
                    batch_offset = offset
                piece = min(remaining, MAX_RW - batch_bytes)
                batch.append((vaddr, piece))
                batch_bytes += piece
                vaddr, offset, remaining = vaddr + piece, offset + piece, remaining - piece
        if batch:
            _preadv(pr, fd, iov_base, batch, batch_offset)
        inj.call("close", fd)

def _preadv(pr, fd, iov_base, batch, offset):
    linux.write_memory(pr.pid, iov_base, b"".join(struct.pack("=QQ", a, n) for a, n in batch))
    want = sum(n for _, n in batch)
    got = pr.inj.call("preadv", fd, iov_base, len(batch), offset, 0, detail="filling memory from the pages image")
    if got != want:
        raise ImageError(f"short read from the pages image of process {pr.pid} at offset {offset}: {got} of {want}")
    return offset + got

def _set_mm_fields(pr):
    mm, scratch, inj = pr.mm, pr.scratch, pr.inj
    scratch.reset()
    if _same_file(f"/proc/{pr.pid}/exe", mm.exe.path):
        # a forked process has its parent's, which the kernel will not replace while it is mapped
        exe_fd = None
    else:
        exe_path = scratch.put_str(mm.exe.path)
        exe_fd = inj.call("openat", linux.AT_FDCWD, exe_path, os.O_RDONLY | os.O_CLOEXEC, 0, detail=mm.exe.path)
    auxv = scratch.put(mm.auxv) if mm.auxv else 0
    fields = (mm.start_code, mm.end_code, mm.start_data, mm.end_data, mm.start_brk, mm.brk,
              mm.start_stack, mm.arg_start, mm.arg_end, mm.env_start, mm.env_end, auxv)
    prctl_mm_map = struct.pack("=12QII", *fields, len(mm.auxv), 0xFFFFFFFF if exe_fd is None else exe_fd)
    addr = scratch.put(prctl_mm_map)
    inj.call("prctl", PR_SET_MM, PR_SET_MM_MAP, addr, len(prctl_mm_map), 0, detail="PR_SET_MM_MAP")
    if exe_fd is not None:
        inj.call("close", exe_fd)


def _same_file(a, b):
    try:
        sa, sb = os.stat(a), os.stat(b)
    except OSError:
        return False
    return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)

# -- process-wide state -------------------------------------------------------


def move_vdso(pr, stub_specials):
    """Move the stub's [vdso]/[vvar*] to where the image had them (same kernel layout required)."""
    wanted = {v.name: v for v in pr.mm.vmas if v.kind == mm_pb2.Vma.VDSO}
    have = {v.path: v for v in stub_specials}
    if not wanted and not pr.mm.vdso:
        # the process had unmapped its vDSO: so does the restored one
        for name, vma in have.items():
            pr.inj.call("munmap", vma.start, vma.length, detail=f"{name} (the image has none)")
        return
    if {n: v.end - v.start for n, v in wanted.items()} != {n: v.length for n, v in have.items()}:
        raise RestoreConflict(
            "the vDSO layout of this kernel differs from the image's "
            f"(image: { {n: v.end - v.start for n, v in wanted.items()} }, here: { {n: v.length for n, v in have.items()} }); "
            "restore on a kernel of the same build")
    if not wanted:
        return
    # Park them in one free gap first, so no move lands on another not yet moved.
    total = sum(v.length for v in have.values())
    busy = [pr.trampoline] + [(v.start, v.end) for v in have.values()] + [(v.start, v.end) for v in pr.mm.vmas]
    parking = free_gap(busy, total)
    mremap_flags = 1 | 2  # MREMAP_MAYMOVE | MREMAP_FIXED
    parked = {}
    for name, vma in have.items():
        pr.inj.call("mremap", vma.start, vma.length, vma.length, mremap_flags, parking, detail=name)
        parked[name] = parking
        parking += vma.length
    for name, target in wanted.items():
        length = target.end - target.start
        pr.inj.call("mremap", parked[name], length, length, mremap_flags, target.start, detail=name)

# -- memory -----------------------------------------------------------------


def map_files_path(pid, address):
    """/proc/PID/map_files entry of the mapping at `address` now (neighbours may have merged with it)."""
    for vma in proc.read_vmas(pid):
        if vma.start <= address < vma.end:
            return f"/proc/{pid}/map_files/{vma.start:x}-{vma.end:x}"
    raise PyckptError(f"process {pid} has no mapping at {address:#x} any more")


def vmas_with_data(vmas, segments):
    """Indexes of VMAs that receive pages from the image."""
    filled = set()
    starts = [(v.start, v.end, i) for i, v in enumerate(vmas)]
    j = 0
    for seg in segments:
        end = seg.vaddr + seg.nbytes
        while j < len(starts) and starts[j][1] <= seg.vaddr:
            j += 1
        k = j
        while k < len(starts) and starts[k][0] < end:
            filled.add(starts[k][2])
            k += 1
    return filled


def complement(keep, low, high):
    """(start, end) ranges in [low, high) not covered by `keep`."""
    out = []
    cursor = low
    for start, end in sorted(keep):
        if start > cursor:
            out.append((cursor, min(start, high)))
        cursor = max(cursor, end)
    if cursor < high:
        out.append((cursor, high))
    return [(s, e) for s, e in out if s < e]


def free_gap(busy, size, low=0x10000):
    """Lowest page-aligned address with `size` free bytes outside every busy range."""
    cursor = low
    for start, end in sorted(busy):
        if start - cursor >= size:
            return cursor
        cursor = max(cursor, end)
    return cursor
