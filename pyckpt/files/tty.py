"""Terminals. A job's terminal belongs to the user's shell, outside the dump:
with --shell-job the restored process gets the restoring shell's terminal."""

import os
import stat

from ..errors import RestoreConflict
from ..images.proto import files_pb2
from .regular import file_ref

# Character-device majors of terminals: tty/console (4, 5), pty slaves (136-143).
_TTY_MAJORS = {4, 5} | set(range(136, 144))


def is_tty(st):
    return stat.S_ISCHR(st.st_mode) and os.major(st.st_rdev) in _TTY_MAJORS


_DEV_TTY = os.makedev(5, 0)


def is_job_terminal(st, ctty):
    """The terminal of the job (its controlling terminal, or /dev/tty): the shell's, for --shell-job.
    Any other terminal (/dev/console, /dev/ttyN, a pty it is not controlled by) is reopened by path."""
    return st.st_rdev == _DEV_TTY or (ctty != 0 and st.st_rdev == ctty)


def describe(entry, link, st):
    entry.kind = files_pb2.OpenFile.TTY
    entry.rdev = st.st_rdev
    file_ref(entry.file, link, st)


def restoring_terminal():
    """The terminal the restoring pyckpt runs on (its stdin, else stdout/stderr)."""
    for fd in (0, 1, 2):
        try:
            if os.isatty(fd):
                return os.ttyname(fd)
        except OSError:
            continue
    raise RestoreConflict("--shell-job: pyckpt restore must run on a terminal to hand it to the restored job")
