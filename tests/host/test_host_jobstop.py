"""Job-control stops come back exactly, every time.

Restoring a stopped process used to let it run for a moment (detach, then
SIGSTOP): sometimes it came back running, and it always ran a little.
These tests repeat (PYCKPT_TEST_STOP_REPEAT, default 3; run them 50 times
with a CPU hog beside them to look for the race), and the workloads check
that no thread ran at all (jobstop's counters).
"""

import os
import signal
import time

import pytest

REPEAT = int(os.environ.get("PYCKPT_TEST_STOP_REPEAT", "3"))
CLD_STOPPED, CLD_CONTINUED = 5, 6


def thread_states(pid):
    states = []
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/stat") as f:
            states.append(f.read().rpartition(")")[2].split()[0])
    return states


def wait_all_stopped(pid, timeout=10):
    deadline = time.monotonic() + timeout
    while set(thread_states(pid)) != {"T"}:
        assert time.monotonic() < deadline, f"{pid}: threads in states {thread_states(pid)}"
        time.sleep(0.01)


@pytest.mark.parametrize("run", range(REPEAT))
def test_stopped_root_comes_back_stopped(start_workload, harness, run):
    """A multi-threaded root stopped by SIGSTOP: every thread is stopped after
    restore and stays so; its (new) parent's waitid reports the stop by
    SIGSTOP; SIGCONT resumes it (WCONTINUED) and it passes its own check."""
    wl = start_workload("threads")
    pid = wl.pid
    os.kill(pid, signal.SIGSTOP)
    wait_all_stopped(pid)
    nthreads = len(thread_states(pid))
    wl.dump()
    wl.restore()
    # Watch a while: a late wakeup would show as a thread leaving T.
    for _ in range(20):
        states = thread_states(pid)
        assert states == ["T"] * nthreads, f"restored {pid}: thread states {states}"
        time.sleep(0.01)
    info = os.waitid(os.P_PID, pid, os.WSTOPPED | os.WNOHANG | os.WNOWAIT)
    assert info is not None and info.si_code == CLD_STOPPED and info.si_status == signal.SIGSTOP, (
        f"waitid(WSTOPPED) on the restored {pid}: {info}")
    os.kill(pid, signal.SIGCONT)
    info = os.waitid(os.P_PID, pid, os.WCONTINUED)
    assert info.si_code == CLD_CONTINUED, f"after SIGCONT: {info}"
    problem = harness.wait_untouched(pid)
    assert problem is None, f"after SIGCONT: {problem}"
    wl.assert_passes()


@pytest.mark.parametrize("case_id", ["jobstop", "tree"])
@pytest.mark.parametrize("run", range(REPEAT))
def test_stopped_children_come_back_stopped(start_workload, harness, case_id, run):
    """Stopped children in a tree (jobstop: SIGSTOP/SIGTSTP/SIGTTIN/SIGTTOU,
    collected or not by the parent; tree: one SIGSTOPped child)."""
    wl = start_workload(case_id)
    wl.dump()
    wl.restore()
    problem = harness.wait_untouched(wl.pid)
    assert problem is None, f"restored process: {problem}"
    wl.assert_passes()
