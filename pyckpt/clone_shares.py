"""What processes of the tree share since clone(), seen with kcmp on the frozen tree:
the fd table (CLONE_FILES), cwd/root/umask (CLONE_FS), the System V semaphore
undo list (CLONE_SYSVSEM), the address space (CLONE_VM) and the signal handlers
(CLONE_SIGHAND, which needs CLONE_VM).

Restore can give a process its parent's fd table, fs or undo list only as it
creates it (clone3 with CLONE_FILES / CLONE_FS / CLONE_SYSVSEM from the parent's
stub), so the members of a group sharing one must hang together down parent
links: one topmost member, every other member a child of a member. Anything else
is refused by name: siblings still sharing a table their parent left (unshare,
execve), a share with a process outside the dump, a thread with its own table.
Processes sharing an address space (vfork before execve, clone(CLONE_VM)) are
refused: each would come back with its own. (What an undo list holds is not
readable: sysvipc.py refuses one when the dump includes semaphore sets.)
"""

import functools
import os

from . import linux, proc
from .errors import NoSuchProcess, UnsupportedState

# kcmp kind -> (what the processes share, the clone flag that made them share it, the ProcessEntry field)
RESTORED = {linux.KCMP_FILES: ("fd table", "CLONE_FILES", "shares_files"),
            linux.KCMP_FS: ("cwd, root and umask", "CLONE_FS", "shares_fs"),
            linux.KCMP_SYSVSEM: ("System V semaphore undo list", "CLONE_SYSVSEM", "shares_sysvsem")}
REFUSED = {linux.KCMP_VM: ("address space", "CLONE_VM"), linux.KCMP_SIGHAND: ("signal handlers", "CLONE_SIGHAND")}


def mark(tree, fd_tables):
    """Set shares_files / shares_fs on the tree's entries; refuse what restore could not build again.
    A sharer's POSIX locks are kept in the table of the member that set them (F_GETLK's l_pid)."""
    entries = [e for e in tree.processes if not e.zombie]   # a zombie has none of these any more
    pids = [e.pid for e in entries]
    by_pid = {e.pid: e for e in entries}
    for kind, (what, flag) in REFUSED.items():
        for group in _groups(pids, kind):
            raise UnsupportedState(f"processes {_names(group)} share one {what} (clone with {flag} and without "
                                   "CLONE_THREAD, e.g. vfork() before execve()): restored, each would have its own")
    _refuse_shares_outside(tree.processes[0], {**REFUSED, **RESTORED})
    for kind, (what, flag, field) in RESTORED.items():
        _refuse_threads_apart(pids, kind, what, flag)
        for group in _groups([p for p in pids if _has(p, kind)], kind):
            for pid in group[1:]:       # the first (topmost) member is created as usual
                if by_pid[pid].ppid not in group:
                    raise UnsupportedState(
                        f"processes {_names(group)} share one {what} ({flag}), but the parent {by_pid[pid].ppid} "
                        f"of {pid} does not (it left it with unshare() or execve()): restore can give a process "
                        "its parent's only")
                setattr(by_pid[pid], field, True)
            if kind == linux.KCMP_FILES:
                _place_posix_locks(group, fd_tables)


def _has(pid, kind):
    """kcmp compares pointers: two processes without an undo list (most) would look as sharing one.
    pyckpt never uses SEM_UNDO (nor starts threads): it has none."""
    return kind != linux.KCMP_SYSVSEM or linux.kcmp(pid, os.getpid(), kind) != 0


def _groups(pids, kind):
    """Lists of 2+ pids (in tree order) sharing one object of `kind`: sorted by kcmp's order, then runs."""
    order = sorted(pids, key=functools.cmp_to_key(lambda a, b: (0, -1, 1)[linux.kcmp(a, b, kind)]))
    runs, run = [], order[:1]
    for pid in order[1:]:
        if linux.kcmp(run[0], pid, kind) == 0:
            run.append(pid)
        else:
            runs.append(run)
            run = [pid]
    runs.append(run)
    rank = {pid: i for i, pid in enumerate(pids)}
    return [sorted(r, key=rank.get) for r in runs if len(r) > 1]


def _names(group):
    return ", ".join(map(str, group))


def _refuse_shares_outside(root, kinds):
    """Only the root's parent and siblings (clone without CLONE_PARENT cannot reach further) can
    share with the tree from outside it."""
    children = proc.children_map()
    outside = [root.ppid] + [p for p in children.get(root.ppid, ()) if p != root.pid]
    for other in outside:
        for kind, (what, flag, *_) in kinds.items():
            try:
                same = _has(root.pid, kind) and linux.kcmp(root.pid, other, kind) == 0
            except OSError:
                continue        # gone, or a kernel thread
            if same:
                raise UnsupportedState(f"process {root.pid} shares its {what} ({flag}) with process {other}, "
                                       "which is not dumped")


def _refuse_threads_apart(pids, kind, what, flag):
    """Restore creates every thread with the leader's fd table and fs."""
    for pid in pids:
        try:
            tids = proc.thread_ids(pid)
        except NoSuchProcess:
            continue
        for tid in tids:
            if tid != pid and linux.kcmp(pid, tid, kind) != 0:
                raise UnsupportedState(f"thread {tid} of process {pid} has its own {what} (created without "
                                       f"{flag}, or unshare()): restore gives every thread the process's")


def _place_posix_locks(group, fd_tables):
    """A POSIX lock belongs to the shared table, which every member's fdinfo shows: take it
    again once, in the member that set it (or the topmost one when its setter left)."""
    members = set(group)
    for pid in group:
        table = fd_tables[pid]
        keep = [lock for lock in table.posix_locks
                if lock.pid == pid or (lock.pid not in members and pid == group[0])]
        del table.posix_locks[:]
        table.posix_locks.extend(keep)
