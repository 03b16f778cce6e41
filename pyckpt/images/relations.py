"""The whole-image half of image validation (validate.py has the per-field half): relations
between an image's files, checked in restorer.image.Image before anything is created."""

from .. import shmem
from ..errors import ImageError
from .proto import files_pb2
from .validate import NR_OPEN, PAGE_SIZE, USER_END, fail

# --- the whole image ---------------------------------------------------------------------
# Each check takes restore.image.Image (tree, tasks, mms, pagemaps, fds, files, reader, arch)
# and raises ImageError naming a file and a field.

def _name(image, name):
    return image.reader.path(name)


def check_tree(image):
    from . import PSTREE, core
    where = _name(image, PSTREE)
    entries = image.tree.processes
    if not entries:
        raise ImageError(f"{where}: processes: lists no process")
    if image.inventory.root_pid and entries[0].pid != image.inventory.root_pid:
        fail(where, "processes[0].pid", entries[0].pid, f"is not the image's root {image.inventory.root_pid}")
    if entries[0].zombie:
        fail(where, "processes[0].zombie", True, "the root process cannot be a zombie")
    seen = set()
    for i, entry in enumerate(entries):
        ids = [entry.pid] + ([] if entry.zombie else list(entry.threads))
        for tid in set(ids):
            if tid in seen:
                fail(where, f"processes[{i}]", tid, "pid or tid listed twice")
        if i and entry.ppid not in seen:
            fail(where, f"processes[{i}].ppid", entry.ppid, "parent not listed before its child")
        seen.update(ids)
        if len(set(entry.threads)) != len(entry.threads):
            fail(where, f"processes[{i}].threads", list(entry.threads), "a tid listed twice")
        if entry.zombie:
            continue
        task = image.tasks[entry.pid]
        cwhere = _name(image, core(entry.pid))
        for field in ("pid", "ppid", "pgid", "sid"):
            if getattr(task, field) != getattr(entry, field):
                fail(cwhere, field, getattr(task, field), f"pstree.img says {getattr(entry, field)}")
        if not task.cwd:
            fail(cwhere, "cwd", "", "empty")
        if not task.threads or task.threads[0].tid != entry.pid:
            fail(cwhere, "threads[0].tid", task.threads[0].tid if task.threads else None,
                 "the first thread must be the process itself")
        tids = [t.tid for t in task.threads]
        if sorted(tids) != sorted(entry.threads or [entry.pid]):
            fail(cwhere, "threads", tids, f"pstree.img lists threads {list(entry.threads)}")
        if len(set(tids)) != len(tids):
            fail(cwhere, "threads", tids, "a tid listed twice")


def check_tasks(image):
    from . import core
    gp = image.arch.NAME
    regsets = {note for note, _name in image.arch.EXTRA_REGSETS}
    for pid, task in image.tasks.items():
        where = _name(image, core(pid))
        for i, thread in enumerate(task.threads):
            if thread.regs.WhichOneof("gp") != gp:
                fail(where, f"threads[{i}].regs", thread.regs.WhichOneof("gp"), f"not {gp} registers")
            for j, regset in enumerate(thread.regs.extra):
                if regset.note_type not in regsets:
                    fail(where, f"threads[{i}].regs.extra[{j}].note_type", regset.note_type,
                         f"not a {gp} register set pyckpt saves")
        c = task.creds
        if c.cap_amb & ~(c.cap_prm & c.cap_inh):
            fail(where, "creds.cap_amb", c.cap_amb, "ambient capabilities outside permitted and inheritable")
        if c.cap_eff & ~c.cap_prm:
            fail(where, "creds.cap_eff", c.cap_eff, "effective capabilities outside permitted")
        signos = [a.signo for a in task.sigactions]
        if len(set(signos)) != len(signos):
            fail(where, "sigactions", signos, "a signal listed twice")
        for i, limit in enumerate(task.rlimits):
            if limit.cur > limit.max:
                fail(where, f"rlimits[{i}].cur", limit.cur, f"above its hard limit {limit.max}")
        # seccomp filter links: restore/seccomp.py check_filters


