"""Job-control stops: a process that was stopped comes back in the same group
stop, by the same signal, without running a single instruction, and its
parent's view of that stop (the wait report, SIGCHLD) is what it was.

The stop is entered while every thread is still traced, so there is no
window in which the process runs: the signal is sent to the leader, which
takes it in a signal-delivery stop; continued with it, the leader starts the
group stop and traps; every other thread is continued into its share of the
stop and traps too, which completes the stop (SIGNAL_STOP_STOPPED, the
parent notified). Detaching a thread of a stopped group leaves it stopped
(the kernel reinstates the pending stop on detach), so release() needs no
signal of its own.
"""

import logging
import signal
import struct

from .. import linux
from ..errors import PyckptError

log = logging.getLogger(__name__)

ALL_SIGNALS = (1 << 64) - 1


def enter_group_stop(pr):
    """Stop process `pr` (every thread settled, still traced) by its own stop signal."""
    sig = pr.task.stop_signal or signal.SIGSTOP
    leader = pr.threads[0][1]
    got = _start_stop(pr.pid, leader, sig)
    if got != sig and sig != signal.SIGSTOP:
        # Dropped: the kernel discards SIGTSTP/SIGTTIN/SIGTTOU in an orphaned process group.
        log.warning("process %d: signal %d did not stop it here (orphaned process group?): "
                    "stopped by SIGSTOP instead", pr.pid, sig)
        got = _start_stop(pr.pid, leader, signal.SIGSTOP)
    if got not in (sig, signal.SIGSTOP):
        raise PyckptError(f"process {pr.pid} could not be stopped again (got signal {got})")
    for _thread, tracee, _inj in pr.threads[1:]:
        tracee.cont()      # into its share of the group stop: it traps before any user code
        stop = tracee.wait_event_stop()
        if stop.signal != got:
            raise PyckptError(f"thread {tracee.tid} of process {pr.pid} did not join the group stop")
    log.debug("process %d: back in its group stop (signal %d)", pr.pid, got)


def _start_stop(pid, leader, sig):
    """The signal of the group stop the leader traps in after taking `sig` (SIGTRAP: none)."""
    mask = leader.get_sigmask()
    # Only `sig` may be taken: signals pending for the process stay pending, as they were.
    leader.set_sigmask(ALL_SIGNALS & ~(1 << (sig - 1)))
    try:
        linux.syscall("tgkill", pid, pid, sig)
        leader.cont()
        stop = leader.wait()
        if stop.exited or stop.is_event_stop or stop.signal != sig:
            raise PyckptError(f"process {pid}: no signal-delivery stop for signal {sig} ({stop!r})")
        leader.interrupt()     # if the kernel drops the signal, the leader traps instead of running
        leader.cont(sig)
        stop = leader.wait_event_stop()
        return stop.signal
    finally:
        leader.set_sigmask(mask)


def collect_child_stops(pr):
    """In the parent `pr` (still traced, trampoline mapped), after its stopped children stopped
    again: take the wait reports it had already taken, and a SIGCHLD it did not have pending."""
    children = [c for c in pr.tree.procs.values() if c.parent is pr and c.task.stopped]
    if not children:
        return
    pr.scratch.reset()
    info = pr.scratch.alloc(linux.SIGINFO_SIZE)
    for child in children:
        if child.task.stop_collected:
            flags = linux.WSTOPPED | linux.WNOHANG | linux.WALL
            pr.inj.call("waitid", linux.P_PID, child.pid, info, flags, 0,
                        detail=f"taking the stop report of {child.pid}")
    pending = {p.signo for p in pr.task.shared_pending} | {p.signo for p in pr.task.threads[0].pending}
    if signal.SIGCHLD not in pending:
        sigset = pr.scratch.put(struct.pack("=Q", 1 << (signal.SIGCHLD - 1)))
        timeout = pr.scratch.put(struct.pack("=qq", 0, 0))
        pr.inj.raw("rt_sigtimedwait", sigset, 0, timeout, 8)
