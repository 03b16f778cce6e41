"""System V IPC around a dump (see pyckpt/sysvipc.py for which objects
belong to a dump): what is refused, the restore-side conflict, and objects
named on the command line."""

import ctypes
import os
import re
import signal
import sys
import time

import pytest

libc = ctypes.CDLL(None, use_errno=True)
IPC_CREAT, IPC_EXCL, IPC_NOWAIT, IPC_RMID = 0o1000, 0o2000, 0o4000, 0


def sysvipc_ids(wl):
    m = re.search(r"^ids (\d+) (\d+) (\d+) (\d+)$", wl.log(), re.M)
    assert m, f"the workload did not say its ids:\n{wl.log()}"
    return dict(zip(("shm_a", "shm_b", "sem", "msg"), map(int, m.groups())))


def table(kind):
    with open(f"/proc/sysvipc/{kind}") as f:
        next(f)
        return {int(line.split()[1]): line.split() for line in f}


@pytest.mark.parametrize("mode, words", [("sem-undo", "SEM_UNDO"), ("shm-outside", "outside the dumped tree")])
def test_sysvipc_state_refused(start_workload, harness, mode, words):
    wl = start_workload(f"sysvipc-{mode}")
    res = wl.dump(check=False)
    assert res.returncode == 3, f"dumped sysvipc {mode}: {res.describe()}"
    assert words in res.stderr, res.describe()
    assert not wl.images.exists(), f"image folder left behind: {sorted(os.listdir(wl.images))}"
    problem = harness.untouched_problem(wl.pid)
    assert problem is None, f"after the refused dump: {problem}"
    wl.assert_passes()


def test_restore_refused_ipc_id_in_use(start_workload, harness):
    """Dump -R, then kill the original: its segment, semaphores and queue are
    still on the host, so restore must refuse before creating anything."""
    wl = start_workload("sysvipc")
    ids = sysvipc_ids(wl)
    try:
        wl.dump(leave_running=True)
        with open(f"/proc/{wl.pid}/task/{wl.pid}/children") as f:
            (child_pid,) = map(int, f.read().split())
        os.kill(wl.pid, signal.SIGKILL)   # its child follows (parent-death signal)
        wl.reap()
        deadline = time.monotonic() + harness.EXIT_TIMEOUT
        while os.path.exists(f"/proc/{child_pid}") and time.monotonic() < deadline:
            try:
                os.waitpid(child_pid, os.WNOHANG)   # reparented to us, the subreaper
            except ChildProcessError:
                pass
            time.sleep(0.02)
        res = harness.run_pyckpt("restore", "-D", wl.images, "-d", outdir=wl.dir, tag="restore")
        if res.returncode == 0:
            wl.alive, wl.ours_by_pid = True, True
        assert res.returncode == 5, f"restored over taken SysV ids: {res.describe()}"
        assert f"id {ids['shm_a']} is in use" in res.stderr, res.describe()
        assert harness.proc_status(wl.pid) is None, "a process exists after the refused restore"
        assert ids["shm_a"] in table("shm") and ids["msg"] in table("msg")
    finally:
        libc.shmctl(ids["shm_a"], IPC_RMID, None)
        libc.semctl(ids["sem"], 0, IPC_RMID)
        libc.msgctl(ids["msg"], IPC_RMID, None)


def test_named_message_queue_travels_with_the_dump(start_workload, harness):
    """A queue no dumped process touched goes into the image only when named
    (--ipc-msg); the dump removes it from the host, restore brings it back
    with its id and its message."""
    key = 0x5D000000 | (os.getpid() & 0xFFFFFF)
    msqid = libc.msgget(key, IPC_CREAT | IPC_EXCL | 0o600)
    assert msqid >= 0, os.strerror(ctypes.get_errno())
    try:
        mtype = (7).to_bytes(8, sys.byteorder)
        message = ctypes.create_string_buffer(mtype + b"hello", 13)
        assert libc.msgsnd(msqid, message, 5, IPC_NOWAIT) == 0
        wl = start_workload("counter")
        res = wl.dump("--ipc-msg", msqid)
        assert msqid not in table("msg"), "the named queue is still on the host after the dump"
        wl.restore()
        assert msqid in table("msg"), f"queue {msqid} not restored: {res.describe()}"
        assert libc.msgget(key, 0) == msqid
        out = ctypes.create_string_buffer(64)
        n = libc.msgrcv(msqid, out, 56, 0, IPC_NOWAIT)
        assert n == 5 and out.raw[:8] == mtype and out.raw[8:13] == b"hello"
        wl.assert_passes()
    finally:
        libc.msgctl(msqid, IPC_RMID, None)


def test_unknown_ipc_id_is_an_error(start_workload, harness):
    wl = start_workload("counter")
    res = wl.dump("--ipc-sem", 2_000_000_000, check=False)
    assert res.returncode != 0 and "--ipc-sem 2000000000" in res.stderr, res.describe()
    assert not wl.images.exists()
    assert harness.untouched_problem(wl.pid) is None
    wl.assert_passes()


def test_threaded_process_with_semaphores_refused(start_workload, harness):
    """Threads give a process a semaphore undo list (CLONE_SYSVSEM), which
    pyckpt cannot see into: with a semaphore set in the dump, it refuses."""
    semid = libc.semget(0, 1, IPC_CREAT | 0o600)
    assert semid >= 0, os.strerror(ctypes.get_errno())
    try:
        wl = start_workload("threads")
        res = wl.dump("--ipc-sem", semid, check=False)
        assert res.returncode == 3, f"dumped: {res.describe()}"
        assert "undo list" in res.stderr and str(wl.pid) in res.stderr and str(semid) in res.stderr, res.describe()
        assert not wl.images.exists()
        assert harness.untouched_problem(wl.pid) is None
        assert semid in table("sem"), "the refused dump removed the semaphore set"
        wl.assert_passes()
    finally:
        libc.semctl(semid, 0, IPC_RMID)
