"""POSIX timers and seccomp filters: /proc parsing, the filter tree the dump
builds from per-thread chains, and the refusals, without a live process."""

import struct

import pytest

from pyckpt import dumper as dump, linux, proc
from pyckpt.restorer import seccomp as restore_seccomp
from pyckpt.errors import UnsupportedState
from pyckpt.images.proto import core_pb2
from pyckpt.sources.base import PosixTimerState, ProcessState, SeccompFilterState, ThreadState

# /proc/PID/timers of a process with four timers (Linux 6.18), newest first.
TIMERS = """\
ID: 3
signal: 10/00000000deadbeef
notify: none/pid.20713
ClockID: 7
ID: 2
signal: 34/0000000000000000
notify: signal/tid.20714
ClockID: -2
ID: 1
signal: 10/00000000deadbeef
notify: signal/pid.20713
ClockID: -6
ID: 0
signal: 0/0000000000000000
notify: thread/pid.20713
ClockID: 1
"""


def test_proc_timers_parsed_by_id():
    timers = proc.parse_posix_timers(TIMERS)
    assert [t.id for t in timers] == [0, 1, 2, 3]
    assert timers[3] == proc.PosixTimer(id=3, signo=10, sigval=0xDEADBEEF, notify=1, target=20713, clock=7)
    assert (timers[2].notify, timers[2].target, timers[2].clock) == (proc.SIGEV_THREAD_ID, 20714, -2)
    assert (timers[1].notify, timers[1].clock) == (0, -6)
    assert timers[0].notify == 2


def state_with(threads, timers=()):
    return ProcessState(pid=100, threads=threads, sigactions=[], shared_pending=[], brk=0,
                        posix_timers=list(timers))


def thread(tid, chain=(), mode=None):
    return ThreadState(tid=tid, regsets={}, sigmask=0, pending=[], seccomp_filters=list(chain),
                       seccomp_mode=mode if mode is not None else (2 if chain else 0))


def task_for(state):
    task = core_pb2.Task(pid=state.pid)
    for th in state.threads:
        task.threads.add(tid=th.tid)
    return task


def prog(nr, err):
    """load nr; jeq nr -> errno err; allow."""
    insns = [(0x20, 0, 0, 0), (0x15, 0, 1, nr), (0x06, 0, 0, 0x50000 | err), (0x06, 0, 0, 0x7FFF0000)]
    return b"".join(struct.pack("=HBBI", *i) for i in insns)


B = SeccompFilterState(prog(124, 18), log=True)
A = SeccompFilterState(prog(121, 15))
C = SeccompFilterState(prog(143, 49))


def test_shared_filters_stored_once_as_a_tree():
    state = state_with([thread(100, [B, A]), thread(101, [B, A]), thread(102, [B, A, C]), thread(103)])
    task = task_for(state)
    dump._seccomp_messages(task, 100, state)
    assert [(f.program, f.flags, f.parent) for f in task.seccomp_filters] == [
        (B.program, linux.SECCOMP_FILTER_FLAG_LOG, 0), (A.program, 0, 1), (C.program, 0, 2)]
    assert [(t.seccomp_mode, t.seccomp_filter) for t in task.threads] == [(2, 2), (2, 2), (2, 3), (0, 0)]
    chains = [restore_seccomp.chain_of(task, t.seccomp_filter) for t in task.threads]
    assert chains == [[1, 2], [1, 2], [1, 2, 3], []]
    assert restore_seccomp.common_prefix(chains[:3]) == [1, 2]
    assert restore_seccomp.common_prefix(chains) == []


def test_same_program_on_another_base_is_another_filter():
    state = state_with([thread(100, [A]), thread(101, [B, A])])
    task = task_for(state)
    dump._seccomp_messages(task, 100, state)
    assert [f.parent for f in task.seccomp_filters] == [0, 0, 2]
    assert [t.seccomp_filter for t in task.threads] == [1, 3]


def test_user_notification_filter_refused():
    notif = SeccompFilterState(prog(39, 0)[:16] + struct.pack("=HBBI", 0x06, 0, 0, 0x7FC00000)
                               + struct.pack("=HBBI", 0x06, 0, 0, 0x7FFF0000))
    state = state_with([thread(100, [notif])])
    with pytest.raises(UnsupportedState, match="SECCOMP_RET_USER_NOTIF"):
        dump._seccomp_messages(task_for(state), 100, state)


def timer(clock, **kw):
    return PosixTimerState(id=kw.pop("id", 0), clock=clock, notify=0, signo=10, sigval=0, target=100, **kw)


def test_thread_cpu_clock_of_an_unknown_thread_refused():
    two = [thread(100), thread(101)]
    with pytest.raises(UnsupportedState, match="CLOCK_THREAD_CPUTIME_ID"):
        dump._posix_timer_messages(task_for(state_with(two)), 100, state_with(two, [timer(-2)]))
    one = state_with([thread(100)], [timer(-2, value_ns=5)])
    task = task_for(one)
    dump._posix_timer_messages(task, 100, one)
    assert (task.posix_timers[0].clock, task.posix_timers[0].value_ns) == (-2, 5)


def test_cpu_clock_of_another_process_refused():
    other = ~4242 << 3 | 2     # make_process_cpuclock(4242, CPUCLOCK_SCHED)
    mine = ~101 << 3 | 6       # thread 101's own CPU clock
    ok = state_with([thread(100), thread(101)], [timer(mine)])
    dump._posix_timer_messages(task_for(ok), 100, ok)
    bad = state_with([thread(100)], [timer(other)])
    with pytest.raises(UnsupportedState, match="4242"):
        dump._posix_timer_messages(task_for(bad), 100, bad)


def test_malformed_seccomp_tree_rejected():
    task = core_pb2.Task(pid=1)
    task.seccomp_filters.add(program=A.program, parent=1)
    with pytest.raises(Exception, match="malformed"):
        restore_seccomp.check_filters(task, "core-1.img")
