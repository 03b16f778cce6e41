"""A traced thread: seize, stop, registers, resume. Shared by dump and restore.

Only the thread that seized a tracee may drive it, so pyckpt stays
single-threaded while it holds tracees.
"""

import errno
import logging
import os
import signal

from . import arch as archmod
from . import linux, proc
from .errors import FreezeError, NoSuchProcess

log = logging.getLogger(__name__)

_STOP_SIGNALS = (signal.SIGSTOP, signal.SIGTSTP, signal.SIGTTIN, signal.SIGTTOU, signal.SIGTRAP)


class Stop:
    """What waitpid said about a traced thread."""

    def __init__(self, status):
        self.status = status

    @property
    def exited(self):
        return os.WIFEXITED(self.status) or os.WIFSIGNALED(self.status)

    @property
    def signal(self):
        return os.WSTOPSIG(self.status) if os.WIFSTOPPED(self.status) else 0

    @property
    def event(self):
        return (self.status >> 16) & 0xFF

    @property
    def is_event_stop(self):
        """PTRACE_EVENT_STOP: our PTRACE_INTERRUPT or a group-stop."""
        return os.WIFSTOPPED(self.status) and self.event == linux.PTRACE_EVENT_STOP

    @property
    def is_syscall_stop(self):
        return os.WIFSTOPPED(self.status) and self.signal == (signal.SIGTRAP | 0x80)

    def __repr__(self):
        if self.exited:
            return f"<exited status={self.status:#x}>"
        return f"<stop sig={self.signal} event={self.event}>"


class Tracee:
    def __init__(self, tid, arch=None):
        self.tid = tid
        self.arch = arch or archmod.host()
        self.attached = False

    # -- attach / stop / resume ------------------------------------------------

    def seize(self, exit_kill=False, trace_clone=False, suspend_seccomp=False):
        options = linux.PTRACE_O_TRACESYSGOOD
        if suspend_seccomp:  # injected syscalls must not meet the target's seccomp filters
            options |= linux.PTRACE_O_SUSPEND_SECCOMP
        if exit_kill:
            options |= linux.PTRACE_O_EXITKILL
        if trace_clone:  # threads and forked children come up traced (and stopped)
            options |= linux.PTRACE_O_TRACECLONE | linux.PTRACE_O_TRACEFORK
        try:
            linux.ptrace(linux.PTRACE_SEIZE, self.tid, 0, options)
        except OSError as err:
            if err.errno == errno.ESRCH:
                raise NoSuchProcess(f"thread {self.tid} does not exist") from err
            if err.errno == errno.EPERM and proc.exited(self.tid):
                # the kernel refuses to trace a zombie: it exited while the tree was being frozen
                raise NoSuchProcess(f"thread {self.tid} exited") from err
            if err.errno == errno.EPERM and suspend_seccomp:
                raise FreezeError(f"cannot trace {self.tid} with its seccomp filters suspended "
                                  "(needs CAP_SYS_ADMIN, and pyckpt must not run under seccomp)") from err
            if err.errno == errno.EPERM:
                raise FreezeError(f"cannot trace {self.tid}: it is already traced{_tracer(self.tid)} or not ours "
                                  "to trace") from err
            raise
        self.attached = True

    def interrupt(self):
        linux.ptrace(linux.PTRACE_INTERRUPT, self.tid)

    def wait(self):
        while True:
            try:
                _, status = os.waitpid(self.tid, os.__WALL if hasattr(os, "__WALL") else 0x40000000)
            except InterruptedError:
                continue
            stop = Stop(status)
            if stop.exited:
                self.attached = False
            return stop

    @classmethod
    def adopt(cls, tid, arch):
        """A thread auto-attached by PTRACE_O_TRACECLONE, once it reports its first stop."""
        tracee = cls(tid, arch)
        tracee.attached = True
        tracee.wait_event_stop()
        return tracee

    def wait_event_stop(self):
        """Wait for the PTRACE_INTERRUPT stop, letting signals that arrive first through.

        A signal caught on the way is delivered (it arrived before the freeze);
        the interrupt stays pending, so the thread stops right after.
        """
        while True:
            stop = self.wait()
            if stop.exited:
                raise NoSuchProcess(f"thread {self.tid} exited while being frozen")
            if stop.is_event_stop:
                return stop
            if stop.is_syscall_stop:
                linux.ptrace(linux.PTRACE_CONT, self.tid, 0, 0)
                continue
            log.debug("thread %d: signal %d arrived during freeze; delivering it", self.tid, stop.signal)
            linux.ptrace(linux.PTRACE_CONT, self.tid, 0, stop.signal)

    def stop(self):
        self.interrupt()
        return self.wait_event_stop()

    def cont(self, sig=0):
        linux.ptrace(linux.PTRACE_CONT, self.tid, 0, sig)

    def step_syscall(self):
        linux.ptrace(linux.PTRACE_SYSCALL, self.tid, 0, 0)

    def detach(self, sig=0):
        if self.attached:
            linux.ptrace(linux.PTRACE_DETACH, self.tid, 0, sig)
            self.attached = False

    def settle(self, regs):
        """Put `regs` in place from any stop and park in an interrupt stop.

        Resuming from that stop goes through the kernel's own signal and
        syscall-restart handling with exactly these registers, as if the
        thread had been frozen with them.
        """
        self.set_regs(regs)
        self.interrupt()
        self.cont()
        self.wait_event_stop()

    # -- registers -------------------------------------------------------------

    def get_regs(self):
        data = linux.getregset(self.tid, linux.NT_PRSTATUS, archmod.gpregs_size(self.arch))
        return archmod.unpack_gpregs(self.arch, data)

    def set_regs(self, regs):
        linux.setregset(self.tid, linux.NT_PRSTATUS, archmod.pack_gpregs(self.arch, regs))

    def get_regset(self, note_type, max_size):
        return linux.getregset(self.tid, note_type, max_size)

    def set_regset(self, note_type, data):
        linux.setregset(self.tid, note_type, data)

    def get_sigmask(self):
        return linux.get_sigmask(self.tid)

    def set_sigmask(self, mask):
        linux.set_sigmask(self.tid, mask)


def _tracer(tid):
    try:
        with open(f"/proc/{tid}/status") as f:
            tracer = next((int(line.split()[1]) for line in f if line.startswith("TracerPid:")), 0)
    except (OSError, ValueError):
        return ""
    return f" (by process {tracer}{', pyckpt itself' if tracer == os.getpid() else ''})" if tracer else ""
