"""The user-space source: PTRACE_SEIZE + PTRACE_INTERRUPT, /proc, injected syscalls.

What /proc and ptrace cannot tell from outside (signal handlers, brk, the
alternate signal stack, the clear-child-tid address) is asked of the target
itself by injecting syscalls at a syscall instruction of its vDSO, with
arguments in a scratch page mapped for the purpose and unmapped before the
address space is read. Registers are put back exactly as frozen, so the
kernel's own syscall-restart logic runs when the target is thawed.
"""

import contextlib
import ctypes
import errno
import logging
import os
import signal
import struct

from .. import arch as archmod
from .. import linux, pagemap, proc
from ..errors import FreezeError, NoSuchProcess, PyckptError
from ..inject import Scratch, SyscallInjector, find_syscall_insn
from ..ptrace import Tracee
from .base import PageRun, PosixTimerState, ProcessState, SeccompFilterState, Source, ThreadState

log = logging.getLogger(__name__)

PR_GET_PDEATHSIG = 2
PR_GET_TID_ADDRESS = 40
PR_GET_DUMPABLE = 3
PR_GET_SECUREBITS = 27
PROT_RW = 3
COPY_CHUNK = 4 << 20
JOB_STOP_SIGNALS = (signal.SIGSTOP, signal.SIGTSTP, signal.SIGTTIN, signal.SIGTTOU)


