"""The ways a bench sample is dumped and restored: pyckpt's two sources and CRIU.

Every dump and restore is a child process timed by wall clock (Python's
start-up included for pyckpt, as a user sees it) and reaped with wait4 for
its peak RSS. Dumps leave the target running (-R) so that the workload can
say how long it was frozen.
"""

import dataclasses
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from .. import __version__
from ..errors import PyckptError

COMMAND_TIMEOUT = 600


class BackendError(PyckptError):
    """A dump or restore of a bench workload failed."""


@dataclasses.dataclass(frozen=True)
class Timing:
    seconds: float
    maxrss_kib: int


def run_timed(measure, argv, log_path, what):
    """Run argv to completion under the `measure` program; its wall time and
    peak RSS. Output goes to log_path: a restored process keeping a pipe of
    ours open would hang us."""
    result = Path(log_path).with_suffix(".measure")
    with open(log_path, "ab") as log, open(os.devnull, "rb") as null:
        proc = subprocess.Popen([str(measure), str(result), *map(str, argv)], stdin=null, stdout=log, stderr=log,
                                start_new_session=True)
        try:
            proc.wait(COMMAND_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise BackendError(f"{what} did not finish within {COMMAND_TIMEOUT} s")
    try:
        code, ns, maxrss = (int(word) for word in result.read_text().split())
    except (OSError, ValueError):
        raise BackendError(f"{what}: could not be run (see {log_path})") from None
    if code != 0:
        tail = Path(log_path).read_text(errors="replace").strip().splitlines()[-3:]
        raise BackendError(f"{what} exited {code}: {' | '.join(tail)}")
    return Timing(ns / 1e9, maxrss)


def image_bytes(folder):
    """Bytes of the image's files (logs left out), as stored (apparent size)."""
    total = 0
    for root, _dirs, files in os.walk(folder):
        total += sum(os.lstat(os.path.join(root, f)).st_size for f in files if not f.endswith(".log"))
    return total


def pyckpt_has_pre_dump():
    from ..cli.main import cli
    return "pre-dump" in cli.commands


class PyckptBackend:
    """pyckpt with one of its sources (ptrace, kmod)."""

    def __init__(self, source, measure):
        self.measure = measure
        self.name = source
        self.source = source

    def unavailable_reason(self):
        if self.source == "kmod" and not os.path.exists("/dev/crak"):
            return "/dev/crak does not exist (crak.ko is not loaded)"
        return None

    def version(self):
        text = f"pyckpt {__version__} ({self.source} source)"
        if self.source == "kmod":
            try:
                text += ", crak.ko " + Path("/sys/module/crak/version").read_text().strip()
            except OSError:
                pass
        return text

    def _argv(self, *args):
        return [sys.executable, "-m", "pyckpt", *map(str, args)]

    def pre_dump_reason(self):
        return None if pyckpt_has_pre_dump() else "pyckpt has no pre-dump command yet"

    def pre_dump(self, pid, images, log):
        return run_timed(self.measure, self._argv("pre-dump", "-t", pid, "-D", images, "--backend", self.source), log,
                         f"pyckpt pre-dump ({self.name})")

    def dump(self, pid, images, log):
        return run_timed(self.measure, self._argv("dump", "-t", pid, "-D", images, "-R", "--backend", self.source), log,
                         f"pyckpt dump ({self.name})")

    def restore(self, images, log):
        return run_timed(self.measure, self._argv("restore", "-D", images, "-d"), log, f"pyckpt restore ({self.name})")


def find_criu(path=None):
    """The criu binary: the one given, else one on PATH; None when there is none."""
    if path:
        if not os.access(path, os.X_OK):
            raise PyckptError(f"--criu {path}: not an executable file")
        return os.path.abspath(path)
    return shutil.which("criu")


class CriuBackend:
    """CRIU, run with the options that match pyckpt's: -R, detached restore."""

    name = "criu"

    def __init__(self, path, measure):
        self.measure = measure
        self.path = path
        self._version = None
        self._pre_dump_reason = None

    def unavailable_reason(self):
        if self.path is None:
            return "no criu binary found (give one with --criu PATH)"
        res = subprocess.run([self.path, "check"], capture_output=True, text=True)
        if res.returncode != 0:
            last = (res.stderr or res.stdout).strip().splitlines()[-1:] or ["no output"]
            return f"`{self.path} check` fails on this kernel: {last[0]}"
        return None

    def version(self):
        if self._version is None:
            res = subprocess.run([self.path, "--version"], capture_output=True, text=True)
            words = [line.split(":", 1)[1].strip() for line in res.stdout.splitlines() if line.startswith("Version")]
            self._version = f"CRIU {words[0] if words else '?'} ({self.path})"
        return self._version

    def pre_dump_reason(self):
        if self._pre_dump_reason is None:
            res = subprocess.run([self.path, "check", "--feature", "mem_dirty_track"], capture_output=True)
            self._pre_dump_reason = ("" if res.returncode == 0 else
                                     "this kernel has no soft-dirty memory tracking (criu check --feature "
                                     "mem_dirty_track fails)")
        return self._pre_dump_reason or None

    def pre_dump(self, pid, images, log):
        os.makedirs(images, exist_ok=True)
        return run_timed(self.measure, [self.path, "pre-dump", "-t", str(pid), "-D", str(images), "-o", "pre-dump.log"], log,
                         "criu pre-dump")

    def dump(self, pid, images, log):
        os.makedirs(images, exist_ok=True)
        return run_timed(self.measure, [self.path, "dump", "-t", str(pid), "-D", str(images), "-R", "-o", "dump.log"], log,
                         "criu dump")

    def restore(self, images, log):
        return run_timed(self.measure, [self.path, "restore", "-D", str(images), "-d", "-o", "restore.log"], log, "criu restore")


def select(names, criu_path, measure):
    """The backends asked for (or every one, when names is None), and the
    reasons the others were left out: ([backend], {name: reason})."""
    candidates = [PyckptBackend("ptrace", measure), PyckptBackend("kmod", measure),
                  CriuBackend(find_criu(criu_path), measure)]
    known = {b.name for b in candidates}
    for name in names or ():
        if name not in known:
            raise PyckptError(f"unknown backend '{name}' (known: {', '.join(sorted(known))})")
    chosen, skipped = [], {}
    for backend in candidates:
        if names and backend.name not in names:
            continue
        reason = backend.unavailable_reason()
        if reason is None:
            chosen.append(backend)
        elif names:
            raise PyckptError(f"backend {backend.name} is not available: {reason}")
        else:
            skipped[backend.name] = reason
    return chosen, skipped
