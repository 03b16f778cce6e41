"""Restore: verified images -> the same processes again, with the same PIDs.

Outline (see DESIGN.md): read and check everything first; create each
process with its old PID (clone3 set_tid) as a stub stopped under ptrace;
rebuild it by injecting syscalls from a one-page trampoline at an address
the image does not use; put registers back and park the thread in an
interrupt stop so the kernel's own signal/syscall-restart logic runs on
resume; detach. Nothing of the stub remains and no tracer stays attached.
"""

import bisect
import collections
import errno
import logging
import os
import platform
import signal
import struct
import time

from . import arch as archmod
from . import images, linux, proc, shmem, sysvipc, vdso
from .errors import ImageError, PyckptError, RestoreConflict
from .files import memfd
from .files import pty as pty_files
from .files import regular as regular_files
from .files import restore_fds, unix
from .images.proto import core_pb2, files_pb2, ipc_pb2, mm_pb2
from .images.store import ImageReader
from .inject import Scratch, SyscallInjector, find_syscall_insn
from .oplog import log_to
from .options import RestoreOptions
from .pagemap import PAGE_SIZE
from .ptrace import Tracee

log = logging.getLogger(__name__)

PROT_READ, PROT_WRITE, PROT_EXEC = 1, 2, 4
RSEQ_FLAG_UNREGISTER = 1
PR_SET_PDEATHSIG = 1
PR_SET_NAME = 15
PR_SET_DUMPABLE = 4
PR_SET_MM = 35
PR_SET_MM_MAP = 14
PR_CAPBSET_DROP = 24
PR_SET_KEEPCAPS = 8
PR_SET_SECUREBITS = 28
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, PR_CAP_AMBIENT_CLEAR_ALL = 47, 2, 4
SECBIT_KEEP_CAPS = 1 << 4
PR_TIMER_CREATE_RESTORE_IDS = 77   # Linux 6.15+: timer_create takes the id from *created_timer_id
SIGEVENT_SIZE = 64
# Without PR_TIMER_CREATE_RESTORE_IDS the kernel hands out timer ids in
# sequence per process: an id is reached by creating and deleting timers.
MAX_TIMER_ID_STEPS = 1 << 16
_LINUX_CAPABILITY_VERSION_3 = 0x20080522
CLONE_VM, CLONE_FS, CLONE_FILES, CLONE_SIGHAND = 0x100, 0x200, 0x400, 0x800
CLONE_THREAD, CLONE_SYSVSEM = 0x10000, 0x40000
TRAMPOLINE_PAGES = 32          # 1 code page + scratch for paths, iovecs, structs
IOV_MAX = 1024
MAX_RW = 0x7FFFF000            # the kernel's MAX_RW_COUNT: one preadv reads at most this


class Image:
    """Everything read from an image folder, checked before anything is created."""

    def __init__(self, image_dir):
        self.reader = ImageReader(image_dir)
        inv = self.reader.inventory
        self.inventory = inv
        self.arch = archmod.by_name(inv.arch)
        host = archmod.host()
        if self.arch is not host:
            raise ImageError(f"image was taken on {inv.arch}; this machine is {host.NAME}")
        if inv.page_size != PAGE_SIZE:
            raise ImageError(f"image uses {inv.page_size}-byte pages; this kernel uses {PAGE_SIZE}")
        read = self.reader.read_message
        self.tree = read(images.PSTREE, files_pb2.PsTree)
        files = read(images.FILES, files_pb2.Files)
        self.files = {f.id: f for f in files.files}
        self.pipes = {p.id: p for p in files.pipes}
        self.ipc = read(images.IPC, ipc_pb2.Ipc) if self.reader.has(images.IPC) else ipc_pb2.Ipc()
        self.memfds = {m.id: m for m in self.ipc.memfds}
        self.ptys = {p.index: p for p in files.ptys}
        self.tasks, self.mms, self.pagemaps, self.fds = {}, {}, {}, {}
        for entry in self.tree.processes:
            pid = entry.pid
            if entry.zombie:
                continue
            self.tasks[pid] = read(images.core(pid), core_pb2.Task)
            _check_seccomp_tree(self.tasks[pid], self.reader.path(images.core(pid)))
            self.mms[pid] = read(images.mm(pid), mm_pb2.Mm)
            self.pagemaps[pid] = read(images.pagemap(pid), mm_pb2.PageMap)
            self.fds[pid] = read(images.fds(pid), files_pb2.FdTable)
        if not self.tree.processes:
            raise ImageError(f"{self.reader.path(images.PSTREE)}: lists no process")
        self.page_segments = _page_segments(self.tree, self.pagemaps)

    def path(self, name):
        return self.reader.path(name)

    @property
    def has_seccomp(self):
        return any(task.seccomp_filters or any(th.seccomp_mode for th in task.threads)
                   for task in self.tasks.values())


def _check_seccomp_tree(task, where):
    for i, flt in enumerate(task.seccomp_filters, 1):
        if flt.parent >= i or len(flt.program) % linux.SOCK_FILTER_SIZE or not flt.program:
            raise ImageError(f"{where}: seccomp filter {i} is malformed (parent {flt.parent}, "
                             f"{len(flt.program)} bytes)")
    for th in task.threads:
        if th.seccomp_filter > len(task.seccomp_filters):
            raise ImageError(f"{where}: thread {th.tid} names seccomp filter {th.seccomp_filter}, "
                             f"of {len(task.seccomp_filters)}")


def restore(image_dir, options=None):
    """Restore the image; returns the root PID (detached) or its exit status (waited)."""
    options = options or RestoreOptions()
    image = Image(image_dir)
    log_path = image.path(options.log_file)
    with log_to(log_path if os.access(image.reader.dir, os.W_OK) else os.devnull):
        log.info("restoring %s (%s image from %s, kernel %s; here %s)", image_dir, image.inventory.backend,
                 image.inventory.arch, image.inventory.kernel_release, platform.release())
        _preflight(image, options)
        root = image.tree.processes[0].pid
        started = time.monotonic()
        TreeRestorer(image, options).run()
        log.info("process tree of %d restored in %.3f s", root, time.monotonic() - started)
    if options.pidfile:
        with open(options.pidfile, "w") as f:
            f.write(f"{root}\n")
    if options.detach:
        return root
    return wait_exit_status(root)


