"""The kernel source: crak.ko through /dev/crak (see kmod/include/uapi/linux/crak.h).

One session fd per target. The module freezes every thread without ptrace
or signals (each parks itself inside the kernel on its way back to user
mode) and answers everything the ptrace source must inject syscalls for
from the task and the mm directly: regsets, signal masks, handlers and
queues, the alternate signal stack, clear-child-tid, robust list, rseq,
brk, pdeath signal, dumpable and the interval timers. Pages go from the target straight into the
image file, one copy, no user-space buffer. Closing the session fd (also
when pyckpt dies) thaws the target.

The address space is read from /proc/PID/maps+smaps (the base class), as by
the ptrace source, so both describe VMAs with the same code.
"""

import ctypes
import errno
import fcntl
import logging
import os
import signal
import struct
import termios
import time

from .. import arch as archmod
from .. import linux, pagemap, proc, sockdiag
from ..files import unixqueue
from ..errors import AccessDenied, FreezeError, NoSuchProcess, PyckptError, UnsupportedState
from . import crak_uapi as uapi
from .base import PageRun, PosixTimerState, ProcessState, SeccompFilterState, Source, ThreadState

log = logging.getLogger(__name__)

_REQUEST = None
_RUNS_CAP = 1024
REAP_WAIT_S = 10.0


def _requests():
    global _REQUEST
    if _REQUEST is None:
        _REQUEST = uapi.requests()
    return _REQUEST


def _ioctl(fd, name, arg, what):
    """CRAK_IOC_<name> on fd; an OSError becomes a PyckptError naming `what`."""
    try:
        return fcntl.ioctl(fd, _requests()[name], arg, True)
    except OSError as err:
        raise _error(err, f"{what} (CRAK_IOC_{name})") from err


def _error(err, what):
    msg = f"{what}: {os.strerror(err.errno)} (errno {err.errno})" if err.errno else f"{what}: {err}"
    if err.errno == errno.ESRCH:
        return NoSuchProcess(msg)
    if err.errno in (errno.EPERM, errno.EACCES):
        return AccessDenied(msg)
    if err.errno in (errno.ETIMEDOUT, errno.EINTR, errno.EALREADY, errno.EDEADLK):
        return FreezeError(msg)
    return PyckptError(msg)


