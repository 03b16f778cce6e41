"""One process of the image: a stub created with the old PID and stopped under
ptrace, then rebuilt by syscalls injected from a trampoline page (memory,
state, threads, credentials: one module each), and finally let go."""

import errno
import logging
import os
import signal
import struct
import time

from .. import linux, proc
from ..errors import PyckptError, RestoreConflict
from ..inject import Scratch, SyscallInjector, find_syscall_insn
from ..pagemap import PAGE_SIZE
from ..ptrace import Tracee
from . import creds, jobctl, memory, seccomp, state, threads, timers

log = logging.getLogger(__name__)

PROT_READ, PROT_WRITE, PROT_EXEC = 1, 2, 4
RSEQ_FLAG_UNREGISTER = 1
PR_SET_PDEATHSIG = 1
PR_SET_NAME = 15
_WALL = getattr(os, "__WALL", 0x40000000)
TRAMPOLINE_PAGES = 32          # 1 code page + scratch for paths, iovecs, structs


class ProcessRestorer:
    """Turns a stub into one process of the image."""

    def __init__(self, tree, entry, parent, creator=None):
        self.tree = tree
        self.image = tree.image
        self.entry = entry
        self.pid = entry.pid
        self.parent = parent
        # The stub it is forked from: its parent's, or a zombie session leader's (restore/tree.py)
        self.creator = creator or parent
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
        self.shmem_placed = set()  # (start, end) of shared anonymous mappings already in place
        self._stub_pipe = None

    # -- the stub -------------------------------------------------------------

    def create(self):
        if self.parent is None:
            self._spawn_stub()
            self._take_over_stub()
        else:
            self._fork_from_parent()
            self._adopt_forked_stub()
        if self.entry.sid == self.pid:
            self.inj.call("setsid", detail=f"process {self.pid} leads its session")
        if not self.entry.zombie and self.task.child_subreaper:
            # before its children are forked: they inherit has_child_subreaper, which orphans follow
            self.inj.call("prctl", linux.PR_SET_CHILD_SUBREAPER, 1)

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
        """clone3 (fork, set_tid) injected into the creator's stub (its parent's, but for a member of
        a zombie's session: tree._creator); the child is auto-attached. A process that shared its
        parent's fd table, fs or undo list (clone_shares.py) shares it again."""
        parent = self.creator
        if parent is not self.parent and (self.entry.shares_files or self.entry.shares_fs
                                          or self.entry.shares_sysvsem):
            raise RestoreConflict(f"process {self.pid} shares its parent's fd table, fs or undo list but must be "
                                  "forked from a zombie session leader's stub: not supported")
        parent.scratch.reset()
        exit_signal = signal.SIGCHLD if self.entry.zombie else (self.task.exit_signal or signal.SIGCHLD)
        flags = ((threads.CLONE_FILES if self.entry.shares_files else 0)
                 | (threads.CLONE_FS if self.entry.shares_fs else 0)
                 | (threads.CLONE_SYSVSEM if self.entry.shares_sysvsem else 0))
        tid_array = parent.scratch.put(struct.pack("=i", self.pid))
        args = parent.scratch.put(struct.pack("=11Q", flags, 0, 0, 0, exit_signal, 0, 0, 0, tid_array, 1, 0))
        result = parent.inj.raw("clone3", args, 88)
        if result == -errno.EEXIST:
            raise RestoreConflict(f"PID {self.pid} is in use by process {proc.holder_description(self.pid)}")
        if result < 0:
            raise RestoreConflict(f"cannot create process {self.pid} (child of {parent.pid}): {os.strerror(-result)}")
        self.tracee = Tracee.adopt(self.pid, self.arch)
        self.tracee.set_sigmask((1 << 64) - 1)

    def _adopt_forked_stub(self):
        """A forked stub has the parent's trampoline and the parent's restored memory (memory.py sorts
        out what it keeps), its vDSO where the parent's image had it."""
        base, end = self.parent.trampoline
        self.trampoline = (base, end)
        self.inj = SyscallInjector(self.tracee, base)
        self.scratch = Scratch(self.pid, base + PAGE_SIZE, end - base - PAGE_SIZE)

    def become_zombie(self):
        """Let a zombie's stub end the way the original did; it stays unreaped for its parent."""
        status = self.entry.exit_status
        self.scratch.reset()
        self.inj.call("prctl", PR_SET_NAME, self.scratch.put(b"zombie\0"))
        if os.WIFSIGNALED(status):
            sig = os.WTERMSIG(status)
            if sig not in (signal.SIGKILL, signal.SIGSTOP):   # those have no action to reset (EINVAL)
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
        # Threads we still trace are reaped by us (__WALL) before their leader can be: without
        # this the waitpid below never returns (a restore failing after create_threads hung).
        for _thread, tracee, _inj in self.threads[1:]:
            try:
                os.waitpid(tracee.tid, _WALL)
            except ChildProcessError:
                pass
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
        memory.keep_only(self, stub_vmas, [], "pyckpt's own memory in the stub")


    def restore_memory(self):
        memory.restore_memory(self)

    def restore_process_state(self):
        state.restore_process_state(self)

    # -- threads, registers, and letting go -----------------------------------------

    def prepare_threads(self):
        """Threads, per-thread state, credentials, registers: everything up to letting go."""
        self.threads = created = threads.create_threads(self)
        for thread, _tracee, inj in created:
            threads.restore_thread_state(self, thread, inj)
            if thread.HasField("sched"):
                state.restore_sched(self, thread)
        timers.restore_posix_timers(self)
        # Filters go in while every thread still has CAP_SYS_ADMIN (no no_new_privs
        # needed); the calls injected after them run with seccomp suspended
        # (PTRACE_O_SUSPEND_SECCOMP), which ends when the threads are detached.
        seccomp.restore_seccomp(self, created)
        for _thread, _tracee, inj in created:
            creds.restore_creds(self, inj)
        # Its stopped children are back in their stops (children are prepared first).
        jobctl.collect_child_stops(self)
        # Last injected call: drop the trampoline (the call runs from it and returns into nothing).
        self.inj.call("munmap", *self._trampoline_span())
        threads.set_registers(self, created)
        if self.task.stopped:
            jobctl.enter_group_stop(self)

    def release(self):
        """Let every thread go; a process in a group stop stays in it (see jobctl)."""
        for _thread, tracee, _inj in self.threads:
            tracee.detach()
        log.debug("process %d: %d thread(s) released", self.pid, len(self.threads))


def _wait_until(predicate, what, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise PyckptError(f"timed out waiting for {what}")
        time.sleep(0.001)

