"""UDP and UDP-Lite sockets over IPv4 and IPv6: bound, connected, shut down.

Dump: addresses from getsockname/getpeername, shutdown from sock_diag
(udp_diag lists bound sockets), options from files/sockopts.py plus the
UDP ones below. Datagrams still queued are dropped, as the network may drop
any datagram (logged with their size): re-sending them would need a socket
with each sender's address. Multicast group memberships cannot be read back
from a socket and are not kept.

Restore: made inside pyckpt (files/inet.py's InetRestore): options, bind,
connect, shutdown.
"""

import logging
import socket

from .. import sockdiag
from ..sockdiag import TCP_CLOSE, TCP_ESTABLISHED
from . import sockopts

log = logging.getLogger(__name__)

IPPROTO_UDPLITE = 136
UDP_CORK, UDPLITE_SEND_CSCOV, UDPLITE_RECV_CSCOV = 1, 10, 11
PROTOCOLS = {socket.IPPROTO_UDP: "UDP", IPPROTO_UDPLITE: "UDP-Lite"}

UDP = ((socket.IPPROTO_UDP, UDP_CORK, "UDP_CORK", sockopts.INT),)
UDPLITE = ((IPPROTO_UDPLITE, UDPLITE_SEND_CSCOV, "UDPLITE_SEND_CSCOV", sockopts.INT),
           (IPPROTO_UDPLITE, UDPLITE_RECV_CSCOV, "UDPLITE_RECV_CSCOV", sockopts.INT))
sockopts.LABELS.update({(level, name): label for level, name, label, _size in UDP + UDPLITE})


def describe(entry, s, ino, diag_cache, what, split):
    """Fill entry.inet for the UDP socket `s`; `split`: (family, addr) -> (packed, port)."""
    n = entry.inet
    n.ino, n.family, n.type, n.protocol = ino, s.family, s.type, s.proto
    packed, port = split(s.family, s.getsockname())
    if port or any(packed):
        n.src_addr, n.src_port = packed, port
    try:
        n.dst_addr, n.dst_port = split(s.family, s.getpeername())
        n.state = TCP_ESTABLISHED
    except OSError:
        n.state = TCP_CLOSE
    key = (s.family, s.proto)
    if key not in diag_cache:
        diag_cache[key] = sockdiag.inet_sockets(s.family, s.proto)
    diag = diag_cache[key].get(ino)
    if diag is not None:
        n.shutdown = diag.shutdown
        if diag.rqueue:
            log.warning("%s: dropping the datagrams queued on it (%d bytes of receive buffer); UDP may drop any datagram",
                        what, diag.rqueue)
    sockopts.refuse_unsupported(s, what, tcp=False)
    extra = UDPLITE if s.proto == IPPROTO_UDPLITE else UDP
    table = (sockopts.GENERIC + (sockopts.IPV6 if s.family == socket.AF_INET6 else ()) + sockopts.IPV4 + extra
             + sockopts.LAST)
    n.options.extend(sockopts.collect(s, s.family, s.type, s.proto, table=table))


def make(s, n, bind, what):
    """Bind, connect and shut down the fresh socket `s` (options set) as `n` says."""
    if n.src_addr:
        bind(s, n)
    if n.state == TCP_ESTABLISHED:
        from .inet import sockaddr
        s.connect(sockaddr(n.family, n.dst_addr, n.dst_port))
    if n.shutdown:
        how = {1: socket.SHUT_RD, 2: socket.SHUT_WR}.get(n.shutdown, socket.SHUT_RDWR)
        try:
            s.shutdown(how)
        except OSError:
            pass        # unconnected: the kernel sets the flag and still says ENOTCONN