def _covered(vmas, start, end):
    """[start, end) lies inside mappings that follow each other without a gap (vmas sorted)."""
    cursor = start
    for v in vmas:
        if v.start <= cursor < v.end:
            cursor = v.end
            if cursor >= end:
                return True
        elif v.start > cursor:
            return False
    return False


def _memory_available():
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 1 << 62


_MM_MAP_FIELDS = ("start_code", "end_code", "start_data", "end_data", "start_brk", "brk", "start_stack",
                  "arg_start", "arg_end", "env_start", "env_end")
_MM_MAP_ORDER = (("start_code", "end_code", False), ("start_data", "end_data", True),
                 ("start_brk", "brk", True), ("arg_start", "arg_end", True), ("env_start", "env_end", True))


def _mmap_min_addr():
    try:
        with open("/proc/sys/vm/mmap_min_addr") as f:
            return int(f.read())
    except (OSError, ValueError):
        return 65536


def _check_mm_map(mm, where):
    """What prctl(PR_SET_MM_MAP) accepts (kernel/sys.c validate_prctl_map_addr)."""
    low = _mmap_min_addr()
    for field in _MM_MAP_FIELDS:
        value = getattr(mm, field)
        if not low <= value < USER_END:
            fail(where, field, value, f"outside user space ({low:#x}..{USER_END:#x})")
    for first, second, equal_ok in _MM_MAP_ORDER:
        a, b = getattr(mm, first), getattr(mm, second)
        if a > b or (a == b and not equal_ok):
            fail(where, second, b, f"below {first} {a:#x}")
    if len(mm.auxv) % 16 or len(mm.auxv) > _AUXV_MAX:
        fail(where, "auxv", f"{len(mm.auxv)} bytes", f"not whole (type, value) pairs of at most {_AUXV_MAX} bytes")


_AUXV_MAX = 16 * 48     # the kernel's saved_auxv holds AT_VECTOR_SIZE (about 50) words