def wait_exit_status(pid):
    while True:
        try:
            _, status = os.waitpid(pid, 0)
        except InterruptedError:
            continue
        if os.WIFEXITED(status):
            return os.WEXITSTATUS(status)
        if os.WIFSIGNALED(status):
            return 128 + os.WTERMSIG(status)


def _preflight(image, options):
    """Everything that can be checked without touching the machine."""
    for entry in image.tree.processes:
        if proc.exists(entry.pid):
            raise RestoreConflict(f"PID {entry.pid} is in use by process {proc.holder_description(entry.pid)}")
    for pid, mm in image.mms.items():
        for vma in mm.vmas:
            if vma.kind in (mm_pb2.Vma.FILE_PRIVATE, mm_pb2.Vma.FILE_SHARED):
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


class TreeRestorer:
    """Restores every process of the image, in phases across the whole tree.

    All processes are created first (children forked from their parent's
    stub, so parent links, sessions and groups come out right), then each
    gets its memory and state; files shared between processes are handed
    over with pidfd_getfd; nothing runs until every process is ready, and
    then all are let go together.
    """

    def __init__(self, image, options):
        self.image = image
        self.options = options
        self.procs = {}            # pid -> ProcessRestorer (live processes, tree order)
        self.zombies = []          # ProcessRestorer of processes that must end up zombies
        self.file_registry = {}    # file id -> (pid, fd) where an open file description already is
        self.shmem_registry = {}   # shmem id -> (pid, address) of a mapping of it
        self.memfd_registry = {}   # memfd object id -> (pid, address) of a mapping of it
        self.sysv = sysvipc.Restorer(image)
        self.locked_files = set()  # file ids whose flock/OFD locks are taken again
        self.fifos_ready = set()   # FIFOs (pipe ids) opened and refilled by some process
        self.ptys = pty_files.RestoredPtys(image)
        self.trampoline_base = None
        self.unix = unix.UnixRestore(image)

    def run(self):
        entries = list(self.image.tree.processes)
        self.trampoline_base = self._pick_trampoline()
        try:
            self.sysv.create_all()
            self.ptys.open_all()
            for entry in entries:
                parent = self.procs.get(entry.ppid)
                if entry is not entries[0] and parent is None:
                    raise ImageError(f"process {entry.pid}: its parent {entry.ppid} is not in the image")
                pr = ProcessRestorer(self, entry, parent)
                pr.create()
                if entry.zombie:
                    self.zombies.append(pr)
                else:
                    # before its children are forked: they inherit the controlling terminal
                    self.ptys.take_controlling(pr)
                    self.procs[entry.pid] = pr
            self._set_process_groups()
            self.ptys.set_foreground(self.procs)
            for pr in self.zombies:
                pr.become_zombie()
            for pr in self.procs.values():
                pr.restore_memory()
            self._seal_mapped_memfds()
            self.sysv.mark_removed()
            for pr in self.procs.values():
                pr.restore_process_state()
            # pyckpt builds the unix sockets; each process takes its own from it
            self.unix.build(self.file_registry)
            for pr in self.procs.values():
                restore_fds.install(pr)
            for pr in self.procs.values():
                restore_fds.close_parked(pr)
            self.ptys.finish()
            self.unix.close()
            for pr in self.procs.values():
                pr.prepare_threads()
            for pr in self.procs.values():
                pr.release()
        except BaseException:
            for pr in list(self.procs.values())[::-1] + self.zombies:
                pr.kill()
            self.sysv.undo()
            raise
        finally:
            self.ptys.close()
            self.unix.close()
            root = self.procs.get(entries[0].pid)
            if root:
                root.close_stub_pipe()

    def memfd_location(self, ino):
        """A /proc path that opens memfd object `ino` where the tree already has it, or None."""
        if ino in self.memfd_registry:
            return _map_files_path(*self.memfd_registry[ino])
        for file_id, (pid, fd) in self.file_registry.items():
            entry = self.image.files[file_id]
            if entry.kind == files_pb2.OpenFile.MEMFD and entry.file.ino == ino:
                return f"/proc/{pid}/fd/{fd}"
        return None

    def _seal_mapped_memfds(self):
        """Seals last: F_SEAL_WRITE and F_SEAL_FUTURE_WRITE would refuse the writable mappings."""
        for obj in self.image.ipc.memfds:
            memfd.add_seals(self.memfd_location(obj.id), obj.seals)

    def _pick_trampoline(self):
        """One address range free in pyckpt itself (the first stub is its fork) and in every image."""
        busy = [(v.start, v.end) for v in proc.read_vmas(os.getpid())]
        for mm in self.image.mms.values():
            busy.extend((v.start, v.end) for v in mm.vmas)
        return _free_gap(busy, TRAMPOLINE_PAGES * PAGE_SIZE)

    def _set_process_groups(self):
        """Group leaders first, then members (sessions were set as each process was created)."""
        restorers = list(self.procs.values()) + self.zombies
        for pr in restorers:
            if pr.entry.pgid == pr.pid and pr.entry.sid != pr.pid:
                pr.inj.call("setpgid", 0, 0, detail=f"process {pr.pid} leads its group")
        in_tree = {pr.pid for pr in restorers}
        for pr in restorers:
            pgid = pr.entry.pgid
            # A group led from outside the tree (the shell's, with --shell-job)
            # stays as inherited: the restoring pyckpt's.
            if pgid != pr.pid and pgid in in_tree:
                pr.inj.call("setpgid", 0, pgid, detail=f"process {pr.pid} joins group {pgid}")


