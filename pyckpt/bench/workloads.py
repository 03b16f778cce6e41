"""The bench workloads: C programs shipped in workloads/, built on first use, and one running instance.

The protocol (workloads/bench.h): a workload appends lines to ./status:
READY once its memory is filled, STALL <ns> on SIGUSR1 (its longest loop
gap: the time it was frozen, as it saw it), and VERIFIED or FAIL on SIGTERM
after checking every page it owns.
"""

import dataclasses
import hashlib
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from .. import proc
from ..errors import PyckptError

SOURCES = Path(__file__).resolve().parent / "workloads"
PROGRAMS = ("anon", "mappings", "threads", "tree", "fds", "measure")   # measure: the stopwatch
READY_TIMEOUT = 120
VERIFY_TIMEOUT = 120


class WorkloadError(PyckptError):
    """A bench workload could not be built, did not start or failed its own check."""


@dataclasses.dataclass(frozen=True)
class WorkloadSpec:
    """One workload of a run: a program, its arguments and the memory it fills."""

    name: str           # as shown in the table, e.g. anon-64M
    program: str
    args: tuple
    mib: float          # memory it owns and checks, MiB (for the size axis)
    kind: str           # anon, writer, mappings, threads, tree, fds


def anon(mib):
    return WorkloadSpec(f"anon-{mib}M", "anon", (str(mib),), mib, "anon")


def writer(mib):
    return WorkloadSpec(f"writer-{mib}M", "anon", (str(mib), "writer"), mib, "writer")


def standard_set(sizes, quick):
    """Anonymous memory at every size, then one of each other shape."""
    specs = [anon(m) for m in sizes]
    if quick:
        return specs + [writer(4), WorkloadSpec("mappings-100", "mappings", ("100",), 100 * 2 * 4 / 1024, "mappings"),
                        WorkloadSpec("threads-16", "threads", ("16", "1"), 16, "threads"),
                        WorkloadSpec("tree-8", "tree", ("8", "1"), 8, "tree"),
                        WorkloadSpec("fds-100", "fds", ("100",), 1, "fds")]
    return specs + [writer(64), WorkloadSpec("mappings-1000", "mappings", ("1000",), 1000 * 2 * 4 / 1024, "mappings"),
                    WorkloadSpec("threads-16", "threads", ("16", "4"), 64, "threads"),
                    WorkloadSpec("tree-8", "tree", ("8", "8"), 64, "tree"),
                    WorkloadSpec("fds-1000", "fds", ("1000",), 1, "fds")]


def cache_dir():
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "pyckpt" / "bench"


def build(cc=None):
    """Compile the workloads into the cache (once per source and compiler); returns the bin folder."""
    cc = cc or os.environ.get("CC") or "cc"
    if shutil.which(cc) is None:
        raise WorkloadError(f"no C compiler '{cc}' to build the bench workloads (set CC or install gcc)")
    digest = hashlib.sha256(cc.encode())
    for path in sorted(SOURCES.iterdir()):
        if path.suffix in (".c", ".h"):
            digest.update(path.name.encode() + path.read_bytes())
    out = cache_dir() / digest.hexdigest()[:16]
    if all((out / p).exists() for p in PROGRAMS):
        return out
    out.mkdir(parents=True, exist_ok=True)
    for program in PROGRAMS:
        tmp = out / f".{program}.{os.getpid()}"
        res = subprocess.run([cc, "-O2", "-Wall", "-pthread", "-o", str(tmp), str(SOURCES / f"{program}.c")],
                             capture_output=True, text=True)
        if res.returncode != 0:
            raise WorkloadError(f"building bench workload {program} failed:\n{res.stderr.strip()}")
        os.replace(tmp, out / program)
    return out


def _exists(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def tree_pids(root):
    """root and every process below it (from /proc/*/stat)."""
    parents = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat") as f:
                    parents[int(name)] = int(f.read().rpartition(")")[2].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    found, frontier = [root], [root]
    while frontier:
        parent = frontier.pop()
        kids = [p for p, pp in parents.items() if pp == parent]
        found += kids
        frontier += kids
    return found


class RunningWorkload:
    """One workload process (tree) in its own folder and session; we reap it
    ourselves, as its parent or as the subreaper it is reparented to."""

    def __init__(self, spec, bindir, folder):
        self.spec = spec
        self.dir = Path(folder)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.status = self.dir / "status"
        with open(os.devnull, "r+b") as null:
            proc = subprocess.Popen([str(bindir / spec.program), *spec.args], cwd=self.dir, stdin=null,
                                    stdout=null, stderr=null, start_new_session=True)
        self.pid = proc.pid
        proc.returncode = 0     # reaped by PID below; keep Popen's finaliser away from it
        try:
            self.ready_sum = self.wait_line("READY", READY_TIMEOUT).split()[1]
        except WorkloadError:
            self.kill()
            raise

    def lines(self):
        try:
            return self.status.read_text().splitlines()
        except FileNotFoundError:
            return []

    def wait_line(self, word, timeout, after=0):
        """The first line starting with word (or FAIL) past the first `after` lines."""
        deadline = time.monotonic() + timeout
        while True:
            alive = _exists(self.pid)   # before reading: a line written just before exit counts
            for line in self.lines()[after:]:
                if line.startswith(word + " ") or line.startswith("FAIL"):
                    if line.startswith("FAIL"):
                        raise WorkloadError(f"{self.spec.name}: {line}")
                    return line
            if not alive:
                raise WorkloadError(f"{self.spec.name}: exited before saying {word} (status: {self.lines()})")
            if time.monotonic() > deadline:
                raise WorkloadError(f"{self.spec.name}: no {word} within {timeout} s")
            time.sleep(0.005)

    def stall_ns(self):
        """Ask for the longest stall since READY (or the last ask)."""
        seen = len(self.lines())
        os.kill(self.pid, signal.SIGUSR1)
        return int(self.wait_line("STALL", 30, after=seen).split()[1])

    def kill(self):
        """Kill the whole tree and reap it (its children come to us as subreaper)."""
        pids = tree_pids(self.pid)
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 30
        while any(_exists(p) or os.path.exists(f"/proc/{p}") for p in pids):
            proc.reap_orphans()
            if time.monotonic() > deadline:
                raise WorkloadError(f"{self.spec.name}: processes {pids} outlive SIGKILL")
            time.sleep(0.005)

    def verify(self):
        """SIGTERM: the workload checks its memory. Returns the VERIFIED line's checksum;
        raises WorkloadError on FAIL or an unexpected exit, and always reaps it."""
        seen = len(self.lines())
        os.kill(self.pid, signal.SIGTERM)
        try:
            line = self.wait_line("VERIFIED", VERIFY_TIMEOUT, after=seen)
        finally:
            self.kill()
        checksum = line.split()[1]
        if self.spec.kind != "writer" and checksum != self.ready_sum:
            raise WorkloadError(f"{self.spec.name}: checksum {checksum} after restore, {self.ready_sum} before")
        return checksum