def open_device():
    """An open /dev/crak after a successful version handshake; the caller closes it."""
    try:
        fd = os.open(uapi.DEVICE_PATH, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        raise PyckptError(f"{uapi.DEVICE_PATH} is missing: load crak.ko "
                          "(make -C kmod && insmod kmod/crak.ko) or use --backend ptrace") from None
    except OSError as err:
        raise _error(err, f"cannot open {uapi.DEVICE_PATH}") from err
    try:
        v = uapi.Version(abi_version=uapi.ABI_VERSION)
        try:
            fcntl.ioctl(fd, _requests()["VERSION"], v, True)
        except OSError as err:
            if err.errno == errno.EPROTONOSUPPORT:
                raise PyckptError(
                    f"{uapi.DEVICE_PATH}: crak.ko speaks ABI version {v.module_version}, this pyckpt "
                    f"speaks version {uapi.ABI_VERSION}; load the crak.ko that comes with this pyckpt"
                ) from None
            raise _error(err, f"{uapi.DEVICE_PATH}: version handshake") from err
        if v.page_size != pagemap.PAGE_SIZE:
            raise PyckptError(f"{uapi.DEVICE_PATH}: module page size {v.page_size} "
                              f"!= {pagemap.PAGE_SIZE}")
        return fd
    except BaseException:
        os.close(fd)
        raise


def probe():
    """The ABI version of the loaded crak.ko (raises with the reason if it is unusable)."""
    fd = open_device()
    os.close(fd)
    return uapi.ABI_VERSION


class KmodSource(Source):
    name = "kmod"

    def __init__(self, root_pid, options):
        super().__init__(root_pid, options)
        self.arch = archmod.host()
        self.sessions = {}     # pid -> session fd, one per frozen process
        self.dev = -1
        self.pids = []
        self.frozen = False
        self.released = False
        self.stopped = set()   # pids that were in a job-control stop

    # -- freeze / release ----------------------------------------------------

    def freeze(self):
        if self.frozen:
            return list(self.pids)  # dump() enters `with source:` and then asks again
        if self.released:
            raise FreezeError(f"the crak session on process {self.root_pid} was already released")
        if self.root_pid == os.getpid():
            raise FreezeError("pyckpt cannot checkpoint itself")
        if not proc.exists(self.root_pid):
            raise NoSuchProcess(f"process {self.root_pid} does not exist")
        if proc.read_stat(self.root_pid).state in ("Z", "X"):
            raise NoSuchProcess(f"process {self.root_pid} is a zombie")
        try:
            self.dev = open_device()
            self.pids = self._walk_tree(self._freeze_process)
            self.frozen = True
        except BaseException:
            self.release(kill=False)
            raise
        finally:
            if getattr(self, "dev", -1) >= 0:
                os.close(self.dev)
                self.dev = -1
        return list(self.pids)

    def _freeze_process(self, pid):
        try:
            self._freeze_one(pid)
        except PyckptError:
            if not proc.exited(pid):
                raise
            # A short-lived child of a busy tree (make's jobs) that exited while we came to it:
            # _walk_tree counts it as a zombie of its frozen parent, or it is gone.
            session = self.sessions.pop(pid, None)
            if session is not None:
                os.close(session)
            self.stopped.discard(pid)
            log.debug("process %d exited while being frozen", pid)

    def _freeze_one(self, pid):
        if pid == os.getpid():
            raise FreezeError("pyckpt cannot checkpoint itself")
        if proc.read_stat(pid).state == "t":
            # A ptrace stop belongs to another tracer; crak.ko cannot park it.
            raise FreezeError(f"process {pid} is stopped by a tracer (ptrace): the kmod backend "
                              "cannot freeze it; detach the tracer first")
        q = uapi.OpenSession(pid=pid, flags=uapi.OPEN_F_CLOEXEC)
        self.sessions[pid] = _ioctl(self.dev, "OPEN_SESSION", q, f"cannot open a crak session on process {pid}")
        f = uapi.Freeze(timeout_ms=0)
        _ioctl(self.sessions[pid], "FREEZE", f, f"cannot freeze process {pid}")
        # Threads in a job-control stop count as frozen in crak.ko and stay
        # stopped after thaw; the image records the stop (the restorer stops
        # the process again), as the ptrace source does.
        if f.nr_stopped:
            self.stopped.add(pid)
        log.debug("froze %d: %d threads parked in crak.ko, %d of them job-control stopped",
                  pid, f.nr_threads, f.nr_stopped)

    def release(self, kill):
        if self.released:
            return
        self.released = True
        pids = list(self.sessions)
        try:
            if kill:
                for pid in pids:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
            else:
                for pid in pids:
                    try:
                        fcntl.ioctl(self.sessions[pid], _requests()["THAW"], uapi.Thaw(), True)
                    except OSError as err:
                        if err.errno != errno.EALREADY:
                            log.warning("thaw of %d failed (%s); closing the session thaws", pid, err)
        finally:
            for pid in pids:
                os.close(self.sessions.pop(pid))  # the last reference: thaws whatever is still parked
            self.frozen = False
        if kill:
            # The parked threads die on SIGKILL; the real parent reaps the
            # process (we are no tracer). Wait until it is no longer running,
            # so its PID is only held by a zombie the parent reaps.
            deadline = time.monotonic() + REAP_WAIT_S
            for pid in pids:
                while time.monotonic() < deadline and _alive(pid):
                    time.sleep(0.01)

    def _ioctl(self, pid, name, arg, what):
        if pid not in self.sessions:
            raise PyckptError(f"{what}: no crak session on process {pid} (not frozen)")
        return _ioctl(self.sessions[pid], name, arg, what)

    # -- state ---------------------------------------------------------------

    def _tids(self, pid):
        cap = 256
        while True:
            buf = (ctypes.c_uint32 * cap)()
            q = uapi.Threads(count=cap, tids_ptr=ctypes.addressof(buf))
            self._ioctl(pid, "THREADS", q, f"cannot list the threads of process {pid}")
            if q.nr_threads <= cap:
                tids = list(buf[:q.nr_threads])
                return sorted(tids, key=lambda t: (t != pid, t))
            cap = q.nr_threads + 16

    def collect(self, pid):
        threads = [self._thread_state(pid, tid) for tid in self._tids(pid)]
        sigactions = self._sigactions(pid)
        misc = uapi.ProcessMisc()
        self._ioctl(pid, "GET_PROCESS_MISC", misc, f"cannot read brk/pdeathsig/dumpable of process {pid}")
        creds = uapi.Creds(tid=0)
        self._ioctl(pid, "GET_CREDS", creds, f"cannot read the securebits of process {pid}")
        return ProcessState(
            pid=pid, threads=threads, sigactions=sigactions,
            shared_pending=self._pending(pid, 0, shared=True), brk=misc.brk,
            pdeathsig=misc.pdeath_signal, dumpable=misc.dumpable, securebits=creds.securebits,
            stopped=pid in self.stopped, itimers=self._itimers(pid),
            stop_signal=misc.stop_signal, stop_collected=pid != self.root_pid and not misc.stop_flags & uapi.STOP_REPORTABLE,
            membarrier=misc.membarrier, child_subreaper=bool(misc.child_subreaper),
            posix_timers=self._posix_timers(pid),
            thp_disable=proc.read_thp_disable(pid), mlock_future=_mlock_future(misc.mlock_future),
        )

    def _posix_timers(self, pid):
        """The POSIX timers as /proc/PID/timers, timer_gettime and timer_getoverrun report them."""
        cap = 64
        while True:
            buf = (uapi.PosixTimer * cap)()
            q = uapi.PosixTimers(count=cap, timers_ptr=ctypes.addressof(buf))
            self._ioctl(pid, "GET_POSIX_TIMERS", q, f"cannot read the POSIX timers of process {pid}")
            if q.nr_timers <= cap:
                break
            cap = min(q.nr_timers + 16, uapi.MAX_POSIX_TIMERS)
        out = []
        for e in buf[:q.nr_copied]:
            if e.flags & uapi.POSIX_TIMER_F_NO_VALUE:
                raise UnsupportedState(f"process {pid}: POSIX timer {e.id} runs on clock {e.clock} (an alarm "
                                       "clock), whose time left crak.ko cannot read; dump it with --backend ptrace")
            out.append(PosixTimerState(id=e.id, clock=e.clock, notify=e.notify, signo=e.signo, sigval=e.sigval,
                                       target=e.target, value_ns=e.value_ns, interval_ns=e.interval_ns,
                                       overrun=e.overrun))
        return sorted(out, key=lambda t: t.id)

    def _itimers(self, pid):
        """(which, value_us, interval_us) of the armed timers, as getitimer(2) reports
        them in the target (microseconds truncated from crak.ko's nanoseconds)."""
        q = uapi.Itimers()
        self._ioctl(pid, "GET_ITIMERS", q, f"cannot read the interval timers of process {pid}")
        out = []
        for which in range(3):
            value_us, interval_us = q.value_ns[which] // 1000, q.interval_ns[which] // 1000
            if value_us:
                out.append((which, value_us, interval_us))
        return out

    def _regset(self, pid, tid, note_type, cap):
        """The regset's bytes as PTRACE_GETREGSET with a cap-byte buffer returns them, or None."""
        what = f"cannot read regset {note_type:#x} of thread {tid}"
        q = uapi.Regset(tid=tid, note_type=note_type, buf_len=0)
        try:
            fcntl.ioctl(self.sessions[pid], _requests()["GET_REGSET"], q, True)
        except OSError as err:
            if err.errno in (errno.ENODATA, errno.ENODEV, errno.EINVAL, errno.EIO):
                return None
            raise _error(err, what) from err
        size = min(q.full_len, cap)
        buf = ctypes.create_string_buffer(max(size, 1))
        q = uapi.Regset(tid=tid, note_type=note_type, buf_len=size, buf_ptr=ctypes.addressof(buf))
        try:
            fcntl.ioctl(self.sessions[pid], _requests()["GET_REGSET"], q, True)
        except OSError as err:
            if err.errno in (errno.ENODATA, errno.ENODEV, errno.EIO):
                return None
            raise _error(err, what) from err
        return buf.raw[:q.out_len]

    def _thread_state(self, pid, tid):
        from .. import linux
        prstatus = self._regset(pid, tid, linux.NT_PRSTATUS, archmod.gpregs_size(self.arch))
        if prstatus is None:
            raise PyckptError(f"crak.ko has no general registers (NT_PRSTATUS) of thread {tid}")
        regsets = {"prstatus": prstatus}
        for note_type, name in self.arch.EXTRA_REGSETS:
            data = self._regset(pid, tid, note_type, getattr(self.arch, "XSTATE_MAX", 4096))
            if data is None:
                log.debug("thread %d: regset %s not available", tid, name)
            else:
                regsets[name] = data
        sig = uapi.ThreadSignals(tid=tid)
        self._ioctl(pid, "GET_THREAD_SIGNALS", sig, f"cannot read the signal mask of thread {tid}")
        misc = uapi.ThreadMisc(tid=tid)
        self._ioctl(pid, "GET_THREAD_MISC", misc, f"cannot read sigaltstack/rseq/robust list of thread {tid}")
        rseq = (misc.rseq, misc.rseq_len, misc.rseq_sig) if misc.rseq else None
        # As PTRACE_GETSIGMASK: a thread inside sigsuspend/ppoll/pselect (restore
        # pending) reports the mask it will get back, which is what to restore;
        # the restarted syscall installs its temporary mask again.
        if sig.flags & uapi.TSIG_F_RESTORE_SIGMASK:
            sigmask = _sigset(sig.saved_mask)
        else:
            sigmask = _sigset(sig.blocked)
        mode, filters = self._seccomp(pid, tid)
        return ThreadState(
            tid=tid, regsets=regsets, sigmask=sigmask,
            pending=self._pending(pid, tid, shared=False), rseq=rseq,
            altstack=(misc.sas_ss_sp, misc.sas_ss_flags, misc.sas_ss_size),
            clear_child_tid=misc.clear_child_tid,
            robust_list=(misc.robust_list, misc.robust_list_len),
            seccomp_mode=mode, seccomp_filters=filters,
        )

    def _seccomp(self, pid, tid):
        """(mode, filters oldest first) as PTRACE_SECCOMP_GET_FILTER/GET_METADATA report them."""
        what = f"cannot read the seccomp filters of thread {tid}"
        size = 0
        while True:
            buf = ctypes.create_string_buffer(max(size, 1))
            q = uapi.Seccomp(tid=tid, buf_ptr=ctypes.addressof(buf), buf_len=size)
            self._ioctl(pid, "GET_SECCOMP", q, what)
            if q.size <= size:
                break
            if q.size > uapi.MAX_SECCOMP_BUF:
                raise UnsupportedState(f"thread {tid}: its seccomp filters take {q.size} bytes, more than "
                                       f"crak.ko hands out ({uapi.MAX_SECCOMP_BUF})")
            size = q.size
        data, filters, offset = buf.raw[:q.size], [], 0
        head = ctypes.sizeof(uapi.SeccompFilter)
        for _ in range(q.nr_filters):
            rec = uapi.SeccompFilter.from_buffer_copy(data, offset)
            if rec.flags & uapi.SECCOMP_FILTER_F_LISTENER:
                raise UnsupportedState(f"process {pid} thread {tid}: a seccomp filter has a user-notification "
                                       "listener (SECCOMP_RET_USER_NOTIF, a supervisor elsewhere); not supported")
            program = data[offset + head:offset + head + rec.len * 8]
            filters.append(SeccompFilterState(program=program, log=bool(rec.flags & uapi.SECCOMP_FILTER_F_LOG)))
            offset += head + rec.len * 8
        return q.mode, filters[::-1]

    def _pending(self, pid, tid, shared):
        what = f"cannot read the {'shared' if shared else f'thread {tid}'} signal queue of process {pid}"
        out, batch = [], 64
        while True:
            entries = (uapi.Siginfo * batch)()
            q = uapi.Pending(tid=tid, flags=uapi.PENDING_F_SHARED if shared else 0, start=len(out),
                             count=batch, entries_ptr=ctypes.addressof(entries))
            self._ioctl(pid, "GET_PENDING", q, what)
            out.extend(bytes(e.info) for e in entries[:q.nr_copied])
            if q.nr_copied < batch or len(out) >= q.nr_queued:
                return out

    def _sigactions(self, pid):
        acts = (uapi.Sigaction * 128)()
        q = uapi.Sigactions(count=128, actions_ptr=ctypes.addressof(acts))
        self._ioctl(pid, "GET_SIGACTIONS", q, f"cannot read the signal handlers of process {pid}")
        out = []
        for i in range(min(q.nr_signals, self.arch.NSIG)):
            signo = i + 1
            if signo in (signal.SIGKILL, signal.SIGSTOP):
                continue
            a = acts[i]
            if a.handler != 0:
                out.append((signo, a.handler, a.sa_flags, a.restorer, _sigset(a.mask)))
        return out

    # -- memory --------------------------------------------------------------

    def dump_pages(self, pid, vmas, out):
        """DUMP_PAGES straight into out's fd at its position; runs merged within a VMA only."""
        fd = out.fileno()
        if hasattr(out, "flush"):
            out.flush()
        offset = os.lseek(fd, 0, os.SEEK_CUR)
        runs_buf = (uapi.PageRun * _RUNS_CAP)()
        runs = []
        for vma in vmas:
            start, end = vma.start, vma.end
            first = True
            while start < end:
                q = uapi.DumpPages(start=start, end=end, out_fd=fd, out_offset=offset,
                                   runs_ptr=ctypes.addressof(runs_buf), runs_cap=_RUNS_CAP)
                self._ioctl(pid, "DUMP_PAGES", q, f"cannot dump the pages of process {pid} "
                            f"at {start:#x}-{end:#x}")
                for r in runs_buf[:q.nr_runs]:
                    if (not first and runs and
                            runs[-1].vaddr + runs[-1].nr_pages * pagemap.PAGE_SIZE == r.start):
                        runs[-1].nr_pages += r.nr_pages
                    else:
                        runs.append(PageRun(r.start, r.nr_pages))
                    first = False
                offset = q.out_offset
                if q.next <= start:
                    raise PyckptError(f"crak.ko made no progress dumping process {pid} at {start:#x}")
                start = q.next
        os.lseek(fd, offset, os.SEEK_SET)
        return runs

    def pipe_contents(self, pid, fd, size):
        if size > uapi.MAX_PEEK and _bytes_queued(pid, fd) > uapi.MAX_PEEK:
            raise UnsupportedState(f"process {pid} fd {fd}: its pipe holds more than {uapi.MAX_PEEK} bytes, "
                                   "more than crak.ko copies (PIPE_PEEK); not supported")
        size = min(size, uapi.MAX_PEEK)
        buf = ctypes.create_string_buffer(max(size, 1))
        q = uapi.PipePeek(fd=fd, buf_ptr=ctypes.addressof(buf), buf_len=size)
        self._ioctl(pid, "PIPE_PEEK", q, f"cannot read the buffer of the pipe at fd {fd} of process {pid}")
        return buf.raw[:q.out_len]

    def unix_queue(self, pid, fd, sock_type, shut_rd, what):
        try:
            return self._unix_queue(pid, fd, 0, 0, sock_type, what)
        except unixqueue.FilesInFlight:
            pass
        # crak.ko copies bytes, not files: they come from a peek in user space, put on the
        # segments crak.ko says carry them (a peek cannot tell where a stream's segments begin)
        segments = self._unix_queue(pid, fd, 0, 0, sock_type, what, segments=True)
        peeked = unixqueue.peek_queue(pid, fd, sock_type, shut_rd, what, stream_segments=True)
        return unixqueue.attach_files(segments, peeked, sock_type, what)

    def unix_pending_queue(self, pid, listener_fd, index, sock_type, what):
        try:
            return self._unix_queue(pid, listener_fd, uapi.UNIX_QUEUE_F_PENDING, index, sock_type, what)
        except unixqueue.FilesInFlight:
            raise UnsupportedState(f"{what} has sent file descriptors (SCM_RIGHTS) on a connection not yet "
                                   "accepted; not supported") from None

    def _unix_queue(self, pid, fd, flags, index, sock_type, what, segments=False):
        """UNIX_QUEUE: the queue copied in place by crak.ko, as [(data, sender name, [])]."""
        size = 1 << 16
        while True:
            buf = ctypes.create_string_buffer(size)
            q = uapi.UnixQueue(fd=fd, flags=flags, index=index, buf_ptr=ctypes.addressof(buf), buf_len=size)
            try:
                fcntl.ioctl(self.sessions[pid], _requests()["UNIX_QUEUE"], q, True)
                break
            except OSError as err:
                if err.errno == errno.ENOSPC and q.out_len <= uapi.MAX_PEEK:
                    size = q.out_len
                    continue
                raise _error(err, f"{what}: cannot read its queue (CRAK_IOC_UNIX_QUEUE)") from err
        return unix_records(buf.raw[:q.out_len], q.nr_msgs, sock_type, what, segments)


def unix_records(raw, count, sock_type, what, segments=False):
    """Parse UNIX_QUEUE records into the queue as the image keeps it (files.unixqueue.shape_queue);
    segments: [(data, sender, whether it carries files)], one per queued skb, instead."""
    head = ctypes.sizeof(uapi.UnixMsg)
    messages, offset = [], 0
    for _ in range(count):
        m = uapi.UnixMsg.from_buffer_copy(raw, offset)
        if m.flags & uapi.UNIX_MSG_F_FDS and not segments:
            raise unixqueue.FilesInFlight(what)
        start = offset + head
        sender = sockdiag.socket_name(raw[start:start + m.addr_len])
        data = raw[start + m.addr_len:start + m.addr_len + m.len]
        messages.append((data, sender, bool(m.flags & uapi.UNIX_MSG_F_FDS)) if segments else (data, sender, []))
        offset += (head + m.addr_len + m.len + 7) & ~7
    return messages if segments else unixqueue.shape_queue(messages, sock_type)


def _mlock_future(bits):
    if not bits & uapi.MLOCK_F_FUTURE:
        return 0
    return linux.MCL_FUTURE | (linux.MCL_ONFAULT if bits & uapi.MLOCK_F_ONFAULT else 0)


def _sigset(words):
    return words[0] | (words[1] << 64)


def _alive(pid):
    """True while pid exists and is not yet a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state not in ("Z", "X")


def _bytes_queued(pid, fd):
    """FIONREAD of the pipe at pid's fd, through a new read end (the process's own is left alone)."""
    try:
        end = os.open(f"/proc/{pid}/fd/{fd}", os.O_RDONLY | os.O_NONBLOCK)
    except OSError as err:
        raise UnsupportedState(f"process {pid} fd {fd}: cannot look at its pipe: {err.strerror}") from err
    try:
        return struct.unpack("=i", fcntl.ioctl(end, termios.FIONREAD, b"\0" * 4))[0]
    finally:
        os.close(end)
