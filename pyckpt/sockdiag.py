"""Unix sockets as the kernel describes them: NETLINK_SOCK_DIAG (unix_diag).

One dump request lists every AF_UNIX socket of our network namespace with
its name, the inode of its socket file, its peer, the connections waiting
on a listener, its queue length and its shutdown state. Backend-free: the
dump reads it the same way whichever source froze the targets. The kernel
must have unix_diag (built in, or the module loaded).
"""

import errno
import os
import socket
import struct
from dataclasses import dataclass, field
from typing import Optional

from .errors import PyckptError

NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
NLM_F_REQUEST, NLM_F_DUMP = 0x1, 0x300
NLMSG_ERROR, NLMSG_DONE = 2, 3

UDIAG_SHOW_NAME, UDIAG_SHOW_VFS, UDIAG_SHOW_PEER = 0x1, 0x2, 0x4
UDIAG_SHOW_ICONS, UDIAG_SHOW_RQLEN = 0x8, 0x10
UNIX_DIAG_NAME, UNIX_DIAG_VFS, UNIX_DIAG_PEER, UNIX_DIAG_ICONS = 0, 1, 2, 3
UNIX_DIAG_RQLEN, UNIX_DIAG_SHUTDOWN = 4, 6

TCP_ESTABLISHED, TCP_CLOSE, TCP_LISTEN = 1, 7, 10
RCV_SHUTDOWN, SEND_SHUTDOWN = 1, 2

_NLMSGHDR = struct.Struct("=IHHII")
_REQ = struct.Struct("=BBHIIIII")       # unix_diag_req
_MSG = struct.Struct("=BBBBIII")        # unix_diag_msg
_RTA = struct.Struct("=HH")


@dataclass
class UnixDiag:
    """One unix socket, as unix_diag reports it."""
    ino: int
    type: int                  # SOCK_STREAM / SOCK_DGRAM / SOCK_SEQPACKET
    state: int                 # TCP_ESTABLISHED / TCP_CLOSE / TCP_LISTEN
    name: bytes = b""          # sun_path as bound; abstract names start with NUL
    vfs: Optional[tuple] = None  # (dev, ino) of the socket file of a path name
    peer: int = 0              # inode of the peer socket (0: none, or a connection not yet accepted)
    icons: list = field(default_factory=list)  # listener: inodes of the clients not yet accepted
    rqueue: int = 0            # listener: connections queued; else bytes queued (dgram: first message)
    wqueue: int = 0            # listener: backlog; else bytes sent not yet read
    shutdown: int = 0          # RCV_SHUTDOWN | SEND_SHUTDOWN


def unix_sockets():
    """{inode: UnixDiag} of every unix socket in our network namespace."""
    try:
        nl = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC, NETLINK_SOCK_DIAG)
    except OSError as err:
        raise PyckptError(f"cannot open a NETLINK_SOCK_DIAG socket: {err.strerror}") from err
    show = UDIAG_SHOW_NAME | UDIAG_SHOW_VFS | UDIAG_SHOW_PEER | UDIAG_SHOW_ICONS | UDIAG_SHOW_RQLEN
    with nl:
        req = _REQ.pack(socket.AF_UNIX, 0, 0, 0xFFFFFFFF, 0, show, 0xFFFFFFFF, 0xFFFFFFFF)
        nl.send(_NLMSGHDR.pack(_NLMSGHDR.size + len(req), SOCK_DIAG_BY_FAMILY,
                               NLM_F_REQUEST | NLM_F_DUMP, 1, 0) + req)
        found = {}
        while True:
            data = nl.recv(1 << 16)
            for msg_type, payload in _messages(data):
                if msg_type == NLMSG_DONE:
                    return found
                if msg_type == NLMSG_ERROR:
                    code = -struct.unpack_from("=i", payload)[0]
                    hint = " (load the unix_diag module)" if code == errno.ENOENT else ""
                    raise PyckptError(f"sock_diag of unix sockets failed: {errno.errorcode.get(code, code)}{hint}")
                if msg_type == SOCK_DIAG_BY_FAMILY:
                    sock = _parse(payload)
                    found[sock.ino] = sock


def socket_name(raw):
    """A sun_path as the kernel keeps it, as getsockname shows it: a path as bound
    may carry its terminating NUL; an abstract name is exact bytes."""
    return raw if raw.startswith(b"\0") else raw.split(b"\0", 1)[0]


def _messages(data):
    offset = 0
    while offset + _NLMSGHDR.size <= len(data):
        length, msg_type, _flags, _seq, _pid = _NLMSGHDR.unpack_from(data, offset)
        if length < _NLMSGHDR.size:
            break
        yield msg_type, data[offset + _NLMSGHDR.size:offset + length]
        offset += (length + 3) & ~3


