"""TCP connections across a checkpoint (workloads/tcpsk.c): both ends in the
dumped tree, or the peer kept by the test; --tcp-established with and
without -R, the refusal without it, --tcp-close, and the blocks (nft tables)
pyckpt sets and lifts."""

import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.skipif(shutil.which("nft") is None, reason="nft (nftables) is not installed")


def pyckpt_tables():
    out = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True, check=True).stdout
    return [line.split()[-1] for line in out.splitlines() if "pyckpt" in line]


@pytest.fixture
def no_tables():
    """No pyckpt table before or after the test."""
    assert pyckpt_tables() == [], "a pyckpt nft table was left by an earlier run"
    yield
    left = pyckpt_tables()
    for table in left:
        subprocess.run(["nft", "delete", "table", "inet", table])
    assert left == [], f"nft tables left behind: {left}"


def test_refused_without_flag(start_workload, no_tables):
    wl = start_workload("tcp-conn")
    res = wl.dump(check=False)
    assert res.returncode != 0
    assert re.search(r"fd \d+ \(socket:\[\d+\]\) \(TCP 127\.0\.0\.1:\d+ -> 127\.0\.0\.1:\d+\) is a TCP connection "
                     r"in state ESTABLISHED; dump with --tcp-established", res.stderr), res.describe()
    wl.assert_passes()


def test_both_ends_in_tree(start_workload, harness, no_tables):
    wl = start_workload("tcp-conn")
    pid = wl.pid
    wl.dump("--tcp-established")
    assert len(pyckpt_tables()) == 1, "the killed connections must stay blocked until restore"
    wl.restore()
    assert pyckpt_tables() == [], "restore did not lift the block"
    assert harness.wait_untouched(pid) is None
    wl.assert_passes()


def test_both_ends_in_tree_leave_running(start_workload, harness, no_tables):
    wl = start_workload("tcp-conn")
    wl.dump("--tcp-established", leave_running=True)
    assert pyckpt_tables() == []
    assert harness.wait_untouched(wl.pid) is None
    wl.assert_passes()


def test_restored_closed(start_workload, harness, no_tables):
    """--tcp-close: the connection comes back as a closed socket (reads fail), nothing blocked."""
    wl = start_workload("tcp-conn")
    wl.dump("--tcp-close")
    assert pyckpt_tables() == []
    wl.restore()
    rc, log = wl.terminate()
    assert rc != 0 and "FAIL" in log, log


def test_closed_at_restore(start_workload, harness, no_tables):
    """restore --tcp-close (CRIU's place for it): connections dumped established come back closed,
    and the dump's block is lifted."""
    wl = start_workload("tcp-conn")
    wl.dump("--tcp-established")
    wl.restore("--tcp-close")
    assert pyckpt_tables() == []
    rc, log = wl.terminate()
    assert rc != 0 and "FAIL" in log, log


