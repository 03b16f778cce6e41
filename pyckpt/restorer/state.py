"""Process-wide state of a restored process: rlimits, cwd, umask, personality,
parent-death signal, interval timers, signal handlers and process-directed
pending signals; and each thread's scheduling, set from outside."""

import logging
import os
import signal
import struct

from .. import linux, proc
from ..errors import PyckptError, RestoreConflict

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1


def restore_process_state(pr):
    task, inj, scratch, arch = pr.task, pr.inj, pr.scratch, pr.arch
    scratch.reset()
    new_limit = scratch.alloc(16)
    for limit in task.rlimits:
        linux.write_memory(pr.pid, new_limit, struct.pack("=QQ", limit.cur, limit.max))
        inj.call("prlimit64", 0, limit.resource, new_limit, 0, detail=f"rlimit {limit.resource}")
    scratch.reset()
    _chdir(pr)
    inj.call("umask", task.umask)
    inj.call("personality", task.personality)
    pdeathsig = task.pdeathsig
    if pr.parent is None and pr.options.detach and pdeathsig:
        # The root's parent is outside the image; with -d its new parent
        # (pyckpt) exits at once, so the signal would kill it right away.
        log.warning("process %d: parent-death signal %d not restored (restored detached)", pr.pid, pdeathsig)
        pdeathsig = 0
    inj.call("prctl", PR_SET_PDEATHSIG, pdeathsig)  # also clears the stub's own SIGKILL
    itimerval = scratch.alloc(32)
    for timer in task.itimers:
        value = struct.pack("=qqqq", timer.interval_us // 1000000, timer.interval_us % 1000000,
                            timer.value_us // 1000000, timer.value_us % 1000000)
        linux.write_memory(pr.pid, itimerval, value)
        inj.call("setitimer", timer.which, itimerval, 0, detail=f"itimer {timer.which}")
    actions = {a.signo: a for a in task.sigactions}
    act = scratch.alloc(arch.SIGACTION_SIZE)
    for signo in range(1, arch.NSIG + 1):
        if signo in (signal.SIGKILL, signal.SIGSTOP):
            continue
        a = actions.get(signo)
        packed = (arch.pack_sigaction(a.handler, a.flags, a.restorer, a.mask | (a.mask_hi << 64))
                  if a else arch.pack_sigaction(0, 0, 0, 0))
        linux.write_memory(pr.pid, act, packed)
        result = inj.raw("rt_sigaction", signo, act, 0, arch.NSIG // 8)
        if result < 0 and a:
            raise PyckptError(f"cannot restore the handler of signal {signo}: {os.strerror(-result)}")
    _restore_attributes(pr)
    scratch.reset()
    info = scratch.alloc(linux.SIGINFO_SIZE)
    for pending in task.shared_pending:
        linux.write_memory(pr.pid, info, pending.raw)
        inj.call("rt_sigqueueinfo", pr.pid, pending.signo, info, detail=f"queueing signal {pending.signo}")


MEMBARRIER_REGISTER_ORDER = (linux.MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED,
                             linux.MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED,
                             linux.MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_SYNC_CORE,
                             linux.MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_RSEQ)
O_WRONLY = 1


def _chdir(pr):
    """The cwd; a removed one is recreated, entered and removed again (once per directory:
    the next process that had it enters it through the first one's /proc/PID/cwd)."""
    task, inj, scratch = pr.task, pr.inj, pr.scratch
    scratch.reset()
    if not task.HasField("cwd_removed"):
        inj.call("chdir", scratch.put_str(task.cwd), detail=task.cwd)
        return
    gone = task.cwd_removed
    holders = pr.tree.removed_dirs
    key = (gone.dev, gone.ino)
    if key in holders:
        via = f"/proc/{holders[key]}/cwd"
        inj.call("chdir", scratch.put_str(via), detail=f"{task.cwd} via {via}")
        return
    path = task.cwd[:-len(proc.DELETED_SUFFIX)]
    try:
        os.mkdir(path, 0o700)
    except OSError as err:
        raise RestoreConflict(f"process {pr.pid} had the removed directory {path} as its cwd; "
                              f"cannot recreate it there: {err.strerror}") from None
    try:
        os.chown(path, gone.uid, gone.gid)
        os.chmod(path, gone.mode & 0o7777)
        inj.call("chdir", scratch.put_str(path), detail=task.cwd)
    finally:
        os.rmdir(path)
    holders[key] = pr.pid


def _restore_attributes(pr):
    """oom_score_adj (set from outside), loginuid (only the process itself may write it),
    membarrier registrations. The child-subreaper flag is set as the stub is created."""
    task, inj, scratch = pr.task, pr.inj, pr.scratch
    if task.HasField("oom_score_adj"):
        try:
            with open(f"/proc/{pr.pid}/oom_score_adj", "w") as f:
                f.write(str(task.oom_score_adj))
        except OSError as err:
            raise RestoreConflict(f"cannot give process {pr.pid} oom_score_adj {task.oom_score_adj}: "
                                  f"{err.strerror} (lowering it needs CAP_SYS_RESOURCE)") from None
    if task.HasField("loginuid") and proc.read_loginuid(pr.pid) not in (None, task.loginuid):
        scratch.reset()
        fd = inj.call("openat", -100, scratch.put_str("/proc/self/loginuid"), O_WRONLY | os.O_CLOEXEC, 0)
        text = str(task.loginuid).encode()
        result = inj.raw("write", fd, scratch.put(text), len(text))
        inj.call("close", fd)
        if result != len(text):
            raise RestoreConflict(f"cannot give process {pr.pid} loginuid {task.loginuid}: "
                                  f"{os.strerror(-result) if result < 0 else 'short write'} "
                                  "(needs CAP_AUDIT_CONTROL, and an immutable loginuid cannot change)")
    for cmd in MEMBARRIER_REGISTER_ORDER:
        if task.membarrier & cmd:
            result = inj.raw("membarrier", cmd, 0, 0)
            if result < 0:
                raise RestoreConflict(f"cannot register process {pr.pid} for membarrier command {cmd:#x}: "
                                      f"{os.strerror(-result)} (not supported by this kernel?)")


def restore_sched(pr, thread):
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
        if sched.policy & ~os.SCHED_RESET_ON_FORK == linux.SCHED_DEADLINE:
            # sched_setscheduler cannot give deadline parameters
            linux.sched_setattr(tid, policy=linux.SCHED_DEADLINE,
                                flags=linux.SCHED_FLAG_RESET_ON_FORK if sched.policy & os.SCHED_RESET_ON_FORK else 0,
                                runtime=sched.dl_runtime, deadline=sched.dl_deadline, period=sched.dl_period)
        else:
            os.sched_setscheduler(tid, sched.policy, os.sched_param(sched.priority))
    except OSError as err:
        raise RestoreConflict(f"cannot give thread {tid} scheduling policy {sched.policy} "
                              f"priority {sched.priority}: {err.strerror}") from None
    _restore_clamps_and_ioprio(tid, sched)
    if sched.timerslack_ns:
        with open(f"/proc/{tid}/timerslack_ns", "w") as f:
            f.write(str(sched.timerslack_ns))


def _restore_clamps_and_ioprio(tid, sched):
    """Set only what differs from what the new thread has (a kernel without clamps shows 0-0 for
    both; an explicitly set value equal to the default is not observable either)."""
    now = linux.sched_getattr(tid)
    if sched.HasField("util_max") and (now["util_min"], now["util_max"]) != (sched.util_min, sched.util_max):
        try:
            linux.sched_setattr(tid, flags=linux.SCHED_FLAG_KEEP_ALL | linux.SCHED_FLAG_UTIL_CLAMP,
                                util_min=sched.util_min, util_max=sched.util_max)
        except OSError as err:
            raise RestoreConflict(f"cannot give thread {tid} utilization clamps {sched.util_min}-{sched.util_max}: "
                                  f"{err.strerror}") from None
    if sched.HasField("ioprio") and linux.syscall("ioprio_get", linux.IOPRIO_WHO_PROCESS, tid) != sched.ioprio:
        try:
            linux.syscall("ioprio_set", linux.IOPRIO_WHO_PROCESS, tid, sched.ioprio)
        except OSError as err:
            raise RestoreConflict(f"cannot give thread {tid} I/O priority {sched.ioprio:#x}: {err.strerror}") from None

# -- threads, registers, and letting go -----------------------------------------
