"""`pyckpt supervise`: a long job checkpointed periodically and restored after crashes
finishes with exactly the result of an unsupervised run.

The job is tests/workloads/longjob.c (a running hash over a buffer it keeps
rewriting; RESULT <hash> at the end). The supervisor runs as our child, in its
own session; the job is its child (and is restored as its child).
"""

import json
import os
import random
import signal
import subprocess
import time

import pytest

STEPS, MIB = "250", "4"


def _job(workload_dir, steps=STEPS):
    return [str(workload_dir / "longjob"), steps, MIB]


def _expected(workload_dir, steps=STEPS):
    out = subprocess.run(_job(workload_dir, steps), capture_output=True, text=True, timeout=60, check=True).stdout
    assert out.startswith("RESULT "), out
    return out.strip()


def _state(folder):
    try:
        with open(folder / "supervise.json") as f:
            return json.load(f)
    except (FileNotFoundError, ValueError):
        return {}


def _wait_for(what, predicate, timeout, sup=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if sup is not None and sup.proc.poll() is not None:
            pytest.fail(f"the supervisor exited {sup.proc.returncode} while waiting for {what}:\n{sup.log()}")
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


class Supervisor:
    def __init__(self, harness, tmp_path, *args):
        self.dir = tmp_path / "ckpt"
        self.err = open(tmp_path / "supervise.err", "w")
        self.proc = subprocess.Popen(
            harness.pyckpt_argv("supervise", "-D", self.dir, "--backend", harness.BACKEND, *args),
            cwd=harness.REPO, stdin=subprocess.DEVNULL, stdout=self.err, stderr=self.err, start_new_session=True)
        self.timeout = 120 * harness.SCALE

    def state(self):
        return _state(self.dir)

    def wait(self):
        try:
            return self.proc.wait(timeout=self.timeout)
        finally:
            self.err.close()

    def log(self):
        return (self.dir.parent / "supervise.err").read_text()

    def job_output(self):
        return (self.dir / "job.out").read_text()

    def kill_all(self):
        pid = self.state().get("pid")
        for p in (self.proc.pid, pid):
            if p:
                try:
                    os.kill(p, signal.SIGKILL)
                except ProcessLookupError:
                    pass


@pytest.fixture
def supervisor(harness, tmp_path):
    started = []

    def start(*args):
        sup = Supervisor(harness, tmp_path, *args)
        started.append(sup)
        return sup
    yield start
    for sup in started:
        if sup.proc.poll() is None:
            sup.kill_all()
            sup.proc.wait()


def test_supervised_job_survives_kills(supervisor, workload_dir, harness):
    expected = _expected(workload_dir)
    sup = supervisor("--interval", "0.3s", "--keep", "2", "--", *_job(workload_dir))
    rng = random.Random(1234)
    for n in range(3):
        # after a checkpoint exists (else there is nothing to restore), at a random moment
        _wait_for("a checkpoint", lambda: len(sup.state().get("checkpoints", [])) >= 1 and
                  len(sup.state().get("restarts", [])) == n, sup.timeout, sup)
        time.sleep(rng.uniform(0.1, 0.6))
        pid = sup.state()["pid"]
        os.kill(pid, signal.SIGKILL)
        _wait_for(f"restore #{n + 1}", lambda: len(sup.state().get("restarts", [])) == n + 1, sup.timeout, sup)
    rc = sup.wait()
    assert rc == 0, f"supervisor exited {rc}:\n{sup.log()}"
    assert sup.job_output().strip().splitlines()[-1] == expected, sup.job_output()
    state = sup.state()
    assert len(state["restarts"]) == 3 and all(r["why"] == "killed by SIGKILL" for r in state["restarts"])
    assert state["status"] == "ended: exited with status 0"
    # --keep 2: the newest two and what they build on (incremental chains are at most 2 long)
    names = [c["name"] for c in state["checkpoints"]]
    assert 2 <= len(names) <= 3 and all(c.get("parent") in (None, *names) for c in state["checkpoints"]), names
    kept = sorted(p.name for p in sup.dir.iterdir() if p.name.isdigit())
    assert kept == sorted(names), kept
    assert os.readlink(sup.dir / "latest") == state["checkpoints"][-1]["name"]
    assert "checkpoint" in sup.log() and "restored from checkpoint" in sup.log()
    status = subprocess.run(harness.pyckpt_argv("supervise", "-D", sup.dir, "--status"), cwd=harness.REPO,
                            capture_output=True, text=True, timeout=60)
    assert status.returncode == 0 and "restart:" in status.stdout and "latest:" in status.stdout, status


def test_normal_exit_ends_supervision_with_its_status(supervisor, harness):
    sup = supervisor("--interval", "10s", "--restart-on", "4", "--", "sh", "-c", "exit 3")
    assert sup.wait() == 3, sup.log()
    assert sup.state()["restarts"] == []


def test_crash_before_first_checkpoint_is_not_restored(supervisor, harness):
    sup = supervisor("--interval", "1h", "--", "sh", "-c", "kill -9 $$")
    assert sup.wait() == 128 + 9, sup.log()
    assert "nothing to restore" in sup.log()


def test_job_crashing_after_every_restore_is_given_up(supervisor, workload_dir, harness):
    """A job that dies at the same point every time it is restored is restored --max-restarts times."""
    sup = supervisor("--interval", "0.2s", "--max-restarts", "2", "--", "sh", "-c",
                     f"{workload_dir / 'longjob'} 300 1 >/dev/null; kill -9 $$")
    assert sup.wait() == 128 + 9, sup.log()
    state = sup.state()
    assert len(state["restarts"]) == 2 and state["status"].startswith("given up"), state


def test_resume_after_the_supervisor_died(supervisor, workload_dir, harness):
    expected = _expected(workload_dir)
    sup = supervisor("--interval", "0.3s", "--", *_job(workload_dir))
    _wait_for("a checkpoint", lambda: len(sup.state().get("checkpoints", [])) >= 2, sup.timeout, sup)
    sup.kill_all()          # the machine "rebooted": supervisor and job gone
    sup.proc.wait()
    # the orphaned job was reparented to us (a subreaper): reap it, freeing its PID
    harness.wait_pid(sup.state()["pid"], 30 * harness.SCALE)
    again = supervisor("--resume")
    assert again.wait() == 0, again.log()
    assert again.job_output().strip().splitlines()[-1] == expected


def test_adopted_job_is_supervised(supervisor, workload_dir, harness, tmp_path):
    steps = "1000"     # 10 s: long enough to be adopted while it runs
    expected = _expected(workload_dir, steps)
    with open(tmp_path / "adopted.out", "w") as out:
        job = subprocess.Popen(_job(workload_dir, steps), stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                               start_new_session=True)
    time.sleep(0.3)
    sup = supervisor("-t", str(job.pid), "--interval", "0.3s")
    assert job.wait(timeout=60 * harness.SCALE) == -signal.SIGKILL, "the old parent should see it end"
    _wait_for("the adoption", lambda: sup.state().get("status") == "running", sup.timeout, sup)
    os.kill(job.pid, signal.SIGKILL)
    assert sup.wait() == 0, sup.log()
    assert (tmp_path / "adopted.out").read_text().strip().splitlines()[-1] == expected
    assert len(sup.state()["restarts"]) == 1
