"""sock_diag for unix sockets: the netlink answer parsed, and (where the
kernel has unix_diag) what it says of sockets this test makes."""

import os
import socket
import struct

import pytest

from pyckpt import sockdiag
from pyckpt.errors import PyckptError


def _attr(kind, value):
    length = 4 + len(value)
    return struct.pack("=HH", length, kind) + value + b"\0" * (-length % 4)


def test_parse_every_attribute():
    payload = struct.pack("=BBBBIII", socket.AF_UNIX, socket.SOCK_STREAM, sockdiag.TCP_LISTEN, 0, 1234, 0, 0)
    payload += _attr(sockdiag.UNIX_DIAG_NAME, b"/run/x.sock\0")
    payload += _attr(sockdiag.UNIX_DIAG_VFS, struct.pack("=II", 99, (8 << 20) | 3))
    payload += _attr(sockdiag.UNIX_DIAG_PEER, struct.pack("=I", 0))
    payload += _attr(sockdiag.UNIX_DIAG_ICONS, struct.pack("=2I", 55, 56))
    payload += _attr(sockdiag.UNIX_DIAG_RQLEN, struct.pack("=II", 2, 16))
    payload += _attr(sockdiag.UNIX_DIAG_SHUTDOWN, b"\3")
    s = sockdiag._parse(payload)
    assert (s.ino, s.type, s.state) == (1234, socket.SOCK_STREAM, sockdiag.TCP_LISTEN)
    assert s.name == b"/run/x.sock"                 # the NUL bind() counted is dropped
    assert s.vfs == (os.makedev(8, 3), 99)          # kernel dev_t made stat's
    assert s.icons == [55, 56] and (s.rqueue, s.wqueue) == (2, 16) and s.shutdown == 3


def test_abstract_name_kept_exactly():
    payload = struct.pack("=BBBBIII", socket.AF_UNIX, socket.SOCK_DGRAM, 7, 0, 1, 0, 0)
    payload += _attr(sockdiag.UNIX_DIAG_NAME, b"\0abs\0x")
    assert sockdiag._parse(payload).name == b"\0abs\0x"


def _live():
    try:
        return sockdiag.unix_sockets()
    except PyckptError as err:
        pytest.skip(f"no unix_diag here: {err}")


def test_live_pair_listener_and_pending(tmp_path):
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    path = str(tmp_path / "l.sock")
    listener.bind(path)
    listener.listen(3)
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client.connect(path)
    with a, b, listener, client:
        b.send(b"12345")
        found = _live()
        ino = {name: os.fstat(s.fileno()).st_ino for name, s in
               (("a", a), ("b", b), ("listener", listener), ("client", client))}
        assert found[ino["a"]].peer == ino["b"] and found[ino["b"]].peer == ino["a"]
        assert found[ino["a"]].rqueue == 5
        lst = found[ino["listener"]]
        st = os.stat(path)
        assert lst.state == sockdiag.TCP_LISTEN and lst.name == os.fsencode(path)
        assert lst.vfs == (st.st_dev, st.st_ino) and lst.wqueue == 3
        assert lst.icons == [ino["client"]]
