"""UNIX_QUEUE: a unix socket's receive queue (and what a client sent on a
connection not yet accepted) copied by crak.ko, left in place; bad input."""

import ctypes
import errno
import socket
import subprocess

import pytest

from pyckpt.sources import crak_uapi as uapi
from pyckpt.sources.kmod import unix_records

from .crak import Session, ioctl
from .test_kmod_refusals import expect_errno


@pytest.fixture
def holder():
    """hold(*socks): a `sleep` process holding dups of the sockets at the same fd numbers."""
    procs = []

    def hold(*socks):
        fds = tuple(s.fileno() for s in socks)
        p = subprocess.Popen(["sleep", "600"], pass_fds=fds, stdin=subprocess.DEVNULL)
        procs.append(p)
        return p.pid

    yield hold
    for p in procs:
        p.kill()
        p.wait()


def unix_queue(session, fd, size=65536, flags=0, index=0):
    buf = ctypes.create_string_buffer(max(size, 1))
    q = uapi.UnixQueue(fd=fd, flags=flags, index=index, buf_ptr=ctypes.addressof(buf), buf_len=size)
    ioctl(session.fd, "UNIX_QUEUE", q)
    return q, buf.raw[:q.out_len]


def test_seqpacket_queue_in_place(holder):
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    with a, b:
        for m in (b"one", b"", b"three"):
            b.send(m)
        pid = holder(a)
        with Session(pid) as s:
            s.freeze()
            q, raw = unix_queue(s, a.fileno())
            assert (q.nr_msgs, q.nr_bytes) == (3, 8)
            assert [d for d, _, _ in unix_records(raw, q.nr_msgs, socket.SOCK_SEQPACKET, "a")] == [b"one", b"", b"three"]
        assert [a.recv(16, socket.MSG_DONTWAIT) for _ in range(3)] == [b"one", b"", b"three"]


def test_stream_partly_read_and_dgram_senders(holder, tmp_path):
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(str(tmp_path / "srv"))
    client = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    client.bind(b"\0pyckpt-kmod-unix-client")
    anon = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    with a, b, server, client, anon:
        b.send(b"hello world")
        assert a.recv(6) == b"hello "       # the rest of that buffer is what is queued
        b.send(b"!")
        client.sendto(b"named", str(tmp_path / "srv"))
        anon.sendto(b"unnamed", str(tmp_path / "srv"))
        pid = holder(a, server)
        with Session(pid) as s:
            s.freeze()
            q, raw = unix_queue(s, a.fileno())
            assert unix_records(raw, q.nr_msgs, socket.SOCK_STREAM, "a") == [(b"world!", b"", [])]
            q, raw = unix_queue(s, server.fileno())
            assert unix_records(raw, q.nr_msgs, socket.SOCK_DGRAM, "srv") == [
                (b"named", b"\0pyckpt-kmod-unix-client", []), (b"unnamed", b"", [])]
            # too small a buffer: nothing copied, the size needed reported
            buf = ctypes.create_string_buffer(8)
            small = uapi.UnixQueue(fd=server.fileno(), buf_ptr=ctypes.addressof(buf), buf_len=8)
            expect_errno(errno.ENOSPC, ioctl, s.fd, "UNIX_QUEUE", small)
            assert small.out_len == q.out_len and small.nr_msgs == 2
        assert a.recv(16, socket.MSG_DONTWAIT) == b"world!"
        assert server.recv(16, socket.MSG_DONTWAIT) == b"named"


def test_pending_connection_data(holder, tmp_path):
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(tmp_path / "l"))
    listener.listen(4)
    first, second = (socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) for _ in range(2))
    with listener, first, second:
        first.connect(str(tmp_path / "l"))
        second.connect(str(tmp_path / "l"))
        second.send(b"sent early")
        pid = holder(listener)
        with Session(pid) as s:
            s.freeze()
            q, raw = unix_queue(s, listener.fileno(), flags=uapi.UNIX_QUEUE_F_PENDING, index=0)
            assert q.nr_msgs == 0
            q, raw = unix_queue(s, listener.fileno(), flags=uapi.UNIX_QUEUE_F_PENDING, index=1)
            assert unix_records(raw, q.nr_msgs, socket.SOCK_STREAM, "l") == [(b"sent early", b"", [])]
            expect_errno(errno.ENOENT, unix_queue, s, listener.fileno(), flags=uapi.UNIX_QUEUE_F_PENDING,
                         index=2)
        listener.accept()[0].close()
        conn, _ = listener.accept()
        with conn:
            assert conn.recv(16) == b"sent early"


def test_unix_queue_bad_input(holder):
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with a, b:
        pid = holder(a)
        with Session(pid) as s:
            fd = s.fd
            expect_errno(errno.EOPNOTSUPP, ioctl, fd, "UNIX_QUEUE", uapi.UnixQueue(fd=a.fileno(), flags=2))
            q = uapi.UnixQueue(fd=a.fileno())
            q.reserved[1] = 1
            expect_errno(errno.EINVAL, ioctl, fd, "UNIX_QUEUE", q)
            expect_errno(errno.EINVAL, ioctl, fd, "UNIX_QUEUE", uapi.UnixQueue(fd=a.fileno(), index=1))
            expect_errno(errno.E2BIG, ioctl, fd, "UNIX_QUEUE", uapi.UnixQueue(fd=a.fileno(),
                                                                              buf_len=uapi.MAX_PEEK + 1))
            expect_errno(errno.EBADF, ioctl, fd, "UNIX_QUEUE", uapi.UnixQueue(fd=999))
            expect_errno(errno.EBADF, ioctl, fd, "UNIX_QUEUE", uapi.UnixQueue(fd=2 ** 31))
            expect_errno(errno.ENOTSOCK, ioctl, fd, "UNIX_QUEUE", uapi.UnixQueue(fd=0))  # /dev/null
            expect_errno(errno.ENOENT, ioctl, fd, "UNIX_QUEUE",
                         uapi.UnixQueue(fd=a.fileno(), flags=uapi.UNIX_QUEUE_F_PENDING))  # not a listener
            expect_errno(errno.EFAULT, ioctl, fd, "UNIX_QUEUE", 8)
            b.send(b"x")
            bad = uapi.UnixQueue(fd=a.fileno(), buf_ptr=8, buf_len=64)
            expect_errno(errno.EFAULT, ioctl, fd, "UNIX_QUEUE", bad)
        assert a.recv(4) == b"x"
