"""Unix sockets whose peer is outside the dumped tree: refused naming both
ends, unless --ext-unix-sk lets a datagram socket be reconnected by name."""

import dataclasses
import os
import re
import socket

import pytest


def outside_case(harness, *args):
    return dataclasses.replace(harness.case_named("unix-pairs"), id="unix-" + args[0], args=args)


@pytest.mark.parametrize("sock_type", [socket.SOCK_STREAM, socket.SOCK_DGRAM, socket.SOCK_SEQPACKET],
                         ids=["stream", "dgram", "seqpacket"])
@pytest.mark.parametrize("ext", [False, True], ids=["plain", "ext-unix-sk"])
def test_outside_peer_refused(start_workload, harness, sock_type, ext):
    """A socketpair whose other end the test holds: refused with both ends named;
    --ext-unix-sk does not help (an unnamed peer cannot be reconnected)."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, sock_type)
    with ours, theirs:
        fd = theirs.fileno()
        wl = start_workload(outside_case(harness, "outside", str(fd)), pass_fds=(fd,))
        res = wl.dump(*(["--ext-unix-sk"] if ext else []), check=False)
        assert res.returncode == 3, f"dumped a socket with an outside peer: {res.describe()}"
        err = res.stderr
        assert re.search(rf"process {wl.pid} fd {fd}\b", err), f"our end not named: {res.describe()}"
        assert f"socket:[{os.fstat(ours.fileno()).st_ino}]" in err and str(os.getpid()) in err, (
            f"the outside end not named: {res.describe()}")
        assert not wl.images.exists(), "image folder left behind"
        problem = harness.untouched_problem(wl.pid)
        assert problem is None, f"after the refused dump: {problem}"
        ours.send(b"still there")
        wl.assert_passes()


def test_ext_unix_sk_dgram(start_workload, harness):
    """A datagram client of an outside server: refused without --ext-unix-sk,
    dumped with it, and restored (with it) connected to the server again."""
    name = f"pyckpt-test-log-{os.getpid()}"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(b"\0" + name.encode())
    with server:
        wl = start_workload(outside_case(harness, "ext-dgram", name))
        assert server.recv(64) == b"before"
        res = wl.dump(check=False)
        assert res.returncode == 3 and "--ext-unix-sk" in res.stderr and f"@{name}" in res.stderr, (
            res.describe())
        assert harness.untouched_problem(wl.pid) is None
        wl.dump("--ext-unix-sk")
        res = harness.run_pyckpt("restore", "-D", wl.images, "-d", outdir=wl.dir, tag="restore-plain")
        assert res.returncode == 5 and "--ext-unix-sk" in res.stderr, (
            f"restored an external connection without --ext-unix-sk: {res.describe()}")
        wl.restore("--ext-unix-sk")
        wl.assert_passes()
        server.settimeout(10 * harness.SCALE)
        assert server.recv(64) == b"after", "the restored client does not reach the outside server"


def test_pending_connection_with_data(start_workload, harness):
    """Data a client sent before its connection was accepted: only crak.ko can
    read it in place; the ptrace backend refuses, naming the fd."""
    wl = start_workload(outside_case(harness, "pending-data"))
    m = re.search(r"^pending fds (\d+) (\d+)$", wl.log(), re.M)
    assert m, wl.log()
    if harness.BACKEND == "kmod":
        pid = wl.pid
        wl.dump()
        wl.restore()
        assert wl.pid == pid
        wl.assert_passes()
        return
    res = wl.dump(check=False)
    assert res.returncode == 3, f"dumped unreadable pending data: {res.describe()}"
    assert re.search(rf"process {wl.pid} fd ({m.group(1)}|{m.group(2)})\b", res.stderr) and "kmod" in res.stderr, (
        res.describe())
    assert harness.untouched_problem(wl.pid) is None
    wl.assert_passes()


def test_files_in_flight_on_a_stream(start_workload, harness):
    """Files in flight (SCM_RIGHTS) on a stream: crak.ko tells where the segment carrying
    them begins, so the kmod backend restores them; the ptrace backend refuses, naming the fd."""
    wl = start_workload(harness.case_named("scmrights-stream"))
    if harness.BACKEND == "kmod":
        pid = wl.pid
        wl.dump()
        wl.restore()
        assert wl.pid == pid
        wl.assert_passes()
        return
    res = wl.dump(check=False)
    assert res.returncode == 3, f"dumped files in flight on a stream: {res.describe()}"
    assert re.search(rf"process {wl.pid} fd \d+ \(socket:\[\d+\], unix stream", res.stderr) and \
        "SCM_RIGHTS" in res.stderr and "kmod" in res.stderr, res.describe()
    assert harness.untouched_problem(wl.pid) is None
    wl.assert_passes()


def test_restore_refuses_names_in_use(start_workload, harness):
    """A name the image binds that someone else holds now, or a path that is no
    longer a socket file, is a conflict before any process is created; the
    stale socket file a dumped listener left is replaced."""
    wl = start_workload("unix-listen")
    pid = wl.pid
    wl.dump()
    sock_file = wl.dir / "srv.sock"
    assert sock_file.is_socket(), "the dumped listener left no socket file"
    squatter = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    squatter.bind(f"\0pyckpt-unixsk-{pid}".encode())
    with squatter:
        res = harness.run_pyckpt("restore", "-D", wl.images, "-d", outdir=wl.dir, tag="restore-abstract")
        assert res.returncode == 5 and f"@pyckpt-unixsk-{pid}" in res.stderr, res.describe()
        assert harness.proc_status(pid) is None, "a process was created before the conflict was found"
    sock_file.unlink()
    sock_file.write_text("not a socket")
    res = harness.run_pyckpt("restore", "-D", wl.images, "-d", outdir=wl.dir, tag="restore-file")
    assert res.returncode == 5 and "srv.sock" in res.stderr and "not a socket" in res.stderr, res.describe()
    assert harness.proc_status(pid) is None
    sock_file.unlink()
    wl.restore()
    wl.assert_passes()
