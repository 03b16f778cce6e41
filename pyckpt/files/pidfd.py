"""pidfds (pidfd_open, clone CLONE_PIDFD): which process they refer to, from fdinfo's "Pid:".

Restore opens a new pidfd inside the target once every process of the tree
exists (zombies included): pidfd_open of the same PID, with PIDFD_NONBLOCK
and PIDFD_THREAD as they were. A pidfd of a process that has been reaped
("Pid: -1") refers to no process; pyckpt makes one like it from a child of
its own that it reaps at once, and hands it over. A pidfd of a live process
outside the dump is refused: the restored one would refer to whatever
process has that PID then; so is one of a thread other than the main one.
"""

import os

from .. import proc
from ..errors import UnsupportedState
from ..images.proto import files_pb2

LINKS = ("anon_inode:[pidfd]",)
DEAD = -1
PIDFD_THREAD = os.O_EXCL
_OPEN_FLAGS = os.O_NONBLOCK | PIDFD_THREAD


def is_pidfd(link):
    return link in LINKS or link.startswith("pidfd:")


def describe(entry, info, what):
    entry.kind = files_pb2.OpenFile.PIDFD
    for line in info.get("extra", []):
        name, _, value = line.partition(":")
        if name.strip() == "Pid":
            entry.pidfd_pid = int(value)
            return
    raise UnsupportedState(f"{what}: its fdinfo does not say which process it refers to")


def check_in_dump(entry, dumped_pids, dumped_threads, what):
    """Refuse a pidfd of a live process outside the dump, and one of a thread other
    than a main thread (PIDFD_THREAD): threads come back after every fd is in place."""
    target = entry.pidfd_pid
    if target == DEAD or target in dumped_pids:
        return
    if target in dumped_threads:
        raise UnsupportedState(f"{what} is a pidfd of thread {target} (PIDFD_THREAD), not of a process; "
                               "not supported")
    if target == 0:     # a process in a pid namespace we cannot see
        raise UnsupportedState(f"{what} is a pidfd of a process outside this pid namespace; not supported")
    raise UnsupportedState(f"{what} is a pidfd of process {proc.holder_description(target)}, alive outside "
                           "the dump: a restored pidfd would refer to whatever process has that PID then; "
                           "not supported")


def open_in_target(ctx, restorer, entry):
    flags = entry.flags & _OPEN_FLAGS
    if entry.pidfd_pid != DEAD:
        return restorer.inj.call("pidfd_open", entry.pidfd_pid, flags,
                                 detail=f"pidfd of process {entry.pidfd_pid}")
    local = _dead_pidfd(flags)
    try:
        return ctx.fetch(os.getpid(), local)
    finally:
        os.close(local)


def _dead_pidfd(flags):
    """A pidfd whose process has exited and been reaped (fdinfo "Pid: -1")."""
    child = os.fork()
    if child == 0:
        os._exit(0)
    try:
        return os.pidfd_open(child, flags)
    finally:
        os.waitpid(child, 0)
