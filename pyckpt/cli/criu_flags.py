"""CRIU's dump/restore flags, all in one place: scripts written for CRIU pass them.

Each flag is accepted with CRIU's meaning where pyckpt honours it, and refused
with one line saying why where it cannot yet (exit 2, before anything is
touched) -- never click's "No such option". `criu_flags("dump")` adds them to
a command and hands the command one `CriuFlags` record instead of a keyword
per flag.

Honoured:
  -o/--log-file FILE    the debug log's name, relative to -D (CRIU: to the work
                        dir, which defaults to -D); an absolute path is kept.
  --ghost-limit SIZE    a deleted file larger than SIZE (K/M/G suffixes) is
                        refused at dump, naming it. Without it pyckpt saves
                        deleted files of any size (CRIU's default is 1M).
  --file-locks          pyckpt always dumps and restores file locks (CRIU does
                        so only with this flag): accepted, nothing to change.
  --link-remap          CRIU may then link a file whose opened name was removed
                        while it stays linked elsewhere. pyckpt never changes
                        the file system at dump: such a file is still refused,
                        naming it; the flag is accepted as a permission.
  --manage-cgroups=ignore  "do not deal with cgroups": what pyckpt does.
  --tcp-established, --tcp-close, --skip-in-flight  handed on as DumpOptions /
                        RestoreOptions fields; a TCP socket is still refused
                        at dump by name until TCP support lands.
  -vN (N=0..4)          CRIU's log levels for stderr (see cli/main.py).
Refused: --manage-cgroups with another mode, --cgroup-yard, --external,
--ext-mount-map, --enable-fs (cgroups, mount namespaces and external resources
are not checkpointed yet).
"""

import dataclasses
import functools
import os
import re
from typing import Optional

import click

from ..errors import PyckptError

CGROUP_MODES = ("ignore", "none", "props", "soft", "full", "strict")


class UnsupportedFlag(PyckptError):
    """A CRIU flag pyckpt knows but cannot honour yet: bad usage, nothing touched."""

    exit_code = 2


@dataclasses.dataclass(frozen=True)
class CriuFlags:
    log_file: Optional[str] = None     # None: the command's default (dump.log, restore.log)
    ghost_limit: Optional[int] = None  # bytes; None: no limit
    tcp_established: bool = False
    tcp_close: bool = False
    skip_in_flight: bool = False


_SIZE = re.compile(r"^(\d+)([KMG]?)$", re.IGNORECASE)
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}


def parse_size(text):
    """'1048576', '512K', '1M', '2G' -> bytes (CRIU's size syntax)."""
    match = _SIZE.match(text.strip())
    if not match:
        raise click.BadParameter(f"{text!r} is not a size (a number with an optional K, M or G suffix)")
    return int(match.group(1)) * _UNITS[match.group(2).upper()]


def _size(_ctx, _param, value):
    return None if value is None else parse_size(value)


# (name of the keyword click passes, the option) -- the one list of CRIU's flags.
_OPTIONS = {
    "log_file": click.option(
        "-o", "--log-file", "log_file", metavar="FILE",
        help="Write the debug log to FILE, relative to -D unless absolute (default: dump.log / restore.log)."),
    "file_locks": click.option(
        "--file-locks", is_flag=True,
        help="CRIU's permission to dump file locks: pyckpt always handles flock/POSIX/OFD locks."),
    "link_remap": click.option(
        "--link-remap", is_flag=True,
        help="CRIU's permission to link removed files back; pyckpt never changes the file system at dump "
             "(a file opened through a removed name that is still linked elsewhere is refused by name)."),
    "ghost_limit": click.option(
        "--ghost-limit", metavar="SIZE", callback=_size,
        help="Refuse to save a deleted file larger than SIZE (K/M/G suffixes; default: no limit)."),
    "manage_cgroups": click.option(
        "--manage-cgroups", metavar="MODE", is_flag=False, flag_value="soft", default=None,
        type=click.Choice(CGROUP_MODES),
        help="CRIU's cgroup handling: only 'ignore' is supported (pyckpt does not move processes "
             "between cgroups yet)."),
    "cgroup_yard": click.option("--cgroup-yard", metavar="PATH", help="Not supported yet (cgroups)."),
    "external": click.option("--external", metavar="RES", multiple=True,
                             help="Not supported yet (external resources)."),
    "ext_mount_map": click.option("--ext-mount-map", metavar="KEY:VAL", multiple=True,
                                  help="Not supported yet (mount namespaces)."),
    "enable_fs": click.option("--enable-fs", metavar="FS[,FS...]", help="Not supported yet (mount namespaces)."),
    "tcp_established": click.option(
        "--tcp-established", is_flag=True,
        help="Keep established TCP connections (TCP repair mode; needs nft: their packets are dropped "
             "from the dump until the restore, or until the dump ends with -R)."),
    "tcp_close": click.option("--tcp-close", is_flag=True,
                              help="Restore established TCP connections as closed sockets."),
    "skip_in_flight": click.option(
        "--skip-in-flight", is_flag=True,
        help="Leave out TCP connections waiting in a listener's accept queue (their clients are reset)."),
}

_NOT_YET = {
    "cgroup_yard": "--cgroup-yard: pyckpt does not manage cgroups yet",
    "external": "--external: pyckpt cannot treat a resource as external yet",
    "ext_mount_map": "--ext-mount-map: pyckpt does not checkpoint mount namespaces yet",
    "enable_fs": "--enable-fs: pyckpt does not checkpoint mount namespaces yet",
}


def _check(values):
    """Refuse what pyckpt cannot honour; the record of what it can."""
    mode = values.pop("manage_cgroups")
    if mode is not None and mode != "ignore":
        raise UnsupportedFlag(f"--manage-cgroups={mode}: pyckpt does not restore cgroup membership yet "
                              "(only --manage-cgroups=ignore is accepted)")
    for name, why in _NOT_YET.items():
        if values.pop(name):
            raise UnsupportedFlag(why)
    values.pop("file_locks")    # always done
    values.pop("link_remap")    # a permission pyckpt does not need
    return CriuFlags(**values)


def criu_flags(func):
    """Add CRIU's flags to a click command; it receives them as one `criu` keyword (a CriuFlags)."""
    @functools.wraps(func)
    def wrapper(**kwargs):
        values = {name: kwargs.pop(name) for name in _OPTIONS}
        return func(criu=_check(values), **kwargs)

    for option in reversed(_OPTIONS.values()):
        wrapper = option(wrapper)
    return wrapper


def log_file(criu, default):
    """The log file name to hand to the library (relative to the image folder unless absolute)."""
    return os.path.normpath(criu.log_file) if criu.log_file else default


# `-v0` .. `-v4`: CRIU sets its log level with the number glued to -v, which click cannot parse.
_LEVEL_ARG = re.compile(r"^-v(\d+)$")


def rewrite_levels(args):
    """Turn CRIU's `-vN` into `--log-level=N` (args before a `--` only)."""
    out = []
    for i, arg in enumerate(args):
        if arg == "--":
            return out + list(args[i:])
        match = _LEVEL_ARG.match(arg)
        out.append(f"--log-level={match.group(1)}" if match else arg)
    return out