def _check_file_runs(mm, page_map, where):
    """Saved pages of a file mapping lie within the file (rounded up to a page): beyond, the mapping
    has no page to fill (SIGBUS in the kernel, a failed fill in restore)."""
    runs = [(f"runs[{i}]", r) for i, r in enumerate(page_map.runs)]
    runs += [(f"inherited[{i}]", r) for i, r in enumerate(page_map.inherited)]
    for field, run in runs:
        start, end = run.vaddr, run.vaddr + run.nr_pages * PAGE_SIZE
        for v in mm.vmas:
            if v.kind not in (v.FILE_PRIVATE, v.FILE_SHARED) or v.end <= start or v.start >= end:
                continue
            last = min(end, v.end) - v.start + v.pgoff
            if last > -(-v.file.size // PAGE_SIZE) * PAGE_SIZE:
                fail(where, field, run.vaddr,
                     f"saved pages past the end of {v.file.path} ({v.file.size} bytes) in its mapping {v.start:#x}")


def check_memory(image):
    from . import mm as mm_name, pagemap as pagemap_name
    for pid, mm in image.mms.items():
        where = _name(image, mm_name(pid))
        previous_end = 0
        for i, vma in enumerate(mm.vmas):
            if vma.start >= vma.end:
                fail(where, f"vmas[{i}].end", vma.end, f"not above its start {vma.start:#x}")
            if vma.start < previous_end:
                fail(where, f"vmas[{i}].start", vma.start, "overlaps or precedes the mapping before it")
            previous_end = vma.end
            for j, guard in enumerate(vma.guards):
                if guard.vaddr < vma.start or guard.vaddr + guard.nr_pages * PAGE_SIZE > vma.end:
                    fail(where, f"vmas[{i}].guards[{j}]", guard.vaddr, "outside its mapping")
        for v in mm.vmas:
            # the raw shmem image's own run table (read again at fill time), checked before anything exists
            if v.kind == v.SHMEM and image.reader.has(shmem.image_name(v.shmem_id)):
                shmem.read_runs(image.reader.path(shmem.image_name(v.shmem_id)))
        specials = [v.name for v in mm.vmas if v.kind == v.VDSO]
        if len(set(specials)) != len(specials):
            fail(where, "vmas[].name", specials, "a vDSO mapping listed twice")
        _check_mm_map(mm, where)
        _check_file_runs(mm, image.pagemaps[pid], _name(image, pagemap_name(pid)))
        locked = sum(v.end - v.start for v in mm.vmas if "lo" in v.vmflags)
        if locked > _memory_available():
            fail(where, "vmas[].vmflags", f"{locked >> 20} MiB locked (mlock)",
                 f"more than this machine's {_memory_available() >> 20} MiB available: restore would hang or OOM")
        page_map = image.pagemaps[pid]
        pwhere = _name(image, pagemap_name(pid))
        if not page_map.pages_file and page_map.runs:
            fail(pwhere, "pages_file", "", "runs but no pages file")
        vmas = [v for v in mm.vmas if v.kind not in (v.VDSO, v.VSYSCALL)]
        total = 0
        for field in ("runs", "inherited"):
            previous_end = 0
            for i, run in enumerate(getattr(page_map, field)):
                end = run.vaddr + run.nr_pages * PAGE_SIZE
                if run.nr_pages == 0:
                    fail(pwhere, f"{field}[{i}].nr_pages", 0, "an empty run")
                if run.vaddr < previous_end:
                    fail(pwhere, f"{field}[{i}].vaddr", run.vaddr, "overlaps or precedes the run before it")
                previous_end = end
                if not _covered(vmas, run.vaddr, end):
                    fail(pwhere, f"{field}[{i}]", run.vaddr,
                         f"{run.nr_pages} pages not inside the mappings of {mm_name(pid)}")
                if field == "runs":
                    total += run.nr_pages * PAGE_SIZE
        if page_map.pages_file:
            size = image.reader.entries[page_map.pages_file].size
            if size != total:
                fail(pwhere, "runs", f"{total} bytes", f"{page_map.pages_file} holds {size}")


def _nofile(task):
    for limit in task.rlimits:
        if limit.resource == 7:   # RLIMIT_NOFILE
            return limit.cur
    return NR_OPEN


_BY_PATH = (files_pb2.OpenFile.REGULAR, files_pb2.OpenFile.DIRECTORY, files_pb2.OpenFile.CHARDEV,
            files_pb2.OpenFile.FIFO, files_pb2.OpenFile.TTY, files_pb2.OpenFile.PTY_SLAVE)


def check_fds(image):
    from . import FILES, fds as fds_name
    for pid, table in image.fds.items():
        where = _name(image, fds_name(pid))
        nofile = min(_nofile(image.tasks[pid]), NR_OPEN)
        numbers = set()
        for i, fd in enumerate(table.fds):
            if fd.fd in numbers:
                fail(where, f"fds[{i}].fd", fd.fd, "listed twice")
            numbers.add(fd.fd)
            if fd.fd >= nofile:
                fail(where, f"fds[{i}].fd", fd.fd, f"not below the process's RLIMIT_NOFILE {nofile}")
            if fd.file_id not in image.files:
                fail(where, f"fds[{i}].file_id", fd.file_id, f"no such open file in {FILES}")
        for i, lock in enumerate(table.posix_locks):
            if lock.fd not in numbers:
                fail(where, f"posix_locks[{i}].fd", lock.fd, "not an fd of the process")
    fwhere = _name(image, FILES)
    ids = [f.id for f in image.files_list]
    if len(set(ids)) != len(ids):
        fail(fwhere, "files", "ids", "an open file id listed twice")
    pipe_ids = [p.id for p in image.pipes_list]
    if len(set(pipe_ids)) != len(pipe_ids):
        fail(fwhere, "pipes", "ids", "a pipe id listed twice")
    # as dump allows (files/status.py check_owner): a process of the image, or a group (F_OWNER_PGRP 2)
    pids = {p.pid for p in image.tree.processes}
    pgids = {p.pgid for p in image.tree.processes}
    for i, entry in enumerate(image.files_list):
        if entry.owner and entry.owner not in (pgids if entry.owner_type == 2 else pids):
            fail(fwhere, f"files[{i}].owner", entry.owner, "not a process (or group) of the image")
        if entry.kind in _BY_PATH and not entry.ghost and not entry.file.path:
            fail(fwhere, f"files[{i}].file.path", "", "a file reopened by path needs one")
        if entry.kind in (entry.PIPE, entry.FIFO) and entry.pipe_id not in image.pipes:
            fail(fwhere, f"files[{i}].pipe_id", entry.pipe_id, "no such pipe")
        if entry.ghost and entry.HasField("deleted"):
            stored = sum(e.length for e in entry.deleted.extents)
            size = image.reader.entries[entry.ghost].size
            if stored != size:
                fail(fwhere, f"files[{i}].deleted.extents", f"{stored} bytes", f"{entry.ghost} holds {size}")
            previous_end = 0
            for j, extent in enumerate(entry.deleted.extents):
                if extent.offset < previous_end:
                    fail(fwhere, f"files[{i}].deleted.extents[{j}].offset", extent.offset,
                         "overlaps or precedes the extent before it")
                previous_end = extent.offset + extent.length


def check_ipc(image):
    from . import IPC
    where = _name(image, IPC)
    ipc = image.ipc
    for field in ("memfds", "shm", "sem", "msg"):
        ids = [o.id for o in getattr(ipc, field)]
        if len(set(ids)) != len(ids):
            fail(where, field, ids, "an id listed twice")
    for i, sem in enumerate(ipc.sem):
        if not sem.values:
            fail(where, f"sem[{i}].values", 0, "a semaphore set holds at least one semaphore")
    memfds, shm = {o.id for o in ipc.memfds}, {o.id for o in ipc.shm}
    mapped = set()
    for pid, mm in image.mms.items():
        for i, vma in enumerate(mm.vmas):
            if vma.kind in (vma.MEMFD_SHARED, vma.MEMFD_PRIVATE):
                mapped.add(vma.shmem_id)
                if vma.shmem_id not in memfds:
                    fail(_name(image, f"mm-{pid}.img"), f"vmas[{i}].shmem_id", vma.shmem_id,
                         f"no such memfd object in {IPC}")
            elif vma.kind == vma.SYSV_SHM and vma.shmem_id not in shm:
                fail(_name(image, f"mm-{pid}.img"), f"vmas[{i}].shmem_id", vma.shmem_id,
                     f"no such shared memory segment in {IPC}")
    for i, obj in enumerate(ipc.memfds):
        if obj.id not in mapped:
            fail(where, f"memfds[{i}].id", obj.id, "a memfd object no mapping uses")


def check_unix(image):
    """Queued messages are read (and their fields checked) now; a datagram's sender is a bound
    socket of the image, as dump requires (files/unix.py _check_sender)."""
    sockets = [e.unix for e in image.files_list if e.kind == files_pb2.OpenFile.UNIX_SOCKET]
    names = {u.name for u in sockets if u.bound}
    for u in sockets:
        for name in (u.queue, u.sent):
            if not name:
                continue
            queue = image.reader.read_message(name, files_pb2.UnixQueue)
            for i, message in enumerate(queue.messages):
                if message.sender and message.sender not in names:
                    fail(image.reader.path(name), f"messages[{i}].sender", message.sender,
                         "no socket of the image is bound to it")


IMAGE_CHECKS = [check_tree, check_tasks, check_memory, check_fds, check_ipc, check_unix]


def check_image(image):
    for check in IMAGE_CHECKS:
        check(image)
