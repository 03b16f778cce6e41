"""Host tier: run the C workloads of tests/workloads through pyckpt.

Every workload follows one protocol (tests/workloads/wl.h): it is started
in a fresh temp dir with stdin on /dev/null and stdout+stderr appended to
out.log, in its own session; it prints READY once its state is set up,
waits for SIGTERM, checks its state and prints PASS (exit 0) or
"FAIL: ..." (exit 1).

The pytest process makes itself a child subreaper: PID 1 on these machines
does not reap orphans, and a process restored with -d is reparented to the
nearest subreaper, i.e. to us; we reap it with os.waitpid.

Environment:
  PYCKPT_TEST_BACKEND        backend passed to every dump (default ptrace)
  PYCKPT_TEST_TIMEOUT_SCALE  multiplies every timeout (default 1, or 10
                             with the kmod backend, which runs in a VM)
  PYCKPT_TEST_BIG_MB         size of the big-memory workload (default 1024)
"""

import ctypes
import dataclasses
import types
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
WORKLOADS = REPO / "tests" / "workloads"
BACKEND = os.environ.get("PYCKPT_TEST_BACKEND", "ptrace")
SCALE = float(os.environ.get("PYCKPT_TEST_TIMEOUT_SCALE") or (10 if BACKEND == "kmod" else 1))

READY_TIMEOUT = 60 * SCALE
PYCKPT_TIMEOUT = 300 * SCALE
EXIT_TIMEOUT = 60 * SCALE

PR_SET_CHILD_SUBREAPER = 36


def pytest_configure(config):
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, "prctl(PR_SET_CHILD_SUBREAPER): " + os.strerror(err))


# --- workloads ------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Case:
    """One way to run a workload: its binary and arguments."""

    id: str
    binary: str
    args: tuple = ()
    # counter: numbers to see printed before the dump and after the restore
    numbers: int = 0


CASES = [
    Case("counter", "counter", numbers=2),
    Case("memory", "memory"),
    Case("bigmem", "bigmem"),
    Case("registers", "registers"),
    Case("sleep", "syscalls", ("sleep",)),
    Case("read", "syscalls", ("read",)),
    # long enough for the dump (and restore) to land inside it
    Case("nanosleep", "syscalls", ("nanosleep", str(3 * SCALE))),
    Case("signals", "signals"),
    Case("attrs", "attrs"),
    Case("files", "files"),
    Case("threads", "threads", ("50",)),
    Case("tree", "tree"),
    Case("procstate", "procstate"),
    Case("anonfds", "anonfds"),
    Case("epoll", "epoll"),
    Case("inotify", "inotify"),
    Case("locks", "locks"),
    Case("fifo", "fifo"),
    Case("cowtree", "cowtree"),
    Case("memfdmap", "memfdmap"),
    Case("sysvipc", "sysvipc"),
    Case("posixtimers", "posixtimers"),
    Case("seccomp-filters", "seccomp", ("filters",)),
    Case("seccomp-strict", "seccomp", ("strict",)),
    Case("ptytree", "ptytree"),
    Case("lease", "lease"),
    Case("bigshm", "bigshm"),
    Case("novdso", "novdso"),
    Case("jobstop", "jobstop"),
    Case("procattr", "procattr"),
    Case("zombiesig", "zombiesig"),
    Case("cwdgone", "cwdgone"),
    Case("vmflags", "vmflags"),
    Case("oddfds", "oddfds"),
    Case("zombiepgrp", "zombiepgrp"),
    Case("shares", "shares"),
    Case("churn", "churn"),
    Case("delmaps", "delmaps"),
    Case("scmrights-packets", "scmrights", ("packets",)),
    Case("ptyqueue", "ptyqueue"),
] + [Case(f"ghosts-{mode}", "ghosts", (mode,)) for mode in ("sparse", "shared", "tmpfile", "deldir")] \
  + [Case(f"unix-{mode}", "unixsk", (mode,)) for mode in ("pairs", "listen", "dgram", "tree")] \
  + [Case("tcp-listen", "tcpsk", ("listen",)), Case("udp", "tcpsk", ("udp",))] \
  + [Case(f"fdattrs-{mode}", "fdattrs", (mode,))
     for mode in ("owner", "owner-user", "memfd", "pipesize", "unixperm", "ptyowner", "inotify", "ttys",
                  "procfiles")]
