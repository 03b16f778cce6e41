"""Socket options of inet sockets: which ones pyckpt reads, keeps and sets again.

Generic SOL_SOCKET, IP and IPv6 options here (for TCP, and for UDP, raw and
packet sockets later), TCP's own below them. An option is kept only where it
differs from what a fresh socket of the same family and type says: one the
program never touched stays untouched (the kernel may still tune it, as it
does SO_RCVBUF/SO_SNDBUF). Values are stored as getsockopt returned them and
handed back to setsockopt as they are, except the buffer sizes, which
getsockopt shows doubled and which are set with the *FORCE variants (so a
size above the sysctl limits comes back too).

What pyckpt cannot set again (a BPF socket filter, an upper-layer protocol
such as kTLS) is refused by name in `refuse_unsupported`.
"""

import socket
import struct

from ..errors import UnsupportedState
from ..images.proto import files_pb2

SOL_SOCKET, SOL_IP, SOL_IPV6, SOL_TCP = socket.SOL_SOCKET, 0, 41, 6
SO_REUSEADDR, SO_KEEPALIVE, SO_SNDBUF, SO_RCVBUF = 2, 9, 7, 8
SO_PRIORITY, SO_LINGER, SO_REUSEPORT, SO_RCVLOWAT = 12, 13, 15, 18
SO_RCVTIMEO_OLD, SO_SNDTIMEO_OLD, SO_BINDTODEVICE = 20, 21, 25
SO_GET_FILTER, SO_SNDBUFFORCE, SO_RCVBUFFORCE, SO_MARK = 26, 32, 33, 36
SO_OOBINLINE, SO_DONTROUTE, SO_BROADCAST, SO_PEEK_OFF = 10, 5, 6, 42
IP_TOS, IP_TTL, IP_FREEBIND, IP_TRANSPARENT, IP_BIND_ADDRESS_NO_PORT = 1, 2, 15, 19, 24
IPV6_UNICAST_HOPS, IPV6_V6ONLY, IPV6_TCLASS, IPV6_FREEBIND = 16, 26, 67, 78
TCP_NODELAY, TCP_MAXSEG, TCP_CORK, TCP_KEEPIDLE, TCP_KEEPINTVL, TCP_KEEPCNT = 1, 2, 3, 4, 5, 6
TCP_SYNCNT, TCP_LINGER2, TCP_DEFER_ACCEPT, TCP_WINDOW_CLAMP = 7, 8, 9, 10
TCP_CONGESTION, TCP_ULP, TCP_USER_TIMEOUT, TCP_NOTSENT_LOWAT, TCP_FASTOPEN = 13, 31, 18, 25, 23

INT = 4

# (level, name, label, size): size INT for an int, else the raw length getsockopt is asked for.
# Order is the order they are set again: the device first (it decides routing), buffers before data.
GENERIC = (
    (SOL_SOCKET, SO_BINDTODEVICE, "SO_BINDTODEVICE", 16),
    (SOL_SOCKET, SO_REUSEADDR, "SO_REUSEADDR", INT),
    (SOL_SOCKET, SO_REUSEPORT, "SO_REUSEPORT", INT),
    (SOL_SOCKET, SO_SNDBUF, "SO_SNDBUF", INT),
    (SOL_SOCKET, SO_RCVBUF, "SO_RCVBUF", INT),
    (SOL_SOCKET, SO_KEEPALIVE, "SO_KEEPALIVE", INT),
    (SOL_SOCKET, SO_LINGER, "SO_LINGER", 8),
    (SOL_SOCKET, SO_MARK, "SO_MARK", INT),
    (SOL_SOCKET, SO_RCVLOWAT, "SO_RCVLOWAT", INT),
    (SOL_SOCKET, SO_RCVTIMEO_OLD, "SO_RCVTIMEO", 16),
    (SOL_SOCKET, SO_SNDTIMEO_OLD, "SO_SNDTIMEO", 16),
    (SOL_SOCKET, SO_OOBINLINE, "SO_OOBINLINE", INT),
    (SOL_SOCKET, SO_DONTROUTE, "SO_DONTROUTE", INT),
    (SOL_SOCKET, SO_BROADCAST, "SO_BROADCAST", INT),
    (SOL_SOCKET, SO_PEEK_OFF, "SO_PEEK_OFF", INT),
)
IPV4 = (
    (SOL_IP, IP_TOS, "IP_TOS", INT),
    (SOL_IP, IP_TTL, "IP_TTL", INT),
    (SOL_IP, IP_FREEBIND, "IP_FREEBIND", INT),
    (SOL_IP, IP_TRANSPARENT, "IP_TRANSPARENT", INT),
    (SOL_IP, IP_BIND_ADDRESS_NO_PORT, "IP_BIND_ADDRESS_NO_PORT", INT),
)
IPV6 = (
    (SOL_IPV6, IPV6_V6ONLY, "IPV6_V6ONLY", INT),
    (SOL_IPV6, IPV6_TCLASS, "IPV6_TCLASS", INT),
    (SOL_IPV6, IPV6_UNICAST_HOPS, "IPV6_UNICAST_HOPS", INT),
    (SOL_IPV6, IPV6_FREEBIND, "IPV6_FREEBIND", INT),
)
TCP = (
    (SOL_TCP, TCP_CONGESTION, "TCP_CONGESTION", 16),
    (SOL_TCP, TCP_NODELAY, "TCP_NODELAY", INT),
    (SOL_TCP, TCP_CORK, "TCP_CORK", INT),
    (SOL_TCP, TCP_KEEPIDLE, "TCP_KEEPIDLE", INT),
    (SOL_TCP, TCP_KEEPINTVL, "TCP_KEEPINTVL", INT),
    (SOL_TCP, TCP_KEEPCNT, "TCP_KEEPCNT", INT),
    (SOL_TCP, TCP_USER_TIMEOUT, "TCP_USER_TIMEOUT", INT),
    (SOL_TCP, TCP_SYNCNT, "TCP_SYNCNT", INT),
    (SOL_TCP, TCP_LINGER2, "TCP_LINGER2", INT),
    (SOL_TCP, TCP_DEFER_ACCEPT, "TCP_DEFER_ACCEPT", INT),
    (SOL_TCP, TCP_NOTSENT_LOWAT, "TCP_NOTSENT_LOWAT", INT),
    (SOL_TCP, TCP_FASTOPEN, "TCP_FASTOPEN", INT),
)
# IP_TOS sets the priority too: SO_PRIORITY goes last, whichever the program set first.
LAST = ((SOL_SOCKET, SO_PRIORITY, "SO_PRIORITY", INT),)
# Only settings before a connection: on a connected socket they show what the kernel computed.
TCP_UNCONNECTED = ((SOL_TCP, TCP_MAXSEG, "TCP_MAXSEG", INT), (SOL_TCP, TCP_WINDOW_CLAMP, "TCP_WINDOW_CLAMP", INT))

