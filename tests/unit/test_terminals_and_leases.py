"""Dump-side parsing for ptys and leases, on recorded fdinfo text."""

import os

import pytest

from pyckpt import proc
from pyckpt.errors import UnsupportedState
from pyckpt.files import locks, pty, status

PTMX_FDINFO = "pos:\t0\nflags:\t0100002\nmnt_id:\t26\nino:\t2\ntty-index:\t7\n"


def test_master_index_from_fdinfo():
    assert pty.master_index(proc.parse_fdinfo(PTMX_FDINFO), "fd 3") == 7


def test_master_without_tty_index_is_refused():
    with pytest.raises(UnsupportedState, match="tty-index"):
        pty.master_index(proc.parse_fdinfo("pos:\t0\nflags:\t02\n"), "process 1 fd 3")


@pytest.mark.parametrize("index, major, minor", [(0, 136, 0), (255, 136, 255), (256, 137, 0), (2047, 143, 255)])
def test_slave_index_and_device_number(index, major, minor):
    rdev = os.makedev(major, minor)
    assert pty.slave_rdev(index) == rdev
    assert pty.slave_index(rdev) == index


def test_pts_dir_of_ptmx():
    assert pty._pts_dir("/dev/ptmx") == "/dev/pts"
    assert pty._pts_dir("/chroot/dev/pts/ptmx") == "/chroot/dev/pts"


def fdinfo_with(lock_line):
    return proc.parse_fdinfo(f"pos:\t0\nflags:\t02100000\nmnt_id:\t27\nino:\t5\nlock:\t{lock_line}\n")


@pytest.mark.parametrize("access, write", [("READ", False), ("WRITE", True)])
def test_active_lease_parsed(access, write):
    held = locks.parse(fdinfo_with(f"1: LEASE  ACTIVE    {access} 25762 fe:00:2146466 0 EOF"), "fd 3")
    assert held == [("LEASE", write, 0, 0, 0)]


def test_breaking_lease_refused():
    with pytest.raises(UnsupportedState, match="lease being broken"):
        locks.parse(fdinfo_with("1: LEASE  BREAKING  UNLCK 25762 fe:00:2146466 0 EOF"), "process 9 fd 3")


def test_lease_recorded_on_the_description():
    from pyckpt.images.proto import files_pb2
    entry, table = files_pb2.OpenFile(), files_pb2.FdTable()
    locks.record(table, entry, 3, [("LEASE", True, 0, 0, 0)], set())
    assert entry.lease == locks.LEASE_WRITE and not table.posix_locks


@pytest.mark.parametrize("owner_type, owner, ok", [
    (status.F_OWNER_PID, 10, True), (status.F_OWNER_PGRP, 20, True), (status.F_OWNER_PID, 0, True),
    (status.F_OWNER_TID, 10, True), (status.F_OWNER_PID, 99, False), (status.F_OWNER_PGRP, 10, False),
    (status.F_OWNER_TID, 11, False)])
def test_sigio_owner_must_be_in_the_dump(owner_type, owner, ok):
    """A lease's or any fd's F_SETOWN owner: a process, group or main thread of the dump."""
    from pyckpt.images.proto import files_pb2
    entry = files_pb2.OpenFile(lease=locks.LEASE_READ, owner_type=owner_type, owner=owner)
    if ok:
        status.check_owner(entry, {10}, {20}, "fd 3")
    else:
        with pytest.raises(UnsupportedState, match=f"owner is .* {owner}, which is not"):
            status.check_owner(entry, {10}, {20}, "fd 3")


def stat(sid, pgid, tty_nr=0, tpgid=-1):
    from types import SimpleNamespace
    return SimpleNamespace(sid=sid, pgid=pgid, tty_nr=tty_nr, tpgid=tpgid)


RDEV = pty.slave_rdev(3)


def controlling(stats):
    from pyckpt.images.proto import files_pb2
    msg = files_pb2.Pty(index=3)
    pty.PtyTable._controlling(msg, "pty /dev/pts/3", RDEV, stats)
    return msg.session, msg.foreground


def test_controlling_session_and_foreground_group():
    # 10 holds the master outside any session on it; 20 leads the session, 30 is its foreground group.
    stats = {10: stat(1, 10), 20: stat(20, 20, RDEV, 30), 30: stat(20, 30, RDEV, 30)}
    assert controlling(stats) == (20, 30)


def test_no_controlling_session():
    assert controlling({10: stat(1, 10), 20: stat(20, 20)}) == (0, 0)


@pytest.mark.parametrize("stats, words", [
    ({30: stat(20, 30, RDEV, 30)}, "leader"),                                       # leader not dumped
    ({20: stat(20, 20, RDEV, 20), 30: stat(20, 30, 0, -1)}, "dropped"),             # member without it
    ({20: stat(20, 20, RDEV, 99)}, "foreground process group 99"),                  # fg group not dumped
])
def test_controlling_refusals(stats, words):
    with pytest.raises(UnsupportedState, match=words):
        controlling(stats)
