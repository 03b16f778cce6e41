"""Helpers of the apps tier (see conftest.py): installing packages, one app's tree through dump and restore."""

import importlib.util
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location(
    "pyckpt_host_harness", Path(__file__).resolve().parents[1] / "host" / "conftest.py")
host = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(host)

PR_SET_CHILD_SUBREAPER = 36
TIMEOUT = 120 * host.SCALE


# --- packages -------------------------------------------------------------

_apt_updated = []


def require_packages(*packages):
    """apt-get install the Debian packages not installed yet (waiting for another apt's lock)."""
    missing = [p for p in packages if "Status: install ok installed" not in subprocess.run(
        ["dpkg", "-s", p], capture_output=True, text=True).stdout]
    if not missing:
        return
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    lock = ["-o", "DPkg::Lock::Timeout=600"]
    if not _apt_updated:
        subprocess.run(["apt-get", *lock, "update", "-q"], env=env, capture_output=True)
        _apt_updated.append(True)
    res = subprocess.run(["apt-get", *lock, "install", "-y", "-q", "--no-install-recommends", *missing],
                         env=env, capture_output=True, text=True)
    if res.returncode != 0:
        pytest.fail(f"apt-get install {' '.join(missing)} failed:\n{res.stdout[-2000:]}{res.stderr[-2000:]}")


# --- one app under test ---------------------------------------------------


def _image_pids(images):
    out = subprocess.run([host.sys.executable, "-m", "pyckpt", "show", str(images)], cwd=host.REPO,
                         capture_output=True, text=True, check=True).stdout
    return {p["pid"] for p in json.loads(out)["tree"]}




class DumpRefused(AssertionError):
    """pyckpt refused to dump the app (exit 3); the message is pyckpt's reason."""


class App:
    """A real program's process tree through start -> dump -> restore -> checks.

    `root` is the PID given to dump: our Popen child, or a daemon that was
    reparented to us (`adopt`). After a restore it is reaped by PID."""

    def __init__(self, tmp_path, name):
        self.name = name
        self.dir = Path(tmp_path)
        self.log_path = self.dir / f"{name}.log"
        self.images = self.dir / "images"
        self.popen = None
        self.root = None
        self.by_pid = False      # reap self.root with os.waitpid, not Popen
        self.dumps = 0

    def start(self, argv, env=None, cwd=None, **kw):
        with open(self.log_path, "ab") as log:
            self.popen = subprocess.Popen([str(a) for a in argv], cwd=cwd or self.dir, stdin=subprocess.DEVNULL,
                                          stdout=log, stderr=log, start_new_session=True,
                                          env=env, **kw)
        self.root = self.popen.pid
        return self

    def adopt(self, pid):
        """Take a daemon (reparented to us, the subreaper) as the tree's root."""
        self.root, self.popen, self.by_pid = pid, None, True

    def log(self):
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def wait_for(self, predicate, what, timeout=TIMEOUT):
        deadline = time.monotonic() + timeout
        while not predicate():
            if self.popen is not None and self.popen.poll() is not None:
                pytest.fail(f"{self.name}: exited ({self.popen.returncode}) while waiting for {what}; "
                            f"log:\n{self.log()}")
            if self.root and not os.path.exists(f"/proc/{self.root}"):
                pytest.fail(f"{self.name}: process {self.root} is gone while waiting for {what}; "
                            f"log:\n{self.log()}")
            if time.monotonic() > deadline:
                pytest.fail(f"{self.name}: no {what} within {timeout:.0f} s; log:\n{self.log()}")
            time.sleep(0.05)

    def wait_line(self, line, timeout=TIMEOUT):
        self.wait_for(lambda: line in self.log().splitlines(), repr(line), timeout)

    # pyckpt

    def dump(self, *extra, leave_running=False):
        self.dumps += 1
        images = self.images if self.dumps == 1 else self.dir / f"images{self.dumps}"
        tree = host.descendants(self.root)
        args = ["dump", "-t", self.root, "-D", images, "--backend", "ptrace", *extra]
        if leave_running:
            args.append("-R")
        res = host.run_pyckpt(*args, outdir=self.dir, tag=f"dump{self.dumps}", timeout=host.PYCKPT_TIMEOUT)
        if res.returncode == 3:
            raise DumpRefused(f"{self.name}: dump refused: {res.stderr.strip()}")
        if res.returncode != 0:
            pytest.fail(f"dump of {self.name} failed: {res.describe()}")
        if leave_running:
            problem = host.wait_untouched(self.root)
            assert problem is None, f"{self.name} after dump -R: {problem}"
        else:
            rc = self.reap(host.EXIT_TIMEOUT)
            assert rc == -signal.SIGKILL, f"{self.name}: expected death by SIGKILL after the dump, got {rc}"
            # every process the image holds (some were forked after `tree` was listed) was killed
            # and reparented to us: reap them all, so that their PIDs are free for the restore
            host.wait_gone(set(tree) | _image_pids(images), host.EXIT_TIMEOUT)
        return images

    def restore(self, images=None, *extra):
        res = host.run_pyckpt("restore", "-D", images or self.images, "-d", *extra,
                              outdir=self.dir, tag="restore")
        if res.returncode != 0:
            pytest.fail(f"restore of {self.name} failed: {res.describe()}\nlog:\n{self.log()}")
        self.popen, self.by_pid = None, True
        assert host.proc_status(self.root) is not None, f"restore exited 0 but there is no process {self.root}"
        return res

    # ending

    def reap(self, timeout=TIMEOUT):
        """Wait for the root to exit; its exit code (or -SIG)."""
        if self.popen is not None and not self.by_pid:
            try:
                return self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                raise TimeoutError(f"{self.name}: {self.root} did not exit within {timeout:.0f} s") from None
        return host.wait_pid(self.root, timeout)

    def wait_exit(self, timeout=TIMEOUT):
        try:
            return self.reap(timeout)
        except TimeoutError as err:
            pytest.fail(f"{err}; log:\n{self.log()}")

    def kill(self):
        """SIGKILL whatever is left of the tree (teardown)."""
        if not self.root:
            return
        for pid in [self.root] + host.descendants(self.root):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 10
        while os.path.exists(f"/proc/{self.root}") and time.monotonic() < deadline:
            host.reap_strays()
            time.sleep(0.02)
        host.reap_strays()


def run(argv, cwd=None, timeout=TIMEOUT, check=True, **kw):
    """Run a helper command to completion; its CompletedProcess (text)."""
    if "input" not in kw:
        kw.setdefault("stdin", subprocess.DEVNULL)
    res = subprocess.run([str(a) for a in argv], cwd=cwd, capture_output=True, text=True, timeout=timeout, **kw)
    if check and res.returncode != 0:
        pytest.fail(f"`{' '.join(map(str, argv))}` exited {res.returncode}:\n{res.stdout}{res.stderr}")
    return res


def which(program):
    path = shutil.which(program, path="/usr/bin:/bin:/usr/sbin:/sbin")
    assert path, f"{program} not found after installing its package"
    return path