class ProcessRestorer:
    """Turns a stub into one process of the image."""

    def __init__(self, tree, entry, parent):
        self.tree = tree
        self.image = tree.image
        self.entry = entry
        self.pid = entry.pid
        self.parent = parent
        self.options = tree.options
        self.arch = self.image.arch
        self.task = self.image.tasks.get(self.pid)
        self.mm = self.image.mms.get(self.pid)
        self.tracee = None
        self.inj = None
        self.scratch = None
        self.trampoline = None
        self.threads = []
        self.parked = []           # fds kept above the fd table for other processes
        self._stub_pipe = None

    # -- the stub -------------------------------------------------------------

    def create(self):
        if self.parent is None:
            self._spawn_stub()
            self._take_over_stub()
        else:
            self._fork_from_parent()
            self._adopt_forked_stub()
        if not self.entry.zombie and self.task.sid == self.pid:
            self.inj.call("setsid", detail=f"process {self.pid} leads its session")

    def _spawn_stub(self):
        """A child of pyckpt with the old PID, stopped under ptrace; it never runs its own code again."""
        read_end, write_end = os.pipe()
        try:
            child = linux.clone3_fork(self.pid, self.task.exit_signal or signal.SIGCHLD)
        except OSError as err:
            os.close(read_end)
            os.close(write_end)
            if err.errno == errno.EEXIST:
                raise RestoreConflict(f"PID {self.pid} is in use by process {proc.holder_description(self.pid)}") from None
            if err.errno in (errno.EPERM, errno.ENOSPC, errno.EINVAL):
                raise RestoreConflict(f"cannot create a process with PID {self.pid}: {err.strerror} "
                                      "(clone3 set_tid needs root or CAP_CHECKPOINT_RESTORE)") from None
            raise
        if child == 0:  # the stub: wait to be seized; it never returns to Python
            try:
                linux.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
                os.close(write_end)
                os.read(read_end, 1)
            finally:
                os._exit(127)
        os.close(read_end)
        self._stub_pipe = write_end
        tracee = Tracee(child, self.arch)
        # Every process and thread cloned from this stub inherits the options:
        # with seccomp in the image, filters installed before the last injected
        # calls must not apply to them.
        tracee.seize(exit_kill=True, trace_clone=True, suspend_seccomp=self.image.has_seccomp)
        tracee.stop()
        tracee.set_sigmask((1 << 64) - 1)
        self.tracee = tracee

    def _fork_from_parent(self):
        """clone3 (fork, set_tid) injected into the parent's stub; the child is auto-attached."""
        parent = self.parent
        parent.scratch.reset()
        exit_signal = signal.SIGCHLD if self.entry.zombie else (self.task.exit_signal or signal.SIGCHLD)
        tid_array = parent.scratch.put(struct.pack("=i", self.pid))
        args = parent.scratch.put(struct.pack("=11Q", 0, 0, 0, 0, exit_signal, 0, 0, 0, tid_array, 1, 0))
        result = parent.inj.raw("clone3", args, 88)
        if result == -errno.EEXIST:
            raise RestoreConflict(f"PID {self.pid} is in use by process {proc.holder_description(self.pid)}")
        if result < 0:
            raise RestoreConflict(f"cannot create process {self.pid} (child of {parent.pid}): {os.strerror(-result)}")
        self.tracee = Tracee.adopt(self.pid, self.arch)
        self.tracee.set_sigmask((1 << 64) - 1)

    def _adopt_forked_stub(self):
        """A forked stub has the parent's trampoline and nothing else but the vDSO, where the parent's image had it."""
        base, end = self.parent.trampoline
        self.trampoline = (base, end)
        self.inj = SyscallInjector(self.tracee, base)
        self.scratch = Scratch(self.pid, base + PAGE_SIZE, end - base - PAGE_SIZE)
        if not self.entry.zombie:
            self._move_vdso([v for v in proc.read_vmas(self.pid) if v.path in _VDSO_NAMES])

    def become_zombie(self):
        """Let a zombie's stub end the way the original did; it stays unreaped for its parent."""
        status = self.entry.exit_status
        self.scratch.reset()
        self.inj.call("prctl", PR_SET_NAME, self.scratch.put(b"zombie\0"))
        if os.WIFSIGNALED(status):
            sig = os.WTERMSIG(status)
            self.inj.call("rt_sigaction", sig, self.scratch.put(self.arch.pack_sigaction(0, 0, 0, 0)), 0,
                          self.arch.NSIG // 8)
            self.inj.call("prlimit64", 0, 4, self.scratch.put(struct.pack("=QQ", 0, 0)), 0)  # no core file
            self.inj.call("munmap", *self._trampoline_span())
            self.tracee.set_sigmask(0)
            self.tracee.detach(sig)   # from a syscall stop, the signal is sent for real
        else:
            regs = self.arch.set_syscall(self.tracee.get_regs(), self.arch.SYSCALLS["exit_group"],
                                         [os.WEXITSTATUS(status)], self.trampoline[0])
            self.tracee.set_regs(regs)
            self.tracee.detach()
        _wait_until(lambda: proc.read_stat(self.pid).state == "Z", f"process {self.pid} to become a zombie")
        # Its death queued SIGCHLD at the parent; the parent's own pending signals are restored later.
        parent = self.parent
        parent.scratch.reset()
        sigset = parent.scratch.put(struct.pack("=Q", 1 << (signal.SIGCHLD - 1)))
        timeout = parent.scratch.put(struct.pack("=qq", 0, 0))
        parent.inj.raw("rt_sigtimedwait", sigset, 0, timeout, 8)

    def _trampoline_span(self):
        base, end = self.trampoline
        return base, end - base

    def kill(self):
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        if self.parent is None:
            try:
                os.waitpid(self.pid, 0)
            except ChildProcessError:
                pass

    def close_stub_pipe(self):
        if self._stub_pipe is not None:
            os.close(self._stub_pipe)
            self._stub_pipe = None

    def _take_over_stub(self):
        arch, tracee = self.arch, self.tracee
        stub_vmas = proc.read_vmas(self.pid)
        self.inj = inj = SyscallInjector(tracee, find_syscall_insn(self.pid, stub_vmas, arch))
        try:
            conf = linux.get_rseq_configuration(self.pid)
            if conf.rseq_abi_pointer:
                inj.call("rseq", conf.rseq_abi_pointer, conf.rseq_abi_size, RSEQ_FLAG_UNREGISTER, conf.signature)
        except OSError as err:
            if err.errno not in (errno.EIO, errno.EINVAL):
                raise
        inj.call("close_range", 0, 0xFFFFFFFF, 0)
        # The trampoline: code page + scratch, where neither the stub nor any image has anything.
        size = TRAMPOLINE_PAGES * PAGE_SIZE
        base = self.tree.trampoline_base
        inj.call("mmap", base, size, PROT_READ | PROT_WRITE,
                 arch.MAP_PRIVATE | arch.MAP_ANONYMOUS | arch.MAP_FIXED_NOREPLACE, -1, 0)
        linux.write_memory(self.pid, base, arch.SYSCALL_INSN)
        inj.call("mprotect", base, PAGE_SIZE, PROT_READ | PROT_EXEC)
        inj.insn_addr = base
        self.trampoline = (base, base + size)
        self.scratch = Scratch(self.pid, base + PAGE_SIZE, size - PAGE_SIZE)
        # Drop everything of the stub but the trampoline and the kernel's own mappings.
        keep = [self.trampoline] + [(v.start, v.end) for v in stub_vmas if v.special and v.path in _KERNEL_MAPPINGS]
        top = max(v.end for v in stub_vmas if v.path != "[vsyscall]")
        for start, end in _complement(keep, 0, top):
            inj.call("munmap", start, end - start)
        self._move_vdso([v for v in stub_vmas if v.path in _VDSO_NAMES])

    def _move_vdso(self, stub_specials):
        """Move the stub's [vdso]/[vvar*] to where the image had them (same kernel layout required)."""
        wanted = {v.name: v for v in self.mm.vmas if v.kind == mm_pb2.Vma.VDSO}
        have = {v.path: v for v in stub_specials}
        if {n: v.end - v.start for n, v in wanted.items()} != {n: v.length for n, v in have.items()}:
            raise RestoreConflict(
                "the vDSO layout of this kernel differs from the image's "
                f"(image: { {n: v.end - v.start for n, v in wanted.items()} }, here: { {n: v.length for n, v in have.items()} }); "
                "restore on a kernel of the same build")
        if not wanted:
            return
        # Park them in one free gap first, so no move lands on another not yet moved.
        total = sum(v.length for v in have.values())
        busy = [self.trampoline] + [(v.start, v.end) for v in have.values()] + [(v.start, v.end) for v in self.mm.vmas]
        parking = _free_gap(busy, total)
        mremap_flags = 1 | 2  # MREMAP_MAYMOVE | MREMAP_FIXED
        parked = {}
        for name, vma in have.items():
            self.inj.call("mremap", vma.start, vma.length, vma.length, mremap_flags, parking, detail=name)
            parked[name] = parking
            parking += vma.length
        for name, target in wanted.items():
            length = target.end - target.start
            self.inj.call("mremap", parked[name], length, length, mremap_flags, target.start, detail=name)

    # -- memory -----------------------------------------------------------------

    def restore_memory(self):
        arch, inj, scratch = self.arch, self.inj, self.scratch
        segments = self.image.page_segments[self.pid]
        filled = _vmas_with_data(self.mm.vmas, segments)
        file_fds = {}
        try:
            for index, vma in enumerate(self.mm.vmas):
                if vma.kind in (mm_pb2.Vma.VDSO, mm_pb2.Vma.VSYSCALL):
                    continue
                prot = vma.prot | (PROT_READ | PROT_WRITE if index in filled else 0)
                length = vma.end - vma.start
                where = f"mapping {vma.start:#x}-{vma.end:#x} {vma.name or vma.file.path or '(anonymous)'}"
                if vma.kind == mm_pb2.Vma.SHMEM:
                    self._map_shmem(vma, where)
                    continue
                if vma.kind in (mm_pb2.Vma.MEMFD_SHARED, mm_pb2.Vma.MEMFD_PRIVATE):
                    self._map_memfd(vma, prot, where)
                    continue
                if vma.kind == mm_pb2.Vma.SYSV_SHM:
                    self._attach_sysv_shm(vma, where)
                    continue
                if vma.kind == mm_pb2.Vma.ANON:
                    flags = arch.MAP_PRIVATE | arch.MAP_ANONYMOUS | arch.MAP_FIXED
                    if vma.growsdown:
                        flags |= arch.MAP_GROWSDOWN
                    inj.call("mmap", vma.start, length, prot, flags, -1, 0, detail=where)
                    continue
                shared = vma.kind == mm_pb2.Vma.FILE_SHARED
                writable = shared and vma.may_write
                key = (vma.file.path, writable)
                if key not in file_fds:
                    scratch.reset()
                    path = scratch.put_str(vma.file.path)
                    flags = os.O_RDWR if writable else os.O_RDONLY
                    file_fds[key] = inj.call("openat", linux.AT_FDCWD, path, flags | os.O_CLOEXEC, 0, detail=vma.file.path)
                flags = (arch.MAP_SHARED if shared else arch.MAP_PRIVATE) | arch.MAP_FIXED
                inj.call("mmap", vma.start, length, prot, flags, file_fds[key], vma.pgoff, detail=where)
        finally:
            for fd in file_fds.values():
                inj.call("close", fd)
        self._fill_pages(segments)
        for index in filled:
            vma = self.mm.vmas[index]
            inj.call("mprotect", vma.start, vma.end - vma.start, vma.prot)
        self._set_mm_fields()

    def _map_shmem(self, vma, where):
        """The first process to map a shmem object creates and fills it; the others map that same object."""
        arch, inj, scratch = self.arch, self.inj, self.scratch
        length = vma.end - vma.start
        first = self.tree.shmem_registry.get(vma.shmem_id)
        if first is None:
            flags = arch.MAP_SHARED | arch.MAP_ANONYMOUS | arch.MAP_FIXED
            inj.call("mmap", vma.start, length, vma.prot | PROT_READ | PROT_WRITE, flags, -1, 0, detail=where)
            shmem.fill(self, vma, self.image.path(shmem.image_name(vma.shmem_id)))
            inj.call("mprotect", vma.start, length, vma.prot)
            self.tree.shmem_registry[vma.shmem_id] = (self.pid, vma.start)
            return
        owner = first[0]
        scratch.reset()
        path = scratch.put_str(_map_files_path(*first))
        fd = inj.call("openat", linux.AT_FDCWD, path, os.O_RDWR | os.O_CLOEXEC, 0, detail=f"{where} (shared with {owner})")
        try:
            inj.call("mmap", vma.start, length, vma.prot, arch.MAP_SHARED | arch.MAP_FIXED, fd, vma.pgoff, detail=where)
        finally:
            inj.call("close", fd)

    def _map_memfd(self, vma, prot, where):
        """The first mapping of a memfd object creates it (unsealed); later ones open it where it is."""
        arch, inj, scratch = self.arch, self.inj, self.scratch
        shared = vma.kind == mm_pb2.Vma.MEMFD_SHARED
        # A shared mapping may become writable only through a writable fd (VM_MAYWRITE).
        mode = os.O_RDWR if shared and vma.may_write else os.O_RDONLY
        location = self.tree.memfd_location(vma.shmem_id)
        created = None
        if location is None:
            obj = self.image.memfds.get(vma.shmem_id)
            if obj is None:
                raise ImageError(f"{self.image.path(images.IPC)}: no memfd object {vma.shmem_id} for {where}")
            created = memfd.create(self, obj.name, obj.seals, obj.size, self.image.path(obj.data))
            location = f"/proc/{self.pid}/fd/{created}"
        if created is not None and mode == os.O_RDWR:
            fd = created
        else:
            scratch.reset()
            fd = inj.call("openat", linux.AT_FDCWD, scratch.put_str(location), mode | os.O_CLOEXEC, 0,
                          detail=f"{where} ({location})")
        try:
            flags = (arch.MAP_SHARED if shared else arch.MAP_PRIVATE) | arch.MAP_FIXED
            inj.call("mmap", vma.start, vma.end - vma.start, prot, flags, fd, vma.pgoff, detail=where)
        finally:
            inj.call("close", fd)
            if created is not None and fd != created:
                inj.call("close", created)
        if created is not None:
            self.tree.memfd_registry[vma.shmem_id] = (self.pid, vma.start)

    def _attach_sysv_shm(self, vma, where):
        """shmat where the attach began (pgoff 0); every piece then gets its own protection."""
        if vma.pgoff == 0:
            result = self.inj.call("shmat", vma.shmem_id, vma.start, sysvipc.attach_flags(vma), detail=where)
            if result != vma.start:
                raise PyckptError(f"{where}: shmat attached at {result:#x}")
        self.inj.call("mprotect", vma.start, vma.end - vma.start, vma.prot, detail=where)

    def _fill_pages(self, segments):
        """preadv from the pages images straight into the process: the kernel copies, Python never sees a page."""
        inj, scratch = self.inj, self.scratch
        by_file = {}
        for seg in segments:
            by_file.setdefault(seg.pages_file, []).append(seg)
        for pages_file, segs in by_file.items():
            scratch.reset()
            path = scratch.put_str(self.image.path(pages_file))
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
                        self._preadv(fd, iov_base, batch, batch_offset)
                        batch, batch_bytes = [], 0
                    if not batch:
                        batch_offset = offset
                    piece = min(remaining, MAX_RW - batch_bytes)
                    batch.append((vaddr, piece))
                    batch_bytes += piece
                    vaddr, offset, remaining = vaddr + piece, offset + piece, remaining - piece
            if batch:
                self._preadv(fd, iov_base, batch, batch_offset)
            inj.call("close", fd)

    def _preadv(self, fd, iov_base, batch, offset):
        linux.write_memory(self.pid, iov_base, b"".join(struct.pack("=QQ", a, n) for a, n in batch))
        want = sum(n for _, n in batch)
        got = self.inj.call("preadv", fd, iov_base, len(batch), offset, 0, detail="filling memory from the pages image")
        if got != want:
            raise ImageError(f"short read from the pages image of process {self.pid} at offset {offset}: {got} of {want}")
        return offset + got

    def _set_mm_fields(self):
        mm, scratch, inj = self.mm, self.scratch, self.inj
        scratch.reset()
        exe_path = scratch.put_str(mm.exe.path)
        exe_fd = inj.call("openat", linux.AT_FDCWD, exe_path, os.O_RDONLY | os.O_CLOEXEC, 0, detail=mm.exe.path)
        auxv = scratch.put(mm.auxv) if mm.auxv else 0
        fields = (mm.start_code, mm.end_code, mm.start_data, mm.end_data, mm.start_brk, mm.brk,
                  mm.start_stack, mm.arg_start, mm.arg_end, mm.env_start, mm.env_end, auxv)
        prctl_mm_map = struct.pack("=12QII", *fields, len(mm.auxv), exe_fd)
        addr = scratch.put(prctl_mm_map)
        inj.call("prctl", PR_SET_MM, PR_SET_MM_MAP, addr, len(prctl_mm_map), 0, detail="PR_SET_MM_MAP")
        inj.call("close", exe_fd)

    # -- process-wide state -------------------------------------------------------

    def restore_process_state(self):
        task, inj, scratch, arch = self.task, self.inj, self.scratch, self.arch
        scratch.reset()
        new_limit = scratch.alloc(16)
        for limit in task.rlimits:
            linux.write_memory(self.pid, new_limit, struct.pack("=QQ", limit.cur, limit.max))
            inj.call("prlimit64", 0, limit.resource, new_limit, 0, detail=f"rlimit {limit.resource}")
        scratch.reset()
        inj.call("chdir", scratch.put_str(task.cwd), detail=task.cwd)
        inj.call("umask", task.umask)
        inj.call("personality", task.personality)
        pdeathsig = task.pdeathsig
        if self.parent is None and self.options.detach and pdeathsig:
            # The root's parent is outside the image; with -d its new parent
            # (pyckpt) exits at once, so the signal would kill it right away.
            log.warning("process %d: parent-death signal %d not restored (restored detached)", self.pid, pdeathsig)
            pdeathsig = 0
        inj.call("prctl", PR_SET_PDEATHSIG, pdeathsig)  # also clears the stub's own SIGKILL
        itimerval = scratch.alloc(32)
        for timer in task.itimers:
            value = struct.pack("=qqqq", timer.interval_us // 1000000, timer.interval_us % 1000000,
                                timer.value_us // 1000000, timer.value_us % 1000000)
            linux.write_memory(self.pid, itimerval, value)
            inj.call("setitimer", timer.which, itimerval, 0, detail=f"itimer {timer.which}")
        actions = {a.signo: a for a in task.sigactions}
        act = scratch.alloc(arch.SIGACTION_SIZE)
        for signo in range(1, arch.NSIG + 1):
            if signo in (signal.SIGKILL, signal.SIGSTOP):
                continue
            a = actions.get(signo)
            packed = (arch.pack_sigaction(a.handler, a.flags, a.restorer, a.mask | (a.mask_hi << 64))
                      if a else arch.pack_sigaction(0, 0, 0, 0))
            linux.write_memory(self.pid, act, packed)
            result = inj.raw("rt_sigaction", signo, act, 0, arch.NSIG // 8)
            if result < 0 and a:
                raise PyckptError(f"cannot restore the handler of signal {signo}: {os.strerror(-result)}")
        info = scratch.alloc(linux.SIGINFO_SIZE)
        for pending in task.shared_pending:
            linux.write_memory(self.pid, info, pending.raw)
            inj.call("rt_sigqueueinfo", self.pid, pending.signo, info, detail=f"queueing signal {pending.signo}")

    def _restore_creds(self, inj):
        """Credentials are per thread in the kernel: every thread sets its own, last.

        The bounding set and securebits need CAP_SETPCAP, so they come first;
        keep-caps carries the capabilities over the uid change; capset then
        sets exactly the saved ones, which may drop what allowed the rest.
        """
        creds, scratch, task = self.task.creds, self.scratch, self.task
        scratch.reset()
        last_cap = _last_cap()
        for cap in range(last_cap + 1):
            if not creds.cap_bnd >> cap & 1:
                inj.call("prctl", PR_CAPBSET_DROP, cap, detail=f"dropping capability {cap} from the bounding set")
        inj.call("prctl", PR_SET_SECUREBITS, creds.securebits & ~SECBIT_KEEP_CAPS, detail="securebits")
        inj.call("prctl", PR_SET_KEEPCAPS, 1)
        groups = scratch.put(struct.pack(f"={len(creds.groups)}I", *creds.groups)) if creds.groups else 0
        inj.call("setgroups", len(creds.groups), groups)
        inj.call("setresgid", creds.gid, creds.egid, creds.sgid)
        inj.call("setfsgid", creds.fsgid)
        inj.call("setresuid", creds.uid, creds.euid, creds.suid)
        inj.call("setfsuid", creds.fsuid)
        header = scratch.put(struct.pack("=Ii", _LINUX_CAPABILITY_VERSION_3, 0))
        data = scratch.put(struct.pack("=6I", creds.cap_eff & 0xFFFFFFFF, creds.cap_prm & 0xFFFFFFFF,
                                       creds.cap_inh & 0xFFFFFFFF, creds.cap_eff >> 32, creds.cap_prm >> 32,
                                       creds.cap_inh >> 32))
        result = inj.raw("capset", header, data)
        if result < 0:
            raise RestoreConflict(
                f"cannot give process {self.pid} its capabilities (effective {creds.cap_eff:#x}, permitted "
                f"{creds.cap_prm:#x}): {os.strerror(-result)}; pyckpt itself may lack some of them")
        inj.call("prctl", PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
        for cap in range(last_cap + 1):
            if creds.cap_amb >> cap & 1:
                inj.call("prctl", PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0, detail=f"ambient capability {cap}")
        inj.call("prctl", PR_SET_KEEPCAPS, 1 if creds.securebits & SECBIT_KEEP_CAPS else 0)
        if creds.no_new_privs:
            inj.call("prctl", PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
        inj.call("prctl", PR_SET_DUMPABLE, task.dumpable)

    def _restore_sched(self, thread):
        """Scheduling, nice and CPU affinity of a thread, set from outside (pyckpt's own privileges)."""
        sched = thread.sched
        tid = thread.tid
        cpus = set(sched.cpus) & os.sched_getaffinity(0)
        if cpus:
            os.sched_setaffinity(tid, cpus)
        else:
            log.warning("thread %d ran on CPUs %s, none of which is here; leaving its affinity", tid, list(sched.cpus))
        os.setpriority(os.PRIO_PROCESS, tid, sched.nice)
        try:
            os.sched_setscheduler(tid, sched.policy, os.sched_param(sched.priority))
        except OSError as err:
            raise RestoreConflict(f"cannot give thread {tid} scheduling policy {sched.policy} "
                                  f"priority {sched.priority}: {err.strerror}") from None
        if sched.timerslack_ns:
            with open(f"/proc/{tid}/timerslack_ns", "w") as f:
                f.write(str(sched.timerslack_ns))

    # -- threads, registers, and letting go -----------------------------------------

    def prepare_threads(self):
        """Threads, per-thread state, credentials, registers: everything up to letting go."""
        self.threads = threads = self._create_threads()
        for thread, _tracee, inj in threads:
            self._restore_thread_state(thread, inj)
            if thread.HasField("sched"):
                self._restore_sched(thread)
        self._restore_posix_timers()
        # Filters go in while every thread still has CAP_SYS_ADMIN (no no_new_privs
        # needed); the calls injected after them run with seccomp suspended
        # (PTRACE_O_SUSPEND_SECCOMP), which ends when the threads are detached.
        self._restore_seccomp(threads)
        for _thread, _tracee, inj in threads:
            self._restore_creds(inj)
        # Last injected call: drop the trampoline (the call runs from it and returns into nothing).
        self.inj.call("munmap", *self._trampoline_span())
        arch = self.arch
        for thread, tracee, _inj in threads:
            for regset in thread.regs.extra:
                try:
                    tracee.set_regset(regset.note_type, regset.data)
                except OSError as err:
                    raise RestoreConflict(
                        f"this machine refuses the saved {regset.name} registers of thread {thread.tid} "
                        f"({err.strerror}): restore on a CPU with the same register features") from None
            gp = getattr(thread.regs, arch.NAME)
            regs = {name: (getattr(gp, name) if not name.startswith("pad") else 0) for name in arch.GPREGS_FIELDS}
            tracee.settle(_resume_regs(arch, regs))
            tracee.set_sigmask(thread.sigmask | (thread.sigmask_hi << 64))

    def release(self):
        """Let every thread go; a process that was stopped is stopped again."""
        for _thread, tracee, _inj in self.threads:
            tracee.detach()
        if self.task.stopped:
            os.kill(self.pid, signal.SIGSTOP)
        log.debug("process %d: %d thread(s) released", self.pid, len(self.threads))

    def _restore_posix_timers(self):
        """Every timer with its old id, clock, notification, time left (relative) and interval.

        After the threads exist (a signal may target one of them). The ids:
        exactly with PR_TIMER_CREATE_RESTORE_IDS where the kernel has it,
        else by stepping the per-process id sequence (create, delete) up to each.
        """
        timers = sorted(self.task.posix_timers, key=lambda t: t.id)
        if not timers:
            return
        inj, scratch = self.inj, self.scratch
        scratch.reset()
        id_slot, sigev, spec = scratch.alloc(8), scratch.alloc(SIGEVENT_SIZE), scratch.alloc(32)
        exact = inj.raw("prctl", PR_TIMER_CREATE_RESTORE_IDS, 1, 0, 0, 0) == 0
        try:
            for timer in timers:
                what = f"POSIX timer {timer.id} of process {self.pid}"
                event = struct.pack("=QiiI", timer.sigval, timer.signo, timer.notify, timer.target_tid)
                linux.write_memory(self.pid, sigev, event.ljust(SIGEVENT_SIZE, b"\0"))
                if exact:
                    linux.write_memory(self.pid, id_slot, struct.pack("=i", timer.id))
                    result = inj.raw("timer_create", timer.clock, sigev, id_slot)
                    if result < 0:
                        raise RestoreConflict(f"cannot create {what}: {os.strerror(-result)}")
                else:
                    self._create_timer_in_sequence(timer, sigev, id_slot, what)
                if timer.value_ns:
                    linux.write_memory(self.pid, spec, struct.pack(
                        "=qqqq", timer.interval_ns // 10**9, timer.interval_ns % 10**9,
                        timer.value_ns // 10**9, timer.value_ns % 10**9))
                    inj.call("timer_settime", timer.id, 0, spec, 0, detail=what)
        finally:
            if exact:
                inj.call("prctl", PR_TIMER_CREATE_RESTORE_IDS, 0, 0, 0, 0)
        log.debug("process %d: %d POSIX timer(s) restored (%s ids)", self.pid, len(timers),
                  "exact" if exact else "stepped")

    def _create_timer_in_sequence(self, timer, sigev, id_slot, what):
        inj = self.inj
        for _ in range(MAX_TIMER_ID_STEPS):
            result = inj.raw("timer_create", timer.clock, sigev, id_slot)
            if result < 0:
                raise RestoreConflict(f"cannot create {what}: {os.strerror(-result)}")
            got = struct.unpack("=i", linux.read_memory(self.pid, id_slot, 4))[0]
            if got == timer.id:
                return
            inj.call("timer_delete", got, detail=f"stepping to timer id {timer.id}")
            if got > timer.id:
                break
            if timer.id - got > MAX_TIMER_ID_STEPS:
                break
        raise RestoreConflict(f"cannot give {what} its id on this kernel: timer ids come in sequence here "
                              f"(no PR_TIMER_CREATE_RESTORE_IDS, Linux < 6.15) and the next one is {got}")

    def _restore_seccomp(self, threads):
        """Filters oldest first; the ones every thread shares once, synchronised (TSYNC),
        the rest per thread. Strict mode last in its thread."""
        task = self.task
        if not task.seccomp_filters and not any(th.seccomp_mode for th, _t, _i in threads):
            return
        chains = {th.tid: _seccomp_chain(task, th.seccomp_filter) for th, _t, _i in threads}
        shared = _common_prefix(list(chains.values()))
        installed = {}
        leader_inj = threads[0][2]
        for node in shared:
            self._install_filter(leader_inj, node, tsync=len(threads) > 1)
        for thread, _tracee, inj in threads:
            for node in chains[thread.tid][len(shared):]:
                self._install_filter(inj, node, tsync=False)
            installed[thread.tid] = len(chains[thread.tid])
            if thread.seccomp_mode == linux.SECCOMP_MODE_STRICT:
                inj.call("prctl", linux.PR_SET_SECCOMP, linux.SECCOMP_MODE_STRICT, 0, 0, 0, detail=f"thread {thread.tid}")
        log.debug("process %d: seccomp filters installed %s (%d shared by all threads)", self.pid, installed,
                  len(shared))

    def _install_filter(self, inj, node, tsync):
        flt = self.task.seccomp_filters[node - 1]
        scratch = self.scratch
        scratch.reset()
        program = scratch.put(flt.program)
        fprog = scratch.put(struct.pack("=HxxxxxxQ", len(flt.program) // linux.SOCK_FILTER_SIZE, program))
        flags = flt.flags | (linux.SECCOMP_FILTER_FLAG_TSYNC if tsync else 0)
        result = inj.raw("seccomp", linux.SECCOMP_SET_MODE_FILTER, flags, fprog)
        if result != 0:
            # With TSYNC a positive result is the tid of a thread that could not be synchronised.
            why = os.strerror(-result) if result < 0 else f"thread {result} could not be synchronised"
            raise RestoreConflict(f"cannot install seccomp filter {node} in thread {inj.tracee.tid} of "
                                  f"process {self.pid}: {why}")

    def _create_threads(self):
        """[(thread image, tracee, injector)], the leader (the stub itself) first.

        Each other thread is cloned from the leader with its old TID
        (clone3 set_tid) and is auto-attached stopped (PTRACE_O_TRACECLONE).
        """
        leader, others = self.task.threads[0], self.task.threads[1:]
        if leader.tid != self.pid:
            raise ImageError(f"{self.image.path(images.core(self.pid))}: first thread {leader.tid} is not the leader")
        out = [(leader, self.tracee, self.inj)]
        scratch = self.scratch
        flags = (CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD | CLONE_SYSVSEM)
        for thread in others:
            scratch.reset()
            tid_array = scratch.put(struct.pack("=i", thread.tid))
            args = scratch.put(struct.pack("=11Q", flags, 0, 0, 0, 0, 0, 0, 0, tid_array, 1, 0))
            result = self.inj.raw("clone3", args, 88)
            if result == -errno.EEXIST:
                raise RestoreConflict(f"TID {thread.tid} of process {self.pid} is in use by "
                                      f"{proc.holder_description(thread.tid)}")
            if result < 0:
                raise RestoreConflict(f"cannot create thread {thread.tid} of process {self.pid}: "
                                      f"{os.strerror(-result)}")
            tracee = Tracee.adopt(thread.tid, self.arch)
            out.append((thread, tracee, SyscallInjector(tracee, self.inj.insn_addr)))
        return out

    def _restore_thread_state(self, thread, inj):
        arch, scratch = self.arch, self.scratch
        scratch.reset()
        inj.call("prctl", PR_SET_NAME, scratch.put(thread.comm.encode()[:15] + b"\0"))
        stack = thread.altstack
        inj.call("sigaltstack", scratch.put(arch.pack_stack_t(stack.sp, stack.flags, stack.size)), 0)
        inj.call("set_tid_address", thread.clear_child_tid)
        if thread.robust_list_len:
            inj.call("set_robust_list", thread.robust_list, thread.robust_list_len)
        if thread.HasField("rseq"):
            inj.call("rseq", thread.rseq.pointer, thread.rseq.size, 0, thread.rseq.signature)
        info = scratch.alloc(linux.SIGINFO_SIZE)
        for pending in thread.pending:
            linux.write_memory(self.pid, info, pending.raw)
            inj.call("rt_tgsigqueueinfo", self.pid, thread.tid, pending.signo, info)


_VDSO_NAMES = ("[vdso]", "[vvar]", "[vvar_vclock]", "[sigpage]", "[vectors]")
_KERNEL_MAPPINGS = _VDSO_NAMES + ("[vsyscall]",)


def _seccomp_chain(task, node):
    """Filter indexes (1-based) from the oldest to `node`."""
    chain = []
    while node:
        chain.append(node)
        node = task.seccomp_filters[node - 1].parent
    return chain[::-1]


def _common_prefix(chains):
    prefix = []
    for nodes in zip(*chains):
        if any(n != nodes[0] for n in nodes):
            break
        prefix.append(nodes[0])
    return prefix


def _resume_regs(arch, regs):
    """Registers to settle with: the frozen ones, adjusted where the kernel's restart cannot work.

    A thread frozen in a syscall shows -ERESTART* and the kernel restarts the
    call on resume. -ERESTART_RESTARTBLOCK relies on per-thread kernel state
    a new process lacks: a relative clock_nanosleep/nanosleep with a `rem`
    buffer (the kernel wrote the time left there when interrupted) is redone
    for the time left; other such calls are redone with their original
    arguments (a relative timeout starts over).
    """
    nr = arch.interrupted_syscall(regs, archmod.RESTART_ERRNOS)
    if nr is None or -arch.syscall_result(regs) != archmod.ERESTART_RESTARTBLOCK:
        return regs
    args = arch.syscall_args(regs)
    names = {v: k for k, v in arch.SYSCALLS.items()}
    name = names.get(nr)
    if name == "clock_nanosleep" and not args[1] & 1 and args[3]:   # relative, rem given
        args[2] = args[3]
    elif name == "nanosleep" and args[1]:
        args[0] = args[1]
    log.debug("syscall %s (%d) interrupted with a restart block: redone with %s", name, nr, [hex(a) for a in args])
    regs = dict(regs)
    regs.update(zip(arch.ARGS, args))
    # Present it as a plainly restartable call, so the kernel redoes it itself on resume.
    return arch.set_syscall_error(regs, archmod.ERESTARTNOINTR)


PageSegment = collections.namedtuple("PageSegment", "vaddr nbytes pages_file offset")


def _page_segments(tree, pagemaps):
    """pid -> [PageSegment] by address: where in which pages image each saved
    page of the process is. Inherited runs (copy-on-write shared with the
    parent at dump time) resolve through the parent's segments, so a page is
    stored once for the whole tree. A run nothing resolves is a damaged image."""
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
        raise ImageError(f"pagemap-{pid}.img: page {cursor:#x} is inherited from process {parent}, "
                         "whose image does not hold it")
    return out


def _map_files_path(pid, address):
    """/proc/PID/map_files entry of the mapping at `address` now (neighbours may have merged with it)."""
    for vma in proc.read_vmas(pid):
        if vma.start <= address < vma.end:
            return f"/proc/{pid}/map_files/{vma.start:x}-{vma.end:x}"
    raise PyckptError(f"process {pid} has no mapping at {address:#x} any more")


def _vmas_with_data(vmas, segments):
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


def _last_cap():
    with open("/proc/sys/kernel/cap_last_cap") as f:
        return int(f.read())


def _wait_until(predicate, what, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise PyckptError(f"timed out waiting for {what}")
        time.sleep(0.001)


def _complement(keep, low, high):
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


def _free_gap(busy, size, low=0x10000):
    """Lowest page-aligned address with `size` free bytes outside every busy range."""
    cursor = low
    for start, end in sorted(busy):
        if start - cursor >= size:
            return cursor
        cursor = max(cursor, end)
    return cursor