class PtraceSource(Source):
    name = "ptrace"
    injects = True

    def __init__(self, root_pid, options):
        super().__init__(root_pid, options)
        self.arch = archmod.host()
        self.tracees = {}      # tid -> Tracee
        self.owner = {}        # tid -> the pid of the process it was seized as a thread of
        self.pids = []         # processes, parents first
        self.released = False
        self.stopped = set()   # pids that were in a job-control stop
        self.stop_signal = {}  # pid -> the signal of that stop
        self.stop_collected = {}  # pid -> its parent already took the stop report (asked of the parent)

    # -- freeze / release ----------------------------------------------------

    def freeze(self):
        if self.root_pid == os.getpid():
            raise FreezeError("pyckpt cannot checkpoint itself")
        if not proc.exists(self.root_pid):
            raise NoSuchProcess(f"process {self.root_pid} does not exist")
        if proc.read_stat(self.root_pid).state in ("Z", "X"):
            raise NoSuchProcess(f"process {self.root_pid} is a zombie")
        try:
            self.pids = self._walk_tree(self._freeze_process)
        except BaseException:
            self.release(kill=False)
            raise
        return list(self.pids)

    def _freeze_process(self, pid):
        if pid not in self.pids:
            self.pids.append(pid)
            try:
                if proc.read_stat(pid).state == "T":
                    self.stopped.add(pid)
            except NoSuchProcess:
                self._forget_exited(pid)   # reaped by its parent before the parent was frozen
                return
        # Threads may be created while we attach: repeat until the set is stable.
        exited = set()
        while True:
            new = [tid for tid in proc.thread_ids(pid) if tid not in self.tracees and tid not in exited]
            if not new:
                return
            for tid in new:
                tracee = Tracee(tid, self.arch)
                try:
                    tracee.seize(suspend_seccomp=_under_seccomp(pid, tid))
                except NoSuchProcess:
                    exited.add(tid)  # a thread that just exited
                    if tid == pid and not self.tracees.keys() & set(new):
                        self._forget_exited(pid)   # the process itself: a zombie, as _walk_tree sees it
                        return
                    continue
                self.tracees[tid] = tracee
                self.owner[tid] = pid
                tracee.interrupt()
            for tid in new:
                if tid in self.tracees:
                    try:
                        stop = self.tracees[tid].wait_event_stop()
                    except NoSuchProcess:
                        # It exited between the seize and its stop: a short-lived child of a busy
                        # tree (make's jobs) or a thread on its way out. Its parent is frozen already,
                        # so a process stays a zombie: _walk_tree counts it as one.
                        del self.tracees[tid]
                        exited.add(tid)
                        if tid == pid:
                            self._forget_exited(pid)
                            return
                        continue
                    # In a group stop, the seize reports the stopping signal (else SIGTRAP).
                    if tid == pid and pid in self.stopped and stop.signal in JOB_STOP_SIGNALS:
                        self.stop_signal[pid] = stop.signal
            log.debug("froze %d: threads %s", pid, sorted(t for t in self.tracees))

    def _forget_exited(self, pid):
        # only its own threads (every other process's tracees are still attached and needed)
        for tid in [t for t, owner in self.owner.items() if owner == pid and t in self.tracees]:
            del self.tracees[tid]
        self.pids.remove(pid)
        self.stopped.discard(pid)

    def release(self, kill):
        if self.released:
            return
        self.released = True
        if kill:
            for pid in self.pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            # Reap what the tracer is shown of each exit, leaders last: a
            # leader's exit is reported only once its other threads are gone.
            for tracee in sorted(self.tracees.values(), key=lambda t: t.tid in self.pids):
                try:
                    tracee.wait()
                except ChildProcessError:
                    pass
            return
        for tracee in self.tracees.values():
            try:
                # A process that was stopped goes back into its stop.
                tracee.detach(signal.SIGSTOP if tracee.tid in self.stopped else 0)
            except OSError as err:
                if err.errno != errno.ESRCH:
                    log.warning("could not detach thread %d: %s", tracee.tid, err)

    # -- state -------------------------------------------------------------------

    def _threads_of(self, pid):
        return [self.tracees[tid] for tid in sorted(self.tracees, key=lambda t: (t != pid, t))
                if os.path.exists(f"/proc/{pid}/task/{tid}")]

    def collect(self, pid):
        threads = []
        for tracee in self._threads_of(pid):
            threads.append(self._thread_state(tracee))
        shared = linux.peek_siginfo(pid, shared=True)
        state = ProcessState(pid=pid, threads=threads, sigactions=[], shared_pending=shared, brk=0,
                             stopped=pid in self.stopped)
        self._ask_target(pid, state)
        if state.stopped:
            state.stop_signal = self.stop_signal.get(pid, signal.SIGSTOP)
            state.stop_collected = self.stop_collected.get(pid, False)  # asked of its parent, collected first
        return state

    def _thread_state(self, tracee):
        regsets = {"prstatus": tracee.get_regset(linux.NT_PRSTATUS, archmod.gpregs_size(self.arch))}
        for note_type, name in self.arch.EXTRA_REGSETS:
            try:
                regsets[name] = tracee.get_regset(note_type, getattr(self.arch, "XSTATE_MAX", 4096))
            except OSError as err:
                if err.errno not in (errno.EINVAL, errno.ENODEV, errno.EIO):
                    raise
                log.debug("thread %d: regset %s not available (%s)", tracee.tid, name, err)
        rseq = None
        try:
            conf = linux.get_rseq_configuration(tracee.tid)
            if conf.rseq_abi_pointer:
                rseq = (conf.rseq_abi_pointer, conf.rseq_abi_size, conf.signature)
        except OSError as err:
            if err.errno not in (errno.EIO, errno.EINVAL):
                raise
        head = ctypes.c_uint64()
        length = ctypes.c_size_t()
        linux.syscall("get_robust_list", tracee.tid, ctypes.c_void_p(ctypes.addressof(head)),
                      ctypes.c_void_p(ctypes.addressof(length)))
        state = ThreadState(
            tid=tracee.tid, regsets=regsets, sigmask=tracee.get_sigmask(),
            pending=linux.peek_siginfo(tracee.tid, shared=False), rseq=rseq,
            robust_list=(head.value, length.value),
        )
        status = proc.read_status(tracee.tid)   # /proc/TID works for any thread
        state.seccomp_mode = int(status.get("Seccomp", "0"))
        if state.seccomp_mode == linux.SECCOMP_MODE_FILTER:
            state.seccomp_filters = _seccomp_filters(tracee.tid)
        return state

    def _ask_target(self, pid, state):
        """Fill what only the target can tell, by injecting syscalls into it.

        Known window: while a call is being injected the thread's registers
        point into its vDSO; if pyckpt is SIGKILLed right then, the kernel
        detaches the thread with those registers and it crashes. The window
        is a few milliseconds per process; everything else in a dump (the
        page copy above all) can be killed safely.
        """
        with self._driving(pid) as (inj, insn, threads):
            self._ask_threads(pid, state, inj, insn, threads)

    @contextlib.contextmanager
    def _driving(self, pid):
        """Injected syscalls in `pid`: (injector on its leader, the syscall insn, its threads);
        every thread's registers and signal mask put back afterwards."""
        insn = find_syscall_insn(pid, proc.read_vmas(pid), self.arch)
        threads = self._threads_of(pid)
        saved = {t.tid: (t.get_regs(), t.get_sigmask()) for t in threads}
        for tracee in threads:
            tracee.set_sigmask((1 << 64) - 1)  # nothing may be delivered while we drive it
        try:
            yield SyscallInjector(threads[0], insn), insn, threads
        finally:
            for tracee in threads:
                regs, mask = saved[tracee.tid]
                tracee.settle(regs)
                tracee.set_sigmask(mask)

    def run_in_target(self, pid, fn):
        """fn(injector) run with frozen `pid` driven to make syscalls; returns fn's result."""
        with self._driving(pid) as (inj, _insn, _threads):
            return fn(inj)

    def _ask_threads(self, pid, state, inj, insn, threads):
        leader = threads[0]
        page = pagemap.PAGE_SIZE
        scratch_addr = inj.call("mmap", 0, page, PROT_RW, self.arch.MAP_PRIVATE | self.arch.MAP_ANONYMOUS, -1, 0)
        try:
            state.mlock_future = _mlock_future(pid, scratch_addr)
            scratch = Scratch(pid, scratch_addr, page)
            size = self.arch.SIGACTION_SIZE
            old = scratch.alloc(size)
            for signo in range(1, self.arch.NSIG + 1):
                if signo in (signal.SIGKILL, signal.SIGSTOP):
                    continue
                if inj.raw("rt_sigaction", signo, 0, old, self.arch.NSIG // 8) < 0:
                    continue  # numbers the kernel reserves (e.g. glibc's 32/33 are valid; others may not be)
                handler, flags, restorer, mask = self.arch.unpack_sigaction(scratch.get(old, size))
                if handler != 0:
                    state.sigactions.append((signo, handler, flags, restorer, mask))
            state.brk = inj.call("brk", 0)
            word = scratch.alloc(8)
            inj.call("prctl", PR_GET_PDEATHSIG, word)
            state.pdeathsig = struct.unpack("<i", scratch.get(word, 4))[0]
            state.dumpable = inj.call("prctl", PR_GET_DUMPABLE)
            state.securebits = inj.call("prctl", PR_GET_SECUREBITS)
            state.thp_disable = inj.call("prctl", linux.PR_GET_THP_DISABLE, 0, 0, 0, 0)
            itimerval = scratch.alloc(32)
            for which in range(3):
                inj.call("getitimer", which, itimerval)
                i_sec, i_usec, v_sec, v_usec = struct.unpack("=qqqq", scratch.get(itimerval, 32))
                if v_sec or v_usec:
                    state.itimers.append((which, v_sec * 1000000 + v_usec, i_sec * 1000000 + i_usec))
            self._posix_timers(pid, inj, scratch, state)
            inj.call("prctl", linux.PR_GET_CHILD_SUBREAPER, word)
            state.child_subreaper = struct.unpack("<i", scratch.get(word, 4))[0] != 0
            state.membarrier = self._membarrier(inj)
            self._stops_collected(pid, inj, scratch)
            stack_size = struct.calcsize(self.arch.STACK_T_FORMAT)
            for tracee, thread in zip(threads, state.threads):
                tinj = inj if tracee is leader else SyscallInjector(tracee, insn)
                out = scratch.alloc(stack_size)
                tinj.call("sigaltstack", 0, out)
                thread.altstack = tuple(self.arch.unpack_stack_t(scratch.get(out, stack_size)))
                tinj.call("prctl", PR_GET_TID_ADDRESS, word)
                thread.clear_child_tid = struct.unpack("<Q", scratch.get(word, 8))[0]
        finally:
            inj.call("munmap", scratch_addr, page)

    @staticmethod
    def _membarrier(inj):
        """Registrations, seen by the command each allows (EPERM before it). A global-expedited
        registration has no such command: the ptrace source cannot see it (the kmod source can)."""
        registered = 0
        for register, command in linux.MEMBARRIER_PROBES.items():
            if inj.raw("membarrier", command, 0, 0) == 0:
                registered |= register
        return registered

    def _stops_collected(self, pid, inj, scratch):
        """For each stopped child: has pid already taken its stop report? (waitid WNOWAIT, in pid)."""
        children = [c for c in self.stopped if c != pid and proc.read_stat(c).ppid == pid]
        info = scratch.alloc(linux.SIGINFO_SIZE)
        for child in children:
            linux.write_memory(pid, info, bytes(linux.SIGINFO_SIZE))
            flags = linux.WSTOPPED | linux.WNOHANG | linux.WNOWAIT | linux.WALL
            inj.call("waitid", linux.P_PID, child, info, flags, 0)
            si_pid = struct.unpack("=i", scratch.get(info + 16, 4))[0]
            self.stop_collected[child] = si_pid != child

    def _posix_timers(self, pid, inj, scratch, state):
        """/proc/PID/timers, plus time left and overrun asked of the target (timer_gettime/getoverrun)."""
        spec = scratch.alloc(32)
        for t in proc.read_posix_timers(pid):
            inj.call("timer_gettime", t.id, spec, detail=f"POSIX timer {t.id}")
            i_sec, i_nsec, v_sec, v_nsec = struct.unpack("=qqqq", scratch.get(spec, 32))
            overrun = inj.call("timer_getoverrun", t.id, detail=f"POSIX timer {t.id}")
            state.posix_timers.append(PosixTimerState(
                id=t.id, clock=t.clock, notify=t.notify, signo=t.signo, sigval=t.sigval, target=t.target,
                value_ns=v_sec * 1000000000 + v_nsec, interval_ns=i_sec * 1000000000 + i_nsec, overrun=overrun))

    # -- memory --------------------------------------------------------------------

    def dump_pages(self, pid, vmas, out):
        runs = pagemap.data_runs(pid, [(v.start, v.end) for v in vmas])
        if not runs:
            return []
        buf = bytearray(COPY_CHUNK)
        view = memoryview(buf)
        mem = os.open(f"/proc/{pid}/mem", os.O_RDONLY)
        try:
            for vaddr, npages in runs:
                offset, remaining = vaddr, npages * pagemap.PAGE_SIZE
                while remaining:
                    try:
                        n = os.preadv(mem, [view[:min(remaining, COPY_CHUNK)]], offset)
                    except OSError as err:
                        # e.g. a guard region on a kernel that does not show them in pagemap (6.13)
                        raise PyckptError(f"cannot read memory of process {pid} at {offset:#x}: "
                                          f"{err.strerror}") from err
                    if n <= 0:
                        raise PyckptError(f"cannot read memory of process {pid} at {offset:#x}")
                    _write_all(out, view[:n])
                    offset += n
                    remaining -= n
        finally:
            os.close(mem)
        return [PageRun(v, n) for v, n in runs]


def _mlock_future(pid, new_mapping):
    """mlockall(MCL_FUTURE[|MCL_ONFAULT]) shows only on mappings made after it: on the one just made."""
    flags = next((v.vmflags for v in proc.read_vmas(pid) if v.start <= new_mapping < v.end), frozenset())
    if "lo" not in flags:
        return 0
    return linux.MCL_FUTURE | (linux.MCL_ONFAULT if "lf" in flags else 0)


def _under_seccomp(pid, tid):
    try:
        return proc.read_status(pid, tid).get("Seccomp", "0") != "0"
    except NoSuchProcess:
        return False


def _seccomp_filters(tid):
    """The thread's filter chain, oldest first (as PTRACE_SECCOMP_GET_FILTER numbers them)."""
    chain = []
    index = 0
    while True:
        try:
            count = linux.ptrace(linux.PTRACE_SECCOMP_GET_FILTER, tid, index, 0)
        except OSError as err:
            if err.errno == errno.ENOENT:
                break
            raise PyckptError(f"thread {tid}: cannot read its seccomp filter {index}: {err.strerror}") from err
        buf = ctypes.create_string_buffer(count * linux.SOCK_FILTER_SIZE)
        linux.ptrace(linux.PTRACE_SECCOMP_GET_FILTER, tid, index, ctypes.addressof(buf))
        meta = (ctypes.c_uint64 * 2)(index, 0)
        linux.ptrace(linux.PTRACE_SECCOMP_GET_METADATA, tid, ctypes.sizeof(meta), ctypes.addressof(meta))
        chain.append(SeccompFilterState(program=buf.raw, log=bool(meta[1] & linux.SECCOMP_FILTER_FLAG_LOG)))
        index += 1
    return chain


def _write_all(out, data):
    while data:
        data = data[out.write(data):]