UNSUPPORTED = Case("unsupported", "unsupported")
TTY = Case("tty", "tty")
# Each holds one kind of state pyckpt refuses to dump (see workloads/refused.c).
REFUSED = [Case(f"refused-{mode}", "refused", (mode,))
           for mode in ("seccomp-notif", "lease-breaking", "io-uring", "mqueue", "shared-files-apart", "shared-vm",
                        "thread-own-files", "uffd-registered", "aio-ring")]
# epoll states restore could not recreate, a pidfd of a process outside (see workloads/oddfds.c).
ODDFDS_REFUSED = [Case(f"oddfds-{mode}", "oddfds", (mode,))
                  for mode in ("epoll-orphan", "oneshot-fired", "pidfd-outside")]
FDATTRS_REFUSED = [Case(f"fdattrs-{mode}", "fdattrs", (mode,)) for mode in ("procdead", "packets")]
# SysV IPC state pyckpt refuses (see workloads/sysvipc.c).
SYSVIPC_REFUSED = [Case(f"sysvipc-{mode}", "sysvipc", (mode,)) for mode in ("sem-undo", "shm-outside")]
# A pty of the tree with bytes waiting to be read (restored: test_host_refusals.py), one with a
# packet-mode status byte waiting, one whose master and one whose slave is outside the tree.
PTY_REFUSED = [Case(f"ptytree-{mode}", "ptytree", (mode,))
               for mode in ("unread", "pktstatus", "outside", "slave-outside")]
# Guard regions (Linux 6.13+): run by test_guard_regions.py, which skips on older kernels.
GUARD = Case("guard", "guard")
# A parent without a vDSO whose child has one (restore forks the child from the parent).
NOVDSO_REFUSED = Case("novdso-child-keeps", "novdso", ("child-keeps",))
# Files restore could not reopen as they are (see workloads/ghosts.c).
GHOSTS_REFUSED = [Case(f"ghosts-{mode}", "ghosts", (mode,)) for mode in ("linked", "mounted", "outside",
                                                                           "deleted-exe")]
# Files in flight on a stream: only the kmod backend sees where their segment begins (test_host_unix.py).
SCM_STREAM = Case("scmrights-stream", "scmrights", ("stream",))
# Established TCP connections (dumped with --tcp-established): see tests/host/test_host_tcp.py.
TCP_CONN = Case("tcp-conn", "tcpsk", ("conn",))
# A mapped file's atime: see tests/host/test_host_ghosts.py.
GHOSTS_MAPPED = Case("ghosts-mapped", "ghosts", ("mapped",))
# Memory changed between a pre-dump and later dumps (run by test_host_incremental.py).
INCREMENTAL = Case("incremental", "incremental", ("16",))
ALL_CASES = (CASES + [UNSUPPORTED, TTY, NOVDSO_REFUSED, GUARD, INCREMENTAL] + REFUSED + SYSVIPC_REFUSED
             + PTY_REFUSED + GHOSTS_REFUSED + [GHOSTS_MAPPED] + FDATTRS_REFUSED + ODDFDS_REFUSED + [SCM_STREAM]
             + [TCP_CONN])


def pytest_generate_tests(metafunc):
    """`case`: every workload that can be checkpointed as is; `any_case`:
    those plus the one holding an unsupported fd (for the baseline)."""
    if "case" in metafunc.fixturenames:
        metafunc.parametrize("case", CASES, ids=[c.id for c in CASES])
    if "any_case" in metafunc.fixturenames:
        cases = CASES + [UNSUPPORTED]
        metafunc.parametrize("any_case", cases, ids=[c.id for c in cases])


