"""The library API: what the CLI does, for programs that build their own tools on pyckpt.
pyckpt/__init__.py offers these same functions as pyckpt.dump, pyckpt.pre_dump,
pyckpt.restore and pyckpt.check:

    import pyckpt
    from pyckpt.options import DumpOptions, RestoreOptions
    pyckpt.pre_dump(pid, "/ckpt/1")                       # memory only; the tree goes on
    summary = pyckpt.dump(pid, "/ckpt/2", DumpOptions(leave_running=True, prev_images_dir="../1"))
    job = pyckpt.restore("/ckpt/2")        # the tree runs again; job.pid is its root
    status = job.wait()                    # its exit status (128+N if killed by signal N)
    pyckpt.check()                         # what this machine offers (a KernDat record)

Errors are pyckpt.errors.PyckptError subclasses (never click, never sys.exit).
Restore makes the restored root a child of the calling process: call wait()
or reap it yourself. Importing this module is cheap; the work is imported
on first call.
"""

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Restored:
    """A restored process tree: its root PID, a child of the process that restored it."""

    pid: int

    def wait(self):
        from .restorer import wait_exit_status
        return wait_exit_status(self.pid)


def dump(pid, images_dir, options=None):
    """Checkpoint the tree rooted at `pid` into `images_dir` (a new folder); returns a summary
    dict (pids, pages, freeze_s, dump_s, frozen_s, total_s). Without options.leave_running the tree
    is killed; if it is the caller's own child, the ptrace backend (the caller is its tracer) has
    then already reaped it."""
    from .dumper import dump as _dump
    return _dump(pid, images_dir, options)


def pre_dump(pid, images_dir, options=None):
    """Memory only, the tree left running (options: a DumpOptions; prev_images_dir and
    track_mem apply); returns a summary dict."""
    from .predump import pre_dump as _pre_dump
    return _pre_dump(pid, images_dir, options)


def restore(images_dir, options=None):
    """Restore an image with its PIDs; returns a Restored handle as soon as the tree runs."""
    from .options import RestoreOptions
    from .restorer import restore as _restore
    options = replace(options or RestoreOptions(), detach=True)
    return Restored(_restore(images_dir, options))


def check():
    """Probe this machine once: a pyckpt.kerndat.KernDat (features with ok/detail, usable)."""
    from .kerndat import probe
    return probe()
