"""Every workload: untouched (baseline), dumped and restored, dumped with -R,
and restored without -d (pyckpt waits and passes the exit status on)."""

import os
import signal
import subprocess
import time

import pytest


def test_baseline(start_workload, any_case):
    """No checkpoint at all: the workloads' own checks pass on an
    unmodified process (else the other tests prove nothing)."""
    wl = start_workload(any_case)
    wl.assert_passes()


def test_dump_restore(start_workload, case, harness):
    wl = start_workload(case)
    pid = wl.pid
    wl.dump()
    assert harness.proc_status(pid) is None, f"{pid} still exists after the dump"
    assert any(wl.images.iterdir()), "the image folder is empty"
    wl.restore()
    assert wl.pid == pid
    problem = harness.wait_untouched(pid)
    assert problem is None, f"restored process: {problem}"
    wl.assert_passes()


def test_dump_leave_running(start_workload, case, harness):
    wl = start_workload(case)
    wl.dump(leave_running=True)
    assert any(wl.images.iterdir()), "the image folder is empty"
    problem = harness.wait_untouched(wl.pid)
    assert problem is None, f"after dump -R: {problem}"
    wl.wait_numbers()
    wl.assert_passes()


@pytest.mark.parametrize("sig, status", [(signal.SIGTERM, 0), (signal.SIGKILL, 128 + 9)],
                         ids=["exit-0", "killed-by-SIGKILL"])
def test_restore_waits_for_exit_status(start_workload, harness, sig, status):
    """Without -d, restore waits for the restored process and exits with its
    status (128+N for death by signal N); --pidfile says which PID it is."""
    wl = start_workload("counter")
    pid = wl.pid
    wl.dump()
    pidfile = wl.dir / "restored.pid"
    out = open(wl.dir / "restore.out", "w")
    restore = subprocess.Popen(
        harness.pyckpt_argv("restore", "-D", wl.images, "--pidfile", pidfile),
        cwd=harness.REPO, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
        start_new_session=True)
    try:
        deadline = time.monotonic() + harness.PYCKPT_TIMEOUT
        while not (pidfile.exists() and pidfile.read_text().strip()):
            assert restore.poll() is None, (
                f"restore exited {restore.returncode} before writing the pidfile:\n"
                + (wl.dir / "restore.out").read_text())
            assert time.monotonic() < deadline, "no pidfile"
            time.sleep(0.05)
        assert int(pidfile.read_text()) == pid
        wl.wait_numbers()
        os.kill(pid, sig)
        rc = restore.wait(harness.EXIT_TIMEOUT)
    finally:
        if restore.poll() is None:
            st = harness.proc_status(pid)
            if st and st.get("PPid") == str(restore.pid):
                os.kill(pid, signal.SIGKILL)
            os.killpg(restore.pid, signal.SIGKILL)
            restore.wait()
        out.close()
        wl.alive = False  # it was pyckpt's child, not ours
    assert rc == status, (f"restore exited {rc}, expected {status}\n"
                          + (wl.dir / "restore.out").read_text())
    if sig == signal.SIGTERM:
        assert wl.log().splitlines()[-1] == "PASS", wl.log()
