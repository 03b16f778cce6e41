"""GET_POSIX_TIMERS: the timers as /proc/PID/timers, timer_gettime and
timer_getoverrun report them (what the ptrace source injects for), plus bad input."""

import ctypes
import errno
import json
import signal

from pyckpt import arch as archmod
from pyckpt.sources import crak_uapi as uapi
from pyckpt.sources.kmod import KmodSource
from pyckpt.sources.ptrace import PtraceSource

from .crak import Session, ioctl
from .test_kmod_refusals import expect_errno
from .test_kmod_source import snapshot

SIGEV_SIGNAL, SIGEV_NONE, SIGEV_THREAD_ID = 0, 1, 4
PROCESS_CLOCK = -6     # CLOCK_PROCESS_CPUTIME_ID as the kernel keeps it (pid 0, CPUCLOCK_SCHED)


def make_timers(target):
    calls = archmod.host().SYSCALLS
    target.send(f"posixtimers {calls['timer_create']} {calls['timer_settime']}")
    return json.loads(target.readline())


def test_posix_timers_as_the_ptrace_source_reads_them(target, tmp_path):
    ids = make_timers(target)
    ks = snapshot(KmodSource, target.pid, tmp_path)[0]
    ps = snapshot(PtraceSource, target.pid, tmp_path)[0]
    assert [t.id for t in ks.posix_timers] == sorted(ids)
    fixed = ("id", "clock", "notify", "signo", "sigval", "target", "interval_ns", "overrun")
    for k, p in zip(ks.posix_timers, ps.posix_timers):
        assert {f: getattr(k, f) for f in fixed} == {f: getattr(p, f) for f in fixed}
    by_id = {t.id: t for t in ks.posix_timers}
    periodic, far, cpu, idle, to_thread = (by_id[i] for i in ids)
    assert (periodic.clock, periodic.notify, periodic.signo, periodic.sigval) == (1, SIGEV_SIGNAL, signal.SIGUSR2, 0x5eed)
    assert periodic.interval_ns == 500_000_000 and periodic.target == target.pid
    assert (far.clock, far.notify) == (0, SIGEV_NONE)
    assert (cpu.clock, cpu.interval_ns, cpu.sigval) == (PROCESS_CLOCK, 5_000_000_000, 7)
    assert (idle.clock, idle.value_ns, idle.interval_ns) == (7, 0, 0)
    assert to_thread.notify == SIGEV_THREAD_ID and to_thread.target == target.info["tid"]
    # Wall clocks run on while frozen: ptrace read them later.
    pv = {t.id: t.value_ns for t in ps.posix_timers}
    for t in (periodic, far, to_thread):
        assert 0 <= t.value_ns - pv[t.id] < 60_000_000_000, (t, pv[t.id])
    assert 1 < far.value_ns <= 100_000_000_000 and 1 < to_thread.value_ns <= 200_000_000_000
    # CPU time only moves while the target runs (a little Python between the reads).
    assert 990_000_000_000 < cpu.value_ns <= 1000_000_000_000
    assert 0 <= cpu.value_ns - pv[cpu.id] < 2_000_000_000


def test_posix_timers_buffer_too_small_reports_the_count(target):
    ids = make_timers(target)
    with Session(target.pid) as s:
        buf = (uapi.PosixTimer * 2)()
        q = uapi.PosixTimers(count=2, timers_ptr=ctypes.addressof(buf))
        ioctl(s.fd, "GET_POSIX_TIMERS", q)
        assert (q.nr_timers, q.nr_copied) == (len(ids), 2)
        assert {e.id for e in buf} <= set(ids)
        q = uapi.PosixTimers(count=0)
        ioctl(s.fd, "GET_POSIX_TIMERS", q)
        assert (q.nr_timers, q.nr_copied) == (len(ids), 0)


def test_posix_timers_bad_input(target):
    make_timers(target)
    with Session(target.pid) as s:
        fd = s.fd
        expect_errno(errno.EOPNOTSUPP, ioctl, fd, "GET_POSIX_TIMERS", uapi.PosixTimers(flags=1))
        expect_errno(errno.EINVAL, ioctl, fd, "GET_POSIX_TIMERS", uapi.PosixTimers(nr_timers=1))
        q = uapi.PosixTimers()
        q.reserved[2] = 1
        expect_errno(errno.EINVAL, ioctl, fd, "GET_POSIX_TIMERS", q)
        expect_errno(errno.E2BIG, ioctl, fd, "GET_POSIX_TIMERS",
                     uapi.PosixTimers(count=uapi.MAX_POSIX_TIMERS + 1))
        expect_errno(errno.EFAULT, ioctl, fd, "GET_POSIX_TIMERS", uapi.PosixTimers(count=4, timers_ptr=8))
        expect_errno(errno.EFAULT, ioctl, fd, "GET_POSIX_TIMERS", 8)