def _parse(payload):
    _family, sk_type, state, _pad, ino, _c0, _c1 = _MSG.unpack_from(payload)
    sock = UnixDiag(ino=ino, type=sk_type, state=state)
    offset = _MSG.size
    while offset + _RTA.size <= len(payload):
        length, kind = _RTA.unpack_from(payload, offset)
        if length < _RTA.size:
            break
        value = payload[offset + _RTA.size:offset + length]
        if kind == UNIX_DIAG_NAME:
            sock.name = socket_name(bytes(value))
        elif kind == UNIX_DIAG_VFS:
            vfs_ino, vfs_dev = struct.unpack_from("=II", value)
            # the kernel's own dev_t (major << 20 | minor), not stat's encoding
            sock.vfs = (os.makedev(vfs_dev >> 20, vfs_dev & 0xFFFFF), vfs_ino)
        elif kind == UNIX_DIAG_PEER:
            sock.peer = struct.unpack_from("=I", value)[0]
        elif kind == UNIX_DIAG_ICONS:
            sock.icons = list(struct.unpack_from(f"={len(value) // 4}I", value))
        elif kind == UNIX_DIAG_RQLEN:
            sock.rqueue, sock.wqueue = struct.unpack_from("=II", value)
        elif kind == UNIX_DIAG_SHUTDOWN:
            sock.shutdown = value[0]
        offset += (length + 3) & ~3
    return sock


def holders_of_name(name, vfs=None, sockets=None):
    """Sockets (UnixDiag) that hold `name` (abstract) or the socket file `vfs` (dev, ino)."""
    sockets = unix_sockets() if sockets is None else sockets
    if name.startswith(b"\0"):
        return [s for s in sockets.values() if s.name == name]
    return [s for s in sockets.values() if vfs is not None and s.vfs == vfs]


# -- TCP and UDP (inet_diag) --------------------------------------------------

INET_DIAG_SHUTDOWN = 8
_INET_REQ = struct.Struct("=BBBBI")      # inet_diag_req_v2 without its sockid
_INET_SOCKID = struct.Struct("=HH16s16sI8s")
_INET_MSG = struct.Struct("=BBBB")       # family, state, timer, retrans; then the sockid


@dataclass
class InetDiag:
    """One TCP socket, as inet_diag reports it."""
    ino: int
    state: int
    rqueue: int = 0            # listener: connections waiting to be accepted
    wqueue: int = 0            # listener: backlog
    shutdown: int = 0          # RCV_SHUTDOWN | SEND_SHUTDOWN
    sport: int = 0


def tcp_sockets(family):
    """{inode: InetDiag} of every TCP socket of `family` in our network namespace."""
    return inet_sockets(family, socket.IPPROTO_TCP)


def inet_sockets(family, protocol):
    """{inode: InetDiag} of the `protocol` (TCP, UDP, UDP-Lite) sockets of `family` that
    sock_diag lists: every TCP socket in a hash, every bound UDP one."""
    name = {socket.IPPROTO_TCP: "tcp", socket.IPPROTO_UDP: "udp"}.get(protocol, "udp")
    try:
        nl = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC, NETLINK_SOCK_DIAG)
    except OSError as err:
        raise PyckptError(f"cannot open a NETLINK_SOCK_DIAG socket: {err.strerror}") from err
    with nl:
        req = _INET_REQ.pack(family, protocol, 0, 0, 0xFFFFFFFF) + bytes(_INET_SOCKID.size)
        nl.send(_NLMSGHDR.pack(_NLMSGHDR.size + len(req), SOCK_DIAG_BY_FAMILY,
                               NLM_F_REQUEST | NLM_F_DUMP, 1, 0) + req)
        found = {}
        while True:
            data = nl.recv(1 << 16)
            for msg_type, payload in _messages(data):
                if msg_type == NLMSG_DONE:
                    # a dump that could not start (no {name}_diag module) ends here with its error
                    if len(payload) >= 4 and struct.unpack_from("=i", payload)[0] < 0:
                        raise _inet_diag_error(name, payload)
                    return found
                if msg_type == NLMSG_ERROR:
                    raise _inet_diag_error(name, payload)
                if msg_type == SOCK_DIAG_BY_FAMILY:
                    sock = _parse_inet(payload)
                    found[sock.ino] = sock


def _inet_diag_error(name, payload):
    code = -struct.unpack_from("=i", payload)[0]
    hint = f" (load the {name}_diag module)" if code == errno.ENOENT else ""
    return PyckptError(f"sock_diag of {name.upper()} sockets failed: {errno.errorcode.get(code, code)}{hint}")


def _parse_inet(payload):
    _family, state, _timer, _retrans = _INET_MSG.unpack_from(payload)
    sport = struct.unpack_from("!H", payload, _INET_MSG.size)[0]
    offset = _INET_MSG.size + _INET_SOCKID.size
    _expires, rqueue, wqueue, _uid, ino = struct.unpack_from("=IIIII", payload, offset)
    sock = InetDiag(ino=ino, state=state, rqueue=rqueue, wqueue=wqueue, sport=sport)
    offset += 20
    while offset + _RTA.size <= len(payload):
        length, kind = _RTA.unpack_from(payload, offset)
        if length < _RTA.size:
            break
        if kind == INET_DIAG_SHUTDOWN:
            sock.shutdown = payload[offset + _RTA.size]
        offset += (length + 3) & ~3
    return sock
