"""`pyckpt supervise`: checkpoint a long job periodically, bring it back after a crash.

The supervisor is the job's parent and a child subreaper, so it sees the
job's exit status (and reaps whatever the job orphans). Every interval it
dumps the job with -R into DIR/<n>/ (the image store renames a checkpoint into
place only once it is whole and synced) and then points DIR/latest at it with
an atomic rename, so a power cut leaves the previous complete checkpoint
usable. Where this machine can track written pages (tracking.py), each
checkpoint after a full one holds only what changed since the previous one
(--prev-images-dir): chains are at most --keep long, then a full dump starts
a new one, and a checkpoint is removed only when no kept one builds on it. When the job dies by a signal or with an exit status --restart-on
names, the latest checkpoint is restored with the same PID, again as the
supervisor's child; a normal exit ends the supervision with the job's status.

DIR/supervise.json is the state a `--status` view and a `--resume` read; it
is rewritten (atomically) after every event.

Built on the library API (pyckpt.api), in this process.
"""

import json
import logging
import os
import re
import shutil
import signal
import time
from dataclasses import dataclass, field

from . import linux
from .errors import PyckptError

log = logging.getLogger(__name__)

LATEST = "latest"
STATE = "supervise.json"


@dataclass(frozen=True)
class SuperviseOptions:
    interval: float = 60.0             # seconds between checkpoints
    keep: int = 3                      # complete checkpoints kept
    restart_on: tuple = ()             # exit statuses that mean a crash; () = any non-zero
    max_restarts: int = 5              # within restart_window, then give up
    restart_window: float = 600.0
    output: str = ""                   # the job's stdout+stderr (appended); "" = DIR/job.out
    dump_options: dict = field(default_factory=dict)    # extra DumpOptions fields (backend, shell_job...)


