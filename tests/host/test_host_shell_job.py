"""Shell jobs: a workload whose stdin/stdout/stderr is a terminal, run as a
job in its own process group under a session leader (minishell.py) on a
pty. pyckpt dumps and restores it only with --shell-job; the restore runs
as another job of the same shell, so its stdin is that terminal."""

import errno
import fcntl
import json
import os
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

MINISHELL = Path(__file__).with_name("minishell.py")


class MiniShell:
    def __init__(self, workdir, timeout):
        self.dir = Path(workdir)
        self.timeout = timeout
        self.master, self.slave = os.openpty()
        fcntl.fcntl(self.master, fcntl.F_SETFL,
                    fcntl.fcntl(self.master, fcntl.F_GETFL) | os.O_NONBLOCK)
        self.terminal = b""
        self.events = []
        self._buf = b""
        self.err = open(self.dir / "shell.err", "w")
        self.proc = subprocess.Popen(
            [sys.executable, str(MINISHELL), os.ttyname(self.slave)],
            cwd=self.dir, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=self.err, start_new_session=True)

    def drain(self):
        """Collect what was written to the terminal so far."""
        while True:
            try:
                data = os.read(self.master, 65536)
            except OSError as err:
                if err.errno in (errno.EAGAIN, errno.EIO):
                    return self.terminal.decode(errors="replace")
                raise
            if not data:
                return self.terminal.decode(errors="replace")
            self.terminal += data

    def _event(self, predicate, what):
        deadline = time.monotonic() + self.timeout
        while True:
            for ev in self.events:
                if predicate(ev):
                    self.events.remove(ev)
                    return ev
            self.drain()
            if time.monotonic() > deadline:
                pytest.fail(f"minishell: no {what} within {self.timeout:.0f} s; "
                            f"stderr: {(self.dir / 'shell.err').read_text()}")
            ready, _, _ = select.select([self.proc.stdout], [], [], 0.05)
            if ready:
                data = os.read(self.proc.stdout.fileno(), 65536)
                if not data:
                    pytest.fail("minishell exited: "
                                + (self.dir / "shell.err").read_text())
                self._buf += data
                while b"\n" in self._buf:
                    line, self._buf = self._buf.split(b"\n", 1)
                    self.events.append(json.loads(line))

    def run(self, argv, cwd, out=None):
        cmd = {"argv": [str(a) for a in argv], "cwd": str(cwd),
               "out": str(out) if out else None}
        self.proc.stdin.write((json.dumps(cmd) + "\n").encode())
        self.proc.stdin.flush()
        return self._event(lambda ev: "started" in ev, "started job")["started"]

    def wait_job(self, pid):
        """Exit code (or -SIG) of a job of ours."""
        return self._event(lambda ev: ev.get("exited") == pid, f"exit of {pid}")["status"]

    def close(self):
        try:
            self.proc.stdin.close()
            self.proc.wait(10)
        except (subprocess.TimeoutExpired, OSError):
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.drain()
        os.close(self.master)
        os.close(self.slave)
        self.err.close()


@pytest.fixture
def shell_job(workload_dir, tmp_path, harness):
    """Starts the tty workload as a job of a fresh minishell; yields a
    namespace (shell, pid, dir, log()) and kills everything at the end."""
    shell = MiniShell(tmp_path, harness.READY_TIMEOUT)
    job = type("Job", (), {})()
    job.shell, job.dir = shell, tmp_path
    job.log = lambda: (tmp_path / "out.log").read_text(errors="replace") \
        if (tmp_path / "out.log").exists() else ""
    job.pid = shell.run([workload_dir / "tty"], cwd=tmp_path)
    job.ours = False  # True once restored with -d (reparented to us)
    try:
        deadline = time.monotonic() + harness.READY_TIMEOUT
        while "READY" not in job.log().splitlines():
            assert time.monotonic() < deadline, f"no READY:\n{job.log()}\n{shell.drain()}"
            time.sleep(0.02)
        yield job
    finally:
        st = harness.proc_status(job.pid)
        if st and st.get("PPid") in (str(os.getpid()), str(shell.proc.pid)):
            os.kill(job.pid, signal.SIGKILL)
            if job.ours:
                harness.wait_pid(job.pid, harness.EXIT_TIMEOUT)
        shell.close()


def dump_args(job, harness, *extra):
    return ("dump", "-t", job.pid, "-D", job.dir / "images",
            "--backend", harness.BACKEND, *extra)


def check_terminal_and_log(job, status):
    log = job.log().splitlines()
    assert status == 0 and log and log[-1] == "PASS", f"exit {status}, log:\n{job.log()}"
    out = job.shell.drain()
    for fd in (1, 2):
        assert f"TTY-WRITE after {fd}" in out, (
            f"nothing written to the terminal through fd {fd}:\n{out}")


def test_shell_job_baseline(shell_job):
    os.kill(shell_job.pid, signal.SIGTERM)
    check_terminal_and_log(shell_job, shell_job.shell.wait_job(shell_job.pid))


def test_shell_job_refused_without_flag(shell_job, harness):
    res = harness.run_pyckpt(*dump_args(shell_job, harness), outdir=shell_job.dir,
                             tag="dump")
    assert res.returncode != 0, f"a tty was dumped without --shell-job: {res.describe()}"
    assert re.search(r"\b[012]\b", res.stderr), f"the tty fd is not named: {res.describe()}"
    assert re.search(r"tty|terminal|pty", res.stderr, re.I), (
        f"the fd's kind is not named: {res.describe()}")
    assert not (shell_job.dir / "images").exists(), "image folder left behind"
    problem = harness.untouched_problem(shell_job.pid)
    assert problem is None, f"after the refused dump: {problem}"
    os.kill(shell_job.pid, signal.SIGTERM)
    check_terminal_and_log(shell_job, shell_job.shell.wait_job(shell_job.pid))


def test_shell_job_dump_restore(shell_job, harness):
    job, shell = shell_job, shell_job.shell
    res = harness.run_pyckpt(*dump_args(job, harness, "--shell-job"),
                             outdir=job.dir, tag="dump")
    assert res.returncode == 0, res.describe()
    assert shell.wait_job(job.pid) == -signal.SIGKILL
    out = job.dir / "restore.out"
    restore = shell.run(harness.pyckpt_argv("restore", "-d", "--shell-job", "-D",
                                            job.dir / "images"),
                        cwd=harness.REPO, out=out)
    rc = shell.wait_job(restore)
    if harness.proc_status(job.pid):
        job.ours = True
    assert rc == 0, f"restore --shell-job exited {rc}:\n{out.read_text()}"
    problem = harness.wait_untouched(job.pid)
    assert problem is None, f"restored shell job: {problem}"
    os.kill(job.pid, signal.SIGTERM)
    status = harness.wait_pid(job.pid, harness.EXIT_TIMEOUT)
    job.ours = False
    check_terminal_and_log(job, status)