@pytest.fixture(scope="session")
def workload_dir(tmp_path_factory):
    """The folder of built workloads, built once per session (into a temp
    folder when the tree is read-only and not already up to date)."""
    if subprocess.run(["make", "-q", "-C", str(WORKLOADS)],
                      capture_output=True).returncode == 0:
        return WORKLOADS / "build"
    if os.access(WORKLOADS, os.W_OK):
        build = WORKLOADS / "build"
    else:
        build = tmp_path_factory.mktemp("workloads-build")
    res = subprocess.run(["make", "-C", str(WORKLOADS), f"BUILD={build}"],
                         capture_output=True, text=True)
    if res.returncode != 0:
        pytest.fail(f"building the workloads failed:\n{res.stdout}{res.stderr}")
    return build


# --- process state --------------------------------------------------------


def proc_status(pid):
    """/proc/PID/status as a dict, or None if there is no such process."""
    try:
        with open(f"/proc/{pid}/status") as f:
            text = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return fields


def untouched_problem(pid):
    """Why pid is not a live, untraced, unstopped process; None if it is."""
    st = proc_status(pid)
    if st is None:
        return f"process {pid} is gone"
    state = st.get("State", "?")
    if state[:1] in ("t", "T", "Z", "X"):
        return f"process {pid} is in state {state}"
    if st.get("TracerPid", "0") != "0":
        return f"process {pid} is traced by {st['TracerPid']}"
    return None


def wait_untouched(pid, timeout=5):
    """None once pid runs untraced and unstopped, else the last problem."""
    deadline = time.monotonic() + timeout * SCALE
    while True:
        problem = untouched_problem(pid)
        if problem is None or time.monotonic() > deadline:
            return problem
        time.sleep(0.05)


def exit_code(status):
    return os.waitstatus_to_exitcode(status)


def wait_pid(pid, timeout):
    """Reap pid (our child, or reparented to us); its exit code, or -SIG."""
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return exit_code(status)
        if time.monotonic() > deadline:
            raise TimeoutError(f"process {pid} did not exit within {timeout:.0f} s")
        time.sleep(0.02)


def descendants(pid):
    """PIDs of the processes below pid (from /proc/*/stat)."""
    parents = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat") as f:
                    parents[int(name)] = int(f.read().rpartition(")")[2].split()[1])
            except OSError:
                continue
    found, frontier = [], [pid]
    while frontier:
        parent = frontier.pop()
        kids = [p for p, pp in parents.items() if pp == parent]
        found.extend(kids)
        frontier.extend(kids)
    return found


def wait_gone(pids, timeout):
    """Reap strays until none of pids exists (a dumped tree's killed children)."""
    deadline = time.monotonic() + timeout
    while any(os.path.exists(f"/proc/{p}") for p in pids):
        reap_strays()
        if time.monotonic() > deadline:
            pytest.fail(f"processes {[p for p in pids if os.path.exists(f'/proc/{p}')]} "
                        "still exist after the dump killed their tree")
        time.sleep(0.02)