def parse_duration(text):
    """'30s', '5m', '1h', '250ms' or a plain number of seconds."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*(ms|s|m|h)?\s*", str(text))
    if not m:
        raise ValueError(f"not a duration: {text!r} (e.g. 30s, 5m, 1h)")
    return float(m.group(1)) * {"ms": 0.001, "s": 1, None: 1, "m": 60, "h": 3600}[m.group(2)]


class SuperviseError(PyckptError):
    pass


class Supervisor:
    def __init__(self, images_dir, options):
        self.dir = os.path.abspath(images_dir)
        self.options = options
        self.state = {"supervisor_pid": os.getpid(), "pid": None, "command": None, "checkpoints": [],
                      "restarts": [], "status": "starting", "started": time.time()}
        self.stop_requested = False

    # -- ways in --------------------------------------------------------------------------

    def start(self, argv):
        """Run COMMAND as the job: a new session, stdin /dev/null, output to a file."""
        self._prepare(resume=False)
        out_path = self.options.output or os.path.join(self.dir, "job.out")
        out = os.open(out_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        pid = os.fork()
        if pid == 0:
            try:
                os.setsid()
                null = os.open(os.devnull, os.O_RDONLY)
                os.dup2(null, 0)
                os.dup2(out, 1)
                os.dup2(out, 2)
                os.closerange(3, os.sysconf("SC_OPEN_MAX") if os.sysconf("SC_OPEN_MAX") < 65536 else 65536)
                signal.pthread_sigmask(signal.SIG_SETMASK, [])
                os.execvp(argv[0], argv)
            except OSError as err:
                os.write(2, f"pyckpt supervise: cannot run {argv[0]}: {err.strerror}\n".encode())
            os._exit(127)
        os.close(out)
        self.state.update(pid=pid, command=list(argv), output=out_path)
        log.info("job %d started: %s (output: %s)", pid, " ".join(argv), out_path)
        return self._loop(pid)

    def adopt(self, pid):
        """A running job: dumped (killed) once and restored as this supervisor's child, so its
        exit status can be seen; its old parent sees it end (SIGKILL)."""
        from .api import dump as _dump, restore as _restore
        self._prepare(resume=False)
        self.state.update(pid=pid, command=_cmdline(pid))
        path = self._new_checkpoint_dir()
        summary = _dump(pid, path, self._dump_options(leave_running=False))
        self._commit_checkpoint(path, summary, time.monotonic())
        # its old parent must reap it before the PID is free again
        deadline = time.monotonic() + 60
        while os.path.exists(f"/proc/{pid}"):
            if time.monotonic() > deadline:
                raise SuperviseError(f"job {pid} was dumped into {path}, but its old parent has not reaped it in "
                                     f"60 s: restore it with `pyckpt supervise -D {self.dir} --resume` once it has")
            time.sleep(0.02)
        _restore(self._latest(), self._restore_options())
        log.info("job %d adopted: dumped into %s and restored as the supervisor's child", pid, path)
        return self._loop(pid)

    def resume(self):
        """After a reboot, or the supervisor was killed: restore DIR/latest and go on."""
        self._prepare(resume=True)
        latest = self._latest()
        if latest is None:
            raise SuperviseError(f"{self.dir} has no complete checkpoint to resume from")
        restored, used = self._restore_newest_whole()
        self.state.update(pid=restored.pid)
        log.info("job %d resumed from checkpoint %s", restored.pid, used)
        return self._loop(restored.pid)

    # -- the loop ------------------------------------------------------------------------

    def _loop(self, pid):
        linux.prctl(linux.PR_SET_CHILD_SUBREAPER, 1)
        previous = {s: signal.signal(s, self._forward) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
        try:
            self.state["status"] = "running"
            self._save_state()
            next_at = time.monotonic() + self.options.interval
            while True:
                status = self._wait_job(pid, max(0.0, next_at - time.monotonic()))
                if status is None:
                    self._checkpoint(pid)
                    next_at = time.monotonic() + self.options.interval
                    continue
                if not self._should_restore(status):
                    return self._finish(status)
                pid = self._restore_after_crash(pid, status)
                next_at = time.monotonic() + self.options.interval
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)

    def _forward(self, signo, _frame):
        """Stopping the supervisor stops the job, as if it ran in the foreground: no restore."""
        self.stop_requested = True
        pid = self.state.get("pid")
        if pid:
            try:
                os.kill(pid, signo)
            except ProcessLookupError:
                pass

    def _wait_job(self, pid, timeout):
        """The job's wait status if it ended within `timeout`, else None; reaps orphans meanwhile."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                reaped, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                if os.path.exists(f"/proc/{pid}"):
                    raise SuperviseError(f"job {pid} is not a child of the supervisor any more") from None
                # It died while a checkpoint had it frozen, and the dump's tracer reaped it.
                # A frozen process can only have been killed (SIGKILL): say so.
                log.warning("job %d died during a checkpoint (the dump reaped it)", pid)
                return signal.SIGKILL       # a wait status: killed by signal 9
            if reaped == pid:
                return status
            if reaped:
                continue        # an orphan of the job, reparented here
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            time.sleep(min(left, 0.05))

    def _should_restore(self, status):
        if self.stop_requested:
            return False
        if os.WIFSIGNALED(status):
            return True
        code = os.WEXITSTATUS(status)
        return code in self.options.restart_on if self.options.restart_on else code != 0

    def _restore_after_crash(self, pid, status):
        how = _describe_status(status)
        now = time.time()
        recent = [r for r in self.state["restarts"] if now - r["at"] < self.options.restart_window]
        if len(recent) >= self.options.max_restarts:
            log.error("job %d %s: already restored %d times in %.0f s; giving up", pid, how, len(recent),
                      self.options.restart_window)
            self.state["status"] = f"given up after {len(recent)} restarts ({how})"
            self._save_state()
            raise _JobEnded(status)
        if self._latest() is None:
            log.error("job %d %s before its first checkpoint: nothing to restore", pid, how)
            raise _JobEnded(status)
        restored, used = self._restore_newest_whole()
        self.state["restarts"].append({"at": now, "pid": pid, "why": how, "from": used})
        self._save_state()
        log.warning("job %d %s: restored from checkpoint %s", pid, how, used)
        return restored.pid

    def _restore_newest_whole(self):
        """Restore `latest`; a damaged one (refused before anything is created) falls back to
        the newest older checkpoint that restores."""
        from .api import restore as _restore
        from .errors import ImageError
        latest = os.path.basename(self._latest())
        names = [latest] + [c["name"] for c in reversed(self.state["checkpoints"]) if c["name"] != latest]
        for name in names:
            path = os.path.join(self.dir, name)
            if not os.path.isdir(path):
                continue
            try:
                return _restore(path, self._restore_options()), name
            except ImageError as err:
                log.error("checkpoint %s cannot be restored (%s); trying an older one", name, err)
        raise SuperviseError(f"no checkpoint in {self.dir} can be restored")

    def _finish(self, status):
        how = _describe_status(status)
        self.state["status"] = f"ended: {how}"
        self._save_state()
        log.info("job %d %s; supervision ends", self.state["pid"], how)
        return _exit_code(status)

    # -- checkpoints ---------------------------------------------------------------------

    def _checkpoint(self, pid):
        from .api import dump as _dump
        from .errors import NoSuchProcess
        path = self._new_checkpoint_dir()
        started = time.monotonic()
        parent = self._incremental_parent() if self._tracking else None
        extra = {"track_mem": True, "prev_images_dir": parent and os.path.join("..", parent)} \
            if self._tracking else {}
        try:
            summary = _dump(pid, path, self._dump_options(leave_running=True, **extra))
        except (PyckptError, OSError) as err:
            if not self._tracking or isinstance(err, (NoSuchProcess, ProcessLookupError)):
                # the job may be about to die (its status comes next), or hold something
                # pyckpt refuses for now: the previous checkpoint stays the latest
                log.warning("checkpoint of job %d failed: %s", pid, err)
                return
            # tracking itself may be what failed (say fd 1000 taken): full dumps from now on
            log.warning("incremental checkpoint of job %d failed (%s); taking full ones from now on", pid, err)
            self._method = None
            return self._checkpoint(pid)
        self._commit_checkpoint(path, summary, started, parent)

    @property
    def _tracking(self):
        """A way to find written pages here: checkpoints are incremental (else all full)."""
        if not hasattr(self, "_method"):
            from . import tracking
            from .sources import resolve_backend
            try:
                backend = resolve_backend(self.options.dump_options.get("backend", "auto"))
                self._method = tracking.choose("auto", backend)[0]
            except PyckptError:
                self._method = None
            log.info("checkpoints: %s", f"incremental, written pages tracked with {self._method}"
                     if self._method else "full (no way to track written pages here)")
        return self._method

    def _incremental_parent(self):
        """The checkpoint the next one builds on: the newest, unless its chain is --keep long."""
        by_name = {c["name"]: c for c in self.state["checkpoints"]}
        if not self.state["checkpoints"]:
            return None
        newest = self.state["checkpoints"][-1]["name"]
        length, name = 0, newest
        while name is not None:
            length += 1
            name = by_name.get(name, {}).get("parent")
        return newest if length < self.options.keep else None

    def _commit_checkpoint(self, path, summary, started, parent=None):
        size = _du(path)
        _point_latest(self.dir, os.path.basename(path))
        entry = {"name": os.path.basename(path), "parent": parent, "at": time.time(), "bytes": size,
                 "pages": summary["pages"],
                 "frozen_s": round(summary["frozen_s"], 4),
                 "duration_s": round(time.monotonic() - started, 4)}
        self.state["checkpoints"].append(entry)
        self._rotate()
        self._save_state()
        log.info("checkpoint %s: %s, %d pages written%s, frozen %.3f s, took %.3f s", entry["name"], _human(size),
                 entry["pages"], f" ({summary.get('in_parent_pages', 0)} kept in {parent})" if parent else "",
                 entry["frozen_s"], entry["duration_s"])

    def _rotate(self):
        """Keep the newest `keep` checkpoints and every one they build on; remove the rest."""
        by_name = {c["name"]: c for c in self.state["checkpoints"]}
        needed = set()
        for c in self.state["checkpoints"][-self.options.keep:]:
            name = c["name"]
            while name is not None and name not in needed:
                needed.add(name)
                name = by_name.get(name, {}).get("parent")
        for old in self.state["checkpoints"]:
            if old["name"] not in needed:
                shutil.rmtree(os.path.join(self.dir, old["name"]), ignore_errors=True)
        self.state["checkpoints"] = [c for c in self.state["checkpoints"] if c["name"] in needed]

    def _new_checkpoint_dir(self):
        numbers = [int(n) for n in os.listdir(self.dir) if n.isdigit()]
        return os.path.join(self.dir, str(max(numbers, default=0) + 1))

    def _latest(self):
        path = os.path.join(self.dir, LATEST)
        return os.path.realpath(path) if os.path.isdir(path) else None

    # -- options and state -----------------------------------------------------------

    def _dump_options(self, leave_running, **extra):
        from .options import DumpOptions
        return DumpOptions(leave_running=leave_running, **self.options.dump_options, **extra)

    def _restore_options(self):
        from .options import RestoreOptions
        shell_job = self.options.dump_options.get("shell_job", False)
        return RestoreOptions(detach=True, shell_job=shell_job)

    def _prepare(self, resume):
        os.makedirs(self.dir, mode=0o700, exist_ok=True)
        previous = read_state(self.dir)
        if previous and not resume and _alive(previous.get("supervisor_pid")) \
                and previous.get("supervisor_pid") != os.getpid() and previous.get("status") == "running":
            raise SuperviseError(f"{self.dir} is supervised by process {previous['supervisor_pid']} already")
        if resume and previous:
            self.state.update({k: previous[k] for k in ("command", "checkpoints", "restarts", "output")
                               if k in previous})

    def _save_state(self):
        tmp = os.path.join(self.dir, f".{STATE}.tmp")
        with open(tmp, "w") as f:
            json.dump(self.state, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, os.path.join(self.dir, STATE))