def _outside(start_workload, harness, leave_running):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    wl = start_workload(harness.Case("tcp-outside", "tcpsk", ("outside", str(port))))
    conn, _ = server.accept()
    server.close()
    conn.settimeout(30 * harness.SCALE)
    hello = conn.recv(100)
    assert hello == f"hello from {wl.pid}\n".encode(), hello
    data = bytes((i * 7 + i // 251) & 0xFF for i in range(65536))
    conn.sendall(data)
    wl.dump("--tcp-established", leave_running=leave_running)
    if not leave_running:
        wl.restore()
    assert pyckpt_tables() == []
    return wl, conn, data


@pytest.mark.parametrize("leave_running", [False, True], ids=["restored", "leave-running"])
def test_peer_outside(start_workload, harness, no_tables, leave_running):
    """The test holds the other end: no RST, and the data crosses both ways intact."""
    wl, conn, data = _outside(start_workload, harness, leave_running)
    with conn:
        log = wl.assert_passes()
        reply = b""
        while not reply.endswith(b"\n"):
            chunk = conn.recv(100)      # a RST would raise ConnectionResetError here
            assert chunk, f"the connection was closed; workload log:\n{log}"
            reply += chunk
    want = _wl_cksum(data)
    assert reply == f"sum {want:x}\n".encode(), (reply, log)


def _wl_cksum(buf):
    """wl.h's wl_cksum: FNV-1a over 64-bit little-endian words, then the tail bytes."""
    h, whole = 0xcbf29ce484222325, len(buf) // 8 * 8
    for (w,) in struct.iter_unpack("<Q", buf[:whole]):
        h = ((h ^ w) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    for b in buf[whole:]:
        h = ((h ^ b) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return h


def test_address_in_use_at_restore(start_workload, harness, no_tables):
    """A port the image listens on, taken meanwhile: a clear error naming the address, no process made."""
    wl = start_workload("tcp-listen")
    pid = wl.pid
    ports = _listen_ports(pid)
    wl.dump()
    squatter = socket.socket()
    squatter.bind(("127.0.0.1", ports[0]))
    squatter.listen(1)
    with squatter:
        res = harness.run_pyckpt("restore", "-D", wl.images, "-d", outdir=wl.dir, tag="restore-busy")
        assert res.returncode != 0 and f"127.0.0.1:{ports[0]}" in res.stderr \
            and "in use" in res.stderr and "Traceback" not in res.stderr, res.describe()
        assert harness.proc_status(pid) is None, "a process was created before the conflict was found"
    wl.restore()
    wl.assert_passes()


def test_in_flight(start_workload, harness, no_tables):
    """A connection waiting to be accepted: refused by name, left out with --skip-in-flight."""
    wl = start_workload("tcp-listen")
    port = _listen_ports(wl.pid)[0]
    client = socket.create_connection(("127.0.0.1", port))
    with client:
        res = wl.dump(check=False)
        assert res.returncode != 0 and "1 connection(s) waiting to be accepted" in res.stderr \
            and "--skip-in-flight" in res.stderr, res.describe()
        wl.dump("--skip-in-flight")
    wl.restore()
    wl.assert_passes()


def _listen_ports(pid):
    """Ports of the IPv4 listeners of `pid` (from /proc/PID/net/tcp and its fds), lowest inode first."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        link = os.readlink(f"/proc/{pid}/fd/{fd}")
        if link.startswith("socket:["):
            inodes.add(link[8:-1])
    ports = []
    with open(f"/proc/{pid}/net/tcp") as f:
        next(f)
        for line in f:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:
                ports.append(int(fields[1].split(":")[1], 16))
    assert ports, "no IPv4 listener found"
    return ports




def test_block_dies_with_pyckpt(harness, no_tables):
    """The dump's block is an nft table owned by a child of pyckpt: killing pyckpt lifts it."""
    code = ("import os, signal, socket\n"
            "from pyckpt import netblock\n"
            "b = netblock.Block([(socket.inet_aton('127.0.0.1'), 1, socket.inet_aton('127.0.0.1'), 2)])\n"
            "b.start()\n"
            "print(b.table, flush=True)\n"
            "os.kill(os.getpid(), signal.SIGKILL)\n")
    res = subprocess.run([sys.executable, "-c", code], cwd=harness.REPO, capture_output=True, text=True)
    assert res.returncode == -9 and res.stdout.startswith("pyckpt_run_"), (res.stdout, res.stderr)
    deadline = time.monotonic() + 10
    while pyckpt_tables() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert pyckpt_tables() == []


def test_half_closed_refused(start_workload, harness, no_tables):
    """A connection whose peer shut down its side (CLOSE_WAIT) is refused by state; the
    workload goes on and its connection still carries data."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    wl = start_workload(harness.Case("tcp-outside", "tcpsk", ("outside", str(server.getsockname()[1]))))
    conn, _ = server.accept()
    server.close()
    with conn:
        conn.settimeout(30 * harness.SCALE)
        conn.recv(100)
        data = bytes(65536)
        conn.sendall(data)
        conn.shutdown(socket.SHUT_WR)
        time.sleep(0.2)
        res = wl.dump("--tcp-established", check=False)
        assert res.returncode != 0 and "TCP state CLOSE_WAIT" in res.stderr and "127.0.0.1" in res.stderr, \
            res.describe()
        assert pyckpt_tables() == []
        wl.assert_passes()
        assert conn.recv(100) == f"sum {_wl_cksum(data):x}\n".encode()


def test_socket_filter_refused(start_workload, harness, no_tables):
    wl = start_workload(harness.Case("tcp-filter", "tcpsk", ("filter",)))
    res = wl.dump(check=False)
    assert res.returncode == 3 and "classic BPF socket filter (SO_ATTACH_FILTER, 1 instructions)" in res.stderr \
        and "TCP 127.0.0.1:" in res.stderr, res.describe()
    wl.assert_passes()


def test_block_lifted_when_restore_fails(start_workload, harness, no_tables):
    """A restore that cannot go on (the listener's port is taken) still lifts the block; once the
    port is free again the image restores (both ends are in it: no peer saw the block go)."""
    wl = start_workload("tcp-conn")
    port = _listen_ports(wl.pid)[0]
    wl.dump("--tcp-established")
    assert len(pyckpt_tables()) == 1
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", port))
        squatter.listen(1)
        res = harness.run_pyckpt("restore", "-D", wl.images, "-d", outdir=wl.dir, tag="restore-busy")
        assert res.returncode != 0 and f"127.0.0.1:{port}" in res.stderr, res.describe()
        assert pyckpt_tables() == [], "a failed restore left the block"
    wl.restore()
    wl.assert_passes()


def test_repair_mode_lifted_when_pyckpt_dies(harness):
    """pyckpt killed while a connection is in repair mode: its guard takes the socket out again."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        client = socket.create_connection(listener.getsockname())
        accepted, _ = listener.accept()
    code = ("import os, signal, socket, sys\n"
            "from pyckpt.files import tcprepair\n"
            "s = socket.socket(fileno=int(sys.argv[1]))\n"
            "guard = tcprepair.Guard([(s, 0)])\n"
            "tcprepair.repair(s, True)\n"
            "os.kill(os.getpid(), signal.SIGKILL)\n")
    with client, accepted:
        res = subprocess.run([sys.executable, "-c", code, str(accepted.fileno())], pass_fds=(accepted.fileno(),),
                             cwd=harness.REPO, capture_output=True, text=True)
        assert res.returncode == -9, res.stderr
        deadline = time.monotonic() + 10
        while True:
            try:
                accepted.send(b"x")     # EINVAL while in repair mode (no queue picked)
                break
            except OSError:
                assert time.monotonic() < deadline, "the socket stayed in repair mode"
                time.sleep(0.05)
        client.settimeout(10)
        assert client.recv(1) == b"x"
