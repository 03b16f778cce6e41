"""clone_shares.mark on made-up trees: kcmp answered from a table of which
process holds which object (no processes involved)."""

import os

import pytest

from pyckpt import clone_shares, linux
from pyckpt.errors import UnsupportedState
from pyckpt.images.proto import files_pb2


def fake_kernel(monkeypatch, objects, threads=None, children=None):
    """objects: {kind: {pid or tid: object}}; a pid missing from a kind holds its own."""
    def kcmp(a, b, kind):
        oa, ob = objects.get(kind, {}).get(a, ("own", a)), objects.get(kind, {}).get(b, ("own", b))
        return 0 if oa == ob else (1 if str(oa) < str(ob) else 2)
    monkeypatch.setattr(linux, "kcmp", kcmp)
    monkeypatch.setattr(clone_shares.proc, "thread_ids", lambda pid: (threads or {}).get(pid, [pid]))
    monkeypatch.setattr(clone_shares.proc, "children_map", lambda: children or {})


def tree_of(*links, zombies=()):
    tree = files_pb2.PsTree()
    for pid, ppid in links:
        tree.processes.add(pid=pid, ppid=ppid, zombie=pid in zombies)
    return tree


def tables(*pids):
    return {p: files_pb2.FdTable() for p in pids}


def test_chain_of_three_sharers_marked(monkeypatch):
    # 10 -> 11 -> 12 share one table; 13 (child of 10) has its own; 14 shares 13's fs
    fake_kernel(monkeypatch, {linux.KCMP_FILES: {10: "t", 11: "t", 12: "t"},
                              linux.KCMP_FS: {13: "f", 14: "f"}})
    tree = tree_of((10, 1), (11, 10), (13, 10), (12, 11), (14, 13))
    clone_shares.mark(tree, tables(10, 11, 12, 13, 14))
    marked = {e.pid: (e.shares_files, e.shares_fs) for e in tree.processes}
    assert marked == {10: (False, False), 11: (True, False), 13: (False, False), 12: (True, False),
                      14: (False, True)}


def test_zombies_share_nothing(monkeypatch):
    # a zombie's files are gone: kcmp would call two zombies equal
    fake_kernel(monkeypatch, {linux.KCMP_FILES: {11: None, 12: None}})
    tree = tree_of((10, 1), (11, 10), (12, 10), zombies=(11, 12))
    clone_shares.mark(tree, tables(10))
    assert not any(e.shares_files for e in tree.processes)


def test_siblings_sharing_without_their_parent_refused(monkeypatch):
    fake_kernel(monkeypatch, {linux.KCMP_FILES: {11: "t", 12: "t"}})
    with pytest.raises(UnsupportedState, match=r"processes 11, 12 share one fd table \(CLONE_FILES\), but the "
                                               r"parent 10 of 12 does not"):
        clone_shares.mark(tree_of((10, 1), (11, 10), (12, 10)), tables(10, 11, 12))


def test_shared_address_space_refused(monkeypatch):
    fake_kernel(monkeypatch, {linux.KCMP_VM: {10: "mm", 11: "mm"}})
    with pytest.raises(UnsupportedState, match="processes 10, 11 share one address space"):
        clone_shares.mark(tree_of((10, 1), (11, 10)), tables(10, 11))


def test_thread_with_its_own_table_refused(monkeypatch):
    fake_kernel(monkeypatch, {linux.KCMP_FILES: {10: "t", 20: "other"}}, threads={10: [10, 20]})
    with pytest.raises(UnsupportedState, match="thread 20 of process 10 has its own fd table"):
        clone_shares.mark(tree_of((10, 1)), tables(10))


def test_share_with_the_parent_outside_refused(monkeypatch):
    fake_kernel(monkeypatch, {linux.KCMP_FS: {10: "f", 5: "f"}}, children={5: [10, 9]})
    with pytest.raises(UnsupportedState, match=r"process 10 shares its cwd, root and umask \(CLONE_FS\) with "
                                               r"process 5, which is not dumped"):
        clone_shares.mark(tree_of((10, 5)), tables(10))


def test_posix_lock_kept_by_its_setter(monkeypatch):
    """Every sharer's fdinfo shows the table's locks: each is taken again once."""
    fake_kernel(monkeypatch, {linux.KCMP_FILES: {10: "t", 11: "t"}})
    fds = tables(10, 11)
    for pid in (10, 11):
        fds[pid].posix_locks.add(fd=3, start=0, length=10, pid=11)      # set by 11
        fds[pid].posix_locks.add(fd=3, start=20, length=1, pid=99)      # by a process gone since
    clone_shares.mark(tree_of((10, 1), (11, 10)), fds)
    assert [(l.start, l.pid) for l in fds[10].posix_locks] == [(20, 99)]
    assert [(l.start, l.pid) for l in fds[11].posix_locks] == [(0, 11)]


def test_processes_without_an_undo_list_do_not_share_one(monkeypatch):
    """kcmp(KCMP_SYSVSEM) calls two processes without an undo list equal (two NULLs); pyckpt has none."""
    nobody = None
    fake_kernel(monkeypatch, {linux.KCMP_SYSVSEM: {os.getpid(): nobody, 10: nobody, 12: nobody, 13: nobody,
                                                   11: "u", 14: "u"}})
    tree = tree_of((10, 1), (11, 10), (12, 10), (13, 10), (14, 11))
    clone_shares.mark(tree, tables(10, 11, 12, 13, 14))
    assert [e.pid for e in tree.processes if e.shares_sysvsem] == [14]