class _JobEnded(Exception):
    def __init__(self, status):
        super().__init__(status)
        self.status = status


def run(mode, images_dir, options, argv=(), pid=None):
    """Supervise; returns the exit code the supervisor should end with (the job's)."""
    sup = Supervisor(images_dir, options)
    try:
        if mode == "start":
            return sup.start(argv)
        if mode == "adopt":
            return sup.adopt(pid)
        return sup.resume()
    except _JobEnded as ended:
        sup.state["status"] = sup.state["status"] if sup.state["status"].startswith("given up") else \
            f"ended: {_describe_status(ended.status)}"
        sup._save_state()
        return _exit_code(ended.status)


def read_state(images_dir):
    try:
        with open(os.path.join(images_dir, STATE)) as f:
            return json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as err:
        raise SuperviseError(f"{os.path.join(images_dir, STATE)}: unreadable ({err})") from None


def status_lines(images_dir):
    """The human view of a supervised folder (`pyckpt supervise --status`)."""
    state = read_state(images_dir)
    if state is None:
        raise SuperviseError(f"{images_dir} is not a supervised folder (no {STATE})")
    sup = state.get("supervisor_pid")
    lines = [f"job:        {state.get('pid')}  {' '.join(state.get('command') or [])}",
             f"supervisor: {sup} ({'running' if _alive(sup) else 'not running'}), status: {state.get('status')}",
             f"output:     {state.get('output', '')}"]
    latest = os.path.join(images_dir, LATEST)
    lines.append(f"latest:     {os.readlink(latest) if os.path.islink(latest) else 'none'}")
    for c in state.get("checkpoints", []):
        lines.append(f"checkpoint {c['name']:>4}: {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(c['at']))}  "
                     f"{_human(c['bytes'])}, {c['pages']} pages, frozen {c['frozen_s']:.3f} s")
    for r in state.get("restarts", []):
        lines.append(f"restart:    {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(r['at']))}  "
                     f"job {r['pid']} {r['why']}, restored from {r['from']}")
    return lines


# -- small helpers ---------------------------------------------------------------------


def _point_latest(directory, name):
    tmp = os.path.join(directory, f".{LATEST}.tmp")
    if os.path.lexists(tmp):
        os.unlink(tmp)
    os.symlink(name, tmp)
    os.rename(tmp, os.path.join(directory, LATEST))
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _describe_status(status):
    if os.WIFSIGNALED(status):
        return f"killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exited with status {os.WEXITSTATUS(status)}"


def _exit_code(status):
    return 128 + os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)


def _alive(pid):
    if not pid:
        return False
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def _cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return []


def _du(path):
    return sum(os.path.getsize(os.path.join(root, n)) for root, _, names in os.walk(path) for n in names)


def _human(size):
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