def reap_strays():
    """Reap zombies reparented to us that nobody waits for."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


# --- pyckpt ---------------------------------------------------------------


@dataclasses.dataclass
class Result:
    argv: list
    returncode: int
    stdout: str
    stderr: str

    def describe(self):
        return (f"`{' '.join(self.argv[2:])}` exited {self.returncode}\n"
                f"--- stdout ---\n{self.stdout}--- stderr ---\n{self.stderr}")


def pyckpt_argv(*args):
    return [sys.executable, "-m", "pyckpt", *map(str, args)]


def run_pyckpt(*args, outdir, tag, timeout=PYCKPT_TIMEOUT):
    """Run pyckpt to completion; its output goes to files (a restored process
    that kept a pipe of ours open would otherwise hang us)."""
    argv = pyckpt_argv(*args)
    out, err = Path(outdir) / f"{tag}.out", Path(outdir) / f"{tag}.err"
    with open(out, "w") as fout, open(err, "w") as ferr:
        try:
            rc = subprocess.run(argv, cwd=REPO, stdin=subprocess.DEVNULL,
                                stdout=fout, stderr=ferr, timeout=timeout,
                                start_new_session=True).returncode
        except subprocess.TimeoutExpired:
            rc = "timeout"
    res = Result(argv, rc, out.read_text(), err.read_text())
    if rc == "timeout":
        pytest.fail(f"pyckpt did not finish within {timeout:.0f} s: {res.describe()}")
    return res


# --- a running workload ---------------------------------------------------


class Workload:
    """One workload process through start → (dump → restore) → SIGTERM.

    Until the first dump that kills it, the process is our Popen child;
    after a restore with -d it is a reparented child we reap by PID."""

    def __init__(self, case, bindir, tmpdir):
        self.case = case
        self.bindir = bindir
        self.dir = Path(tmpdir)
        self.log_path = self.dir / "out.log"
        self.images = self.dir / "images"
        self.popen = None
        self.pid = None
        self.alive = False      # a process with self.pid is ours to kill/reap
        self.ours_by_pid = False  # reap with os.waitpid (not Popen)
        self.numbers_seen = 0

    # starting and watching

    def start(self, **popen_kw):
        argv = [str(self.bindir / self.case.binary), *self.case.args]
        fd = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            kw = dict(cwd=self.dir, stdin=subprocess.DEVNULL, stdout=fd,
                      stderr=fd, start_new_session=True)
            kw.update(popen_kw)
            self.popen = subprocess.Popen(argv, **kw)
        finally:
            os.close(fd)
        self.pid = self.popen.pid
        self.alive = True
        self.wait_for_line("READY")
        self.wait_numbers()
        return self

    def log(self):
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def _died(self):
        """Exit code if our process has exited (and reap it), else None."""
        if not self.alive:
            # not ours (e.g. a child of `pyckpt restore` without -d)
            st = proc_status(self.pid)
            return "gone" if st is None or st.get("State", "")[:1] in "ZX" else None
        if not self.ours_by_pid and self.popen is not None:
            rc = self.popen.poll()
        else:
            done, status = os.waitpid(self.pid, os.WNOHANG)
            rc = exit_code(status) if done else None
        if rc is not None:
            self.alive = False
        return rc

    def wait_for(self, predicate, what, timeout=READY_TIMEOUT):
        deadline = time.monotonic() + timeout
        while not predicate(self.log()):
            rc = self._died()
            if rc is not None:
                pytest.fail(f"{self.case.id}: exited ({rc}) while waiting for "
                            f"{what}; log:\n{self.log()}")
            if time.monotonic() > deadline:
                pytest.fail(f"{self.case.id}: no {what} within {timeout:.0f} s; "
                            f"log:\n{self.log()}")
            time.sleep(0.02)

    def wait_for_line(self, line, timeout=READY_TIMEOUT):
        self.wait_for(lambda text: line in text.splitlines(), repr(line), timeout)

    def numbers(self):
        return [int(l) for l in self.log().splitlines() if l.strip().isdigit()]

    def wait_numbers(self):
        """For the counter: wait until case.numbers more numbers are out."""
        if not self.case.numbers:
            return
        want = self.numbers_seen + self.case.numbers
        self.wait_for(lambda text: len(self.numbers()) >= want,
                      f"{want} numbers", READY_TIMEOUT + 2 * want)
        self.numbers_seen = len(self.numbers())

    # pyckpt

    def dump(self, *extra, images=None, leave_running=False, check=True):
        images = Path(images or self.images)
        args = ["dump", "-t", self.pid, "-D", images, "--backend", BACKEND, *extra]
        if leave_running:
            args.append("-R")
        tree = descendants(self.pid)
        res = run_pyckpt(*args, outdir=self.dir, tag="dump")
        if check and res.returncode != 0:
            pytest.fail(f"dump of {self.case.id} failed: {res.describe()}")
        if res.returncode == 0 and not leave_running:
            # pyckpt killed it: reap it so that its PID is free again
            try:
                rc = self.reap(EXIT_TIMEOUT)
            except TimeoutError:
                pytest.fail(f"{self.case.id}: still running after a dump "
                            f"without -R ({untouched_problem(self.pid)})")
            assert rc == -signal.SIGKILL, (
                f"{self.case.id}: expected death by SIGKILL after the dump, got {rc}")
            # its children were killed too and are reparented to us: reap them
            wait_gone(tree, EXIT_TIMEOUT)
        return res

    def restore(self, *extra, images=None, check=True):
        images = Path(images or self.images)
        res = run_pyckpt("restore", "-D", images, "-d", *extra,
                         outdir=self.dir, tag="restore")
        if res.returncode == 0:
            self.alive = True
            self.ours_by_pid = True
        if check:
            if res.returncode != 0:
                pytest.fail(f"restore of {self.case.id} failed: {res.describe()}"
                            f"\nworkload log:\n{self.log()}")
            assert proc_status(self.pid) is not None, (
                f"restore exited 0 but there is no process {self.pid}")
            self.wait_numbers()
        return res

    # ending

    def reap(self, timeout=EXIT_TIMEOUT):
        """Wait for our process to exit; its exit code or -SIG."""
        if self.ours_by_pid:
            rc = wait_pid(self.pid, timeout)
        else:
            try:
                rc = self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                raise TimeoutError(f"{self.pid} did not exit") from None
        self.alive = False
        return rc

    def terminate(self, timeout=EXIT_TIMEOUT):
        """SIGTERM, wait; (exit code, log)."""
        os.kill(self.pid, signal.SIGTERM)
        try:
            rc = self.reap(timeout)
        except TimeoutError:
            pytest.fail(f"{self.case.id}: no exit within {timeout:.0f} s of "
                        f"SIGTERM ({untouched_problem(self.pid)}); log:\n{self.log()}")
        return rc, self.log()

    def assert_passes(self):
        rc, log = self.terminate()
        lines = log.splitlines()
        assert rc == 0 and lines and lines[-1] == "PASS" and not any(
            l.startswith("FAIL") for l in lines), (
            f"{self.case.id}: exit {rc}, log:\n{log}")
        if self.case.numbers:
            nums = self.numbers()
            assert nums == list(range(len(nums))), (
                f"counter output has a gap or repeat: {nums}")
        return log

    def kill(self):
        if self.alive:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            try:
                self.reap(10 * SCALE)
            except (TimeoutError, ChildProcessError):
                pass
            self.alive = False


@pytest.fixture
def start_workload(workload_dir, tmp_path):
    """start_workload(case_or_name) → a started Workload (READY seen).
    Everything started is SIGKILLed and reaped at teardown."""
    started = []

    def start(case, subdir=None, **popen_kw):
        if isinstance(case, str):
            case = case_named(case)
        wdir = tmp_path / (subdir or case.id)
        wdir.mkdir()
        wl = Workload(case, workload_dir, wdir)
        started.append(wl)
        return wl.start(**popen_kw)

    yield start
    for wl in started:
        wl.kill()
    reap_strays()


def image_files(images):
    """Image files of a dump folder (logs excluded), largest first."""
    files = [p for p in Path(images).rglob("*") if p.is_file() and p.suffix != ".log"]
    return sorted(files, key=lambda p: p.stat().st_size, reverse=True)


def copy_images(src, dst):
    shutil.copytree(src, dst, symlinks=True)
    return Path(dst)


def case_named(name):
    return next(c for c in ALL_CASES if c.id == name)


@pytest.fixture
def harness():
    """The helpers above, for test modules (which import nothing from here)."""
    return types.SimpleNamespace(
        REPO=REPO, BACKEND=BACKEND, SCALE=SCALE, READY_TIMEOUT=READY_TIMEOUT,
        PYCKPT_TIMEOUT=PYCKPT_TIMEOUT, EXIT_TIMEOUT=EXIT_TIMEOUT,
        pyckpt_argv=pyckpt_argv, run_pyckpt=run_pyckpt, proc_status=proc_status,
        untouched_problem=untouched_problem, wait_untouched=wait_untouched,
        wait_pid=wait_pid, image_files=image_files, copy_images=copy_images,
        case_named=case_named, Workload=Workload, Case=Case)
