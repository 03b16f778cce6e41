"""Files under /proc/PID: they belong to a process, not to a path.

An fd on /proc/PID/... of a process of the dump (/proc/self/stat opened
by the process itself) is reopened by path at restore, once the process
is back with its PID; it then shows the restored process, as it showed the
original one. /proc/PID of a process that has died (or whose PID now names
another process) cannot be had again: refused at dump. So is one on a
thread other than the main one (/proc/PID/task/TID, /proc/thread-self):
fds are reopened before the other threads exist.
"""

import os
import re

from ..errors import UnsupportedState

_PID_PATH = re.compile(r"/proc/(\d+)(/task/(\d+))?(/| \(deleted\)$|$)")


def pid_of(path):
    """(pid, tid or None) of a /proc/PID/... path, else None."""
    m = _PID_PATH.match(path)
    if not m:
        return None
    return int(m.group(1)), int(m.group(3)) if m.group(3) else None


def check(link, st, what):
    """Refuse a /proc/PID path that cannot be opened again on the same process."""
    owner = pid_of(link)
    if owner is None:
        return
    pid, tid = owner
    try:
        # While the process lives, its path leads to the very inode the fd has.
        now = os.stat(link)
        same = (now.st_dev, now.st_ino) == (st.st_dev, st.st_ino)
    except OSError:
        same = False
    if not same:
        raise UnsupportedState(f"{what} is in /proc of process {pid}, which has exited (or its PID is another "
                               "process's now); it cannot be opened again")
    if tid is not None and tid != pid:
        raise UnsupportedState(f"{what} is in /proc of thread {tid} of process {pid}, not its main thread; "
                               "not supported (fds are reopened before the other threads exist)")


def waits_for_restore(path):
    """A /proc/PID path whose process does not exist yet: restore creates it (its PID was checked free)."""
    owner = pid_of(path)
    return owner is not None and not os.path.exists(f"/proc/{owner[0]}")
