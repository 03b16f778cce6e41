"""Threads of a restored process: each cloned from the leader with its old TID,
its per-thread state (name, altstack, rseq, robust list, pending signals), and
the registers it resumes with."""

import errno
import logging
import os
import struct

from .. import arch as archmod
from .. import images, linux, proc
from ..errors import ImageError, RestoreConflict
from ..inject import SyscallInjector
from ..ptrace import Tracee

log = logging.getLogger(__name__)

PR_SET_NAME = 15
CLONE_VM, CLONE_FS, CLONE_FILES, CLONE_SIGHAND = 0x100, 0x200, 0x400, 0x800
CLONE_THREAD, CLONE_SYSVSEM = 0x10000, 0x40000


def create_threads(pr):
    """[(thread image, tracee, injector)], the leader (the stub itself) first.

    Each other thread is cloned from the leader with its old TID
    (clone3 set_tid) and is auto-attached stopped (PTRACE_O_TRACECLONE).
    """
    leader, others = pr.task.threads[0], pr.task.threads[1:]
    if leader.tid != pr.pid:
        raise ImageError(f"{pr.image.path(images.core(pr.pid))}: first thread {leader.tid} is not the leader")
    out = [(leader, pr.tracee, pr.inj)]
    scratch = pr.scratch
    flags = (CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD | CLONE_SYSVSEM)
    for thread in others:
        scratch.reset()
        tid_array = scratch.put(struct.pack("=i", thread.tid))
        args = scratch.put(struct.pack("=11Q", flags, 0, 0, 0, 0, 0, 0, 0, tid_array, 1, 0))
        result = pr.inj.raw("clone3", args, 88)
        if result == -errno.EEXIST:
            raise RestoreConflict(f"TID {thread.tid} of process {pr.pid} is in use by "
                                  f"{proc.holder_description(thread.tid)}")
        if result < 0:
            raise RestoreConflict(f"cannot create thread {thread.tid} of process {pr.pid}: "
                                  f"{os.strerror(-result)}")
        tracee = Tracee.adopt(thread.tid, pr.arch)
        out.append((thread, tracee, SyscallInjector(tracee, pr.inj.insn_addr)))
    return out

def restore_thread_state(pr, thread, inj):
    arch, scratch = pr.arch, pr.scratch
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
        linux.write_memory(pr.pid, info, pending.raw)
        inj.call("rt_tgsigqueueinfo", pr.pid, thread.tid, pending.signo, info)


def set_registers(pr, threads):
    """Every thread's saved registers, extra regsets first; the thread is then
    parked where the kernel's signal/syscall-restart logic runs on resume."""
    arch = pr.arch
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
        try:
            tracee.settle(resume_regs(arch, regs))
        except OSError as err:
            # what validate.py cannot know (the kernel's own register checks): still the image's fault
            raise ImageError(f"{pr.image.path(images.core(pr.pid))}: registers of thread {thread.tid}: "
                             f"the kernel refuses them ({err.strerror})") from None
        tracee.set_sigmask(thread.sigmask | (thread.sigmask_hi << 64))


def resume_regs(arch, regs):
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

