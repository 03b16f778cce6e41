"""The whole tree restored in phases: each process is created and given its
memory before its children are forked from it (so pages still shared
copy-on-write are shared again); then state, fds and threads of each (children
first), and all are let go together."""

import os
import time

from .. import proc, sysvipc
from ..errors import ImageError, RestoreConflict
from ..files import memfd
from ..files import pty as pty_files
from ..files import inet, restore_fds, unix
from ..images.proto import files_pb2
from ..pagemap import PAGE_SIZE
from .memory import free_gap, map_files_path
from .process import TRAMPOLINE_PAGES, ProcessRestorer


class TreeRestorer:
    """Restores every process of the image, in phases across the whole tree.

    Each process is created (children forked from their parent's stub, so
    parent links, sessions and groups come out right) and gets its memory
    before its children are forked from it, so they share its pages
    copy-on-write as they did; then each gets its state; files shared between processes are handed
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
        self.ghost_maps = {}       # ghost image name of a deleted file -> (pid, address) of a mapping of it
        self.sysv = sysvipc.Restorer(image)
        self.removed_dirs = {}     # (dev, ino) of a removed cwd -> pid that has it
        self.locked_files = set()  # file ids whose flock/OFD locks are taken again
        self.fifos_ready = set()   # FIFOs (pipe ids) opened and refilled by some process
        self.ptys = pty_files.RestoredPtys(image)
        self.trampoline_base = None
        self.unix = unix.UnixRestore(image)
        self.inet = inet.InetRestore(image, options.tcp_close)

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
                pr = ProcessRestorer(self, entry, parent, self._creator(entry, parent))
                pr.create()
                if entry.zombie:
                    self.zombies.append(pr)
                else:
                    # before its children are forked: they inherit the controlling terminal
                    self.ptys.take_controlling(pr)
                    self.procs[entry.pid] = pr
                    # and its memory, shared copy-on-write where the image says it was
                    pr.restore_memory()
            self._set_process_groups()
            self.ptys.set_foreground(self.procs)
            for pr in self.zombies:
                pr.become_zombie()
            self._check_reparented()
            self._seal_mapped_memfds()
            self.sysv.mark_removed()
            for pr in self.procs.values():
                pr.restore_process_state()
            # pyckpt builds the unix sockets; each process takes its own from it
            self.unix.build(self.file_registry)
            self.inet.build(self.file_registry)
            for pr in self.procs.values():
                restore_fds.install(pr)
            for pr in self.procs.values():
                restore_fds.close_parked(pr)
            self.ptys.finish()
            self.unix.close()
            self.inet.close()
            # Children first: a stopped child is stopped again before its parent
            # (still traced) takes the stop report it had already taken.
            for pr in reversed(list(self.procs.values())):
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
            self.inet.close()
            root = self.procs.get(entries[0].pid)
            if root:
                root.close_stub_pipe()

    def memfd_location(self, ino):
        """A /proc path that opens memfd object `ino` where the tree already has it, or None."""
        if ino in self.memfd_registry:
            return map_files_path(*self.memfd_registry[ino])
        for file_id, (pid, fd) in self.file_registry.items():
            entry = self.image.files[file_id]
            if entry.kind == files_pb2.OpenFile.MEMFD and entry.file.ino == ino:
                return f"/proc/{pid}/fd/{fd}"
        return None

    def ghost_mapping(self, ghost):
        """A /proc path that opens the deleted file saved in `ghost` where the tree maps it, or None."""
        if ghost in self.ghost_maps:
            return map_files_path(*self.ghost_maps[ghost])
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
        return free_gap(busy, TRAMPOLINE_PAGES * PAGE_SIZE)

    def _creator(self, entry, parent):
        """Whose stub a process is forked from: its parent's, unless it is in the session of a
        zombie (a session outlives its leader, and only a fork puts a process in one). Then it
        is forked from the zombie's stub, which still has the memory the zombie's parent gave
        it, and is reparented to its parent when the zombie exits (its parent is the child
        subreaper it went to)."""
        if parent is None or entry.sid in (entry.pid, parent.entry.sid):
            return None
        leader = next((z for z in self.zombies if z.pid == entry.sid), None)
        if leader is None or leader.parent is not parent:
            raise RestoreConflict(f"process {entry.pid} is in session {entry.sid}, which its parent {entry.ppid} "
                                  "is not in and which no zombie child of that parent leads")
        return leader

    def _check_reparented(self):
        """Every process forked from a zombie went to its parent when the zombie exited."""
        for pr in self.procs.values():
            if pr.creator is not pr.parent:
                _wait_reparented(pr)

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


def _wait_reparented(pr, timeout=10.0):
    deadline = time.monotonic() + timeout
    while (ppid := proc.read_stat(pr.pid).ppid) != pr.entry.ppid:
        if time.monotonic() > deadline:
            raise RestoreConflict(f"process {pr.pid} went to process {ppid}, not to {pr.entry.ppid}, when the "
                                  f"zombie leader of its session exited")
        time.sleep(0.01)