_FORCE = {SO_SNDBUF: SO_SNDBUFFORCE, SO_RCVBUF: SO_RCVBUFFORCE}
LABELS = {(level, name): label for level, name, label, _size in GENERIC + IPV4 + IPV6 + TCP + TCP_UNCONNECTED + LAST}


def _get(s, level, name, size):
    try:
        if size == INT:
            return struct.pack("=i", s.getsockopt(level, name))
        return s.getsockopt(level, name, size)
    except OSError:
        return None


def table_for(family, connected):
    opts = GENERIC + (IPV6 if family == socket.AF_INET6 else ()) + IPV4 + TCP
    return opts + LAST if connected else opts + TCP_UNCONNECTED + LAST


def collect(s, family, sock_type, proto, connected=False, table=None):
    """[SockOpt] of `s` that differ from a fresh socket of its kind (options of `table`, else TCP's)."""
    with socket.socket(family, sock_type, proto) as fresh:
        kept = []
        for level, name, _label, size in table or table_for(family, connected):
            value = _get(s, level, name, size)
            if value is None or value == _get(fresh, level, name, size):
                continue
            kept.append(files_pb2.SockOpt(level=level, name=name, value=value))
        return kept


def refuse_unsupported(s, what, tcp=True):
    """Options that would be lost, refused by name."""
    try:
        # the kernel answers with the program, its length counted in instructions
        filter_len = len(s.getsockopt(SOL_SOCKET, SO_GET_FILTER, 1024))
    except OSError as err:
        # a longer program (EINVAL), or an eBPF one (SO_ATTACH_BPF) that cannot be read back
        raise UnsupportedState(f"{what} has a socket filter (SO_ATTACH_FILTER or SO_ATTACH_BPF: reading it "
                               f"back says {err.strerror}); not supported") from None
    if filter_len:
        raise UnsupportedState(f"{what} has a classic BPF socket filter (SO_ATTACH_FILTER, {filter_len} "
                               "instructions); not supported yet")
    if tcp:
        ulp = s.getsockopt(SOL_TCP, TCP_ULP, 16).split(b"\0", 1)[0]
        if ulp:
            raise UnsupportedState(f"{what} has the upper-layer protocol {ulp.decode(errors='replace')} "
                                   "(TCP_ULP, e.g. kernel TLS); not supported")


def apply(s, options, what, only=None):
    """setsockopt every kept option on `s` (those of levels/names in `only`, when given)."""
    from ..errors import RestoreConflict
    for opt in options:
        if only is not None and (opt.level, opt.name) not in only:
            continue
        name, value = opt.name, opt.value
        if opt.level == SOL_SOCKET and name in _FORCE:
            name, value = _FORCE[name], struct.pack("=i", struct.unpack("=i", value)[0] // 2)
        try:
            s.setsockopt(opt.level, name, value)
        except OSError as err:
            label = LABELS.get((opt.level, opt.name), f"option {opt.level}/{opt.name}")
            raise RestoreConflict(f"{what}: cannot set {label} again: {err.strerror}") from err


def describe(options):
    """'TCP_NODELAY=1 ...' for logs."""
    out = []
    for opt in options:
        label = LABELS.get((opt.level, opt.name), f"{opt.level}/{opt.name}")
        value = struct.unpack("=i", opt.value)[0] if len(opt.value) == 4 else opt.value.rstrip(b"\0")
        out.append(f"{label}={value}")
    return " ".join(out)
