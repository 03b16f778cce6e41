"""TCP sockets over IPv4 and IPv6 (v4-mapped addresses on a v6 socket too).

Dump: the state, shutdown and accept queue come from sock_diag
(sockdiag.tcp_sockets), the addresses from getsockname/getpeername and the
options (files/sockopts.py) from getsockopt, all on the process's own socket
taken with pidfd_getfd while the tree is frozen. Kept: unbound, bound and
listening sockets (backlog; a listener with connections waiting to be
accepted only with --skip-in-flight, which leaves them out), and established
connections with --tcp-established (files/tcprepair.py; their packets
blocked meanwhile, pyckpt/netblock.py) or --tcp-close (restored as a fresh
closed socket). Every other TCP state, and every other inet socket, is
refused, naming the fd and the addresses.

UDP and UDP-Lite sockets: files/udp.py.

Restore: pyckpt makes each socket itself, as the unix ones, and the
processes take them with pidfd_getfd (restore_fds).
"""

import fcntl
import ipaddress
import logging
import os
import socket

from .. import netblock, proc, sockdiag
from ..errors import PyckptError, RestoreConflict, UnsupportedState
from ..images.proto import files_pb2
from ..sockdiag import RCV_SHUTDOWN, TCP_CLOSE, TCP_ESTABLISHED, TCP_LISTEN
from . import sockopts, tcprepair, udp

log = logging.getLogger(__name__)

STATE_NAMES = {1: "ESTABLISHED", 2: "SYN_SENT", 3: "SYN_RECV", 4: "FIN_WAIT1", 5: "FIN_WAIT2", 6: "TIME_WAIT",
               7: "CLOSE", 8: "CLOSE_WAIT", 9: "LAST_ACK", 10: "LISTEN", 11: "CLOSING", 12: "NEW_SYN_RECV"}
FAMILY_NAMES = {socket.AF_INET: "TCP", socket.AF_INET6: "TCPv6"}


def _split(family, addr):
    """(packed address, port) of a socket address tuple."""
    return socket.inet_pton(family, addr[0]), addr[1]


def show(family, packed, port):
    """'127.0.0.1:80', '[::1]:80' for messages."""
    if not packed:
        return "(unbound)"
    ip = ipaddress.ip_address(packed)
    return f"[{ip}]:{port}" if ip.version == 6 else f"{ip}:{port}"


def sockaddr(family, packed, port):
    return (socket.inet_ntop(family, packed), port) if family == socket.AF_INET else \
        (socket.inet_ntop(family, packed), port, 0, 0)


def describe_for_refusal(s):
    """'TCP 127.0.0.1:5 -> 127.0.0.1:6' etc. of any inet socket, for refusals."""
    kind = {socket.SOCK_STREAM: "stream", socket.SOCK_DGRAM: "datagram", socket.SOCK_RAW: "raw"}.get(
        s.type, f"type {s.type}")
    family = {socket.AF_INET: "IPv4", socket.AF_INET6: "IPv6"}[s.family]
    text = f"{family} {kind} socket (protocol {s.proto})"
    try:
        text += f" {s.getsockname()[:2]}"
        text += f" -> {s.getpeername()[:2]}"
    except OSError:
        pass
    return text


class InetDump:
    """The TCP and UDP sockets of the dumped processes. Established connections are read in
    `finish`, under a block; `leave_blocked`, `abort` and `done` end it as the dump ends."""

    def __init__(self, options):
        self.options = options
        self._diag = {}          # (family, protocol) -> sock_diag's sockets
        self.connections = []    # (file id, dup of the target's socket, description): established, to read
        self.repaired = []       # (socket, its SO_REUSEADDR) of those put in repair mode
        self.block = None
        self.guard = None        # tcprepair.Guard: repair mode off should pyckpt die mid-dump
        self.block_table = ""    # table left for restore to lift (dump that kills)

    def diag(self, family):
        key = (family, socket.IPPROTO_TCP)
        if key not in self._diag:
            self._diag[key] = sockdiag.tcp_sockets(family)
        return self._diag[key]

    def add(self, entry, pid, fd, st, what):
        """Describe the socket at pid's fd into entry; False if it is not an inet socket."""
        from .unix import grab
        s = grab(pid, fd)
        with s:
            if s.family not in (socket.AF_INET, socket.AF_INET6):
                return False
            if s.type == socket.SOCK_DGRAM and s.proto in udp.PROTOCOLS:
                entry.kind = files_pb2.OpenFile.INET_SOCKET
                udp.describe(entry, s, st.st_ino, self._diag, f"{what} ({describe_for_refusal(s)})", _split)
                return True
            if s.type != socket.SOCK_STREAM or s.proto != socket.IPPROTO_TCP:
                raise UnsupportedState(f"{what} is an {describe_for_refusal(s)}; pyckpt checkpoints TCP and UDP "
                                       "sockets only, not raw or other inet sockets yet")
            diag = self.diag(s.family).get(st.st_ino)
            if diag is None:
                # sock_diag lists only hashed sockets: not one that is unbound or bound only
                state = s.getsockopt(socket.SOL_TCP, tcprepair.TCP_INFO, 1)[0]
                if state != TCP_CLOSE:
                    raise UnsupportedState(f"{what}: sock_diag does not show this TCP socket in state "
                                           f"{STATE_NAMES.get(state, state)}; not supported")
                diag = sockdiag.InetDiag(ino=st.st_ino, state=state)
            self._describe(entry, s, diag, what)
        return True

    def _describe(self, entry, s, diag, what):
        entry.kind = files_pb2.OpenFile.INET_SOCKET
        n = entry.inet
        n.ino, n.family, n.type, n.protocol, n.state = diag.ino, s.family, s.type, s.proto, diag.state
        n.shutdown = diag.shutdown
        local = s.getsockname()
        packed, port = _split(s.family, local)
        if port or any(packed):
            n.src_addr, n.src_port = packed, port
        where = f"{what} ({FAMILY_NAMES[s.family]} {show(s.family, n.src_addr, n.src_port)}"
        connected = diag.state not in (TCP_LISTEN, TCP_CLOSE)
        if connected:
            try:
                n.dst_addr, n.dst_port = _split(s.family, s.getpeername())
                where += f" -> {show(s.family, n.dst_addr, n.dst_port)}"
            except OSError:
                pass            # a connect still in progress (SYN_SENT) has no peer name yet
        where += ")"
        state = STATE_NAMES.get(diag.state, str(diag.state))
        sockopts.refuse_unsupported(s, where)
        n.options.extend(sockopts.collect(s, s.family, s.type, s.proto, connected))
        if diag.state == TCP_LISTEN:
            n.backlog = diag.wqueue
            if diag.rqueue and not self.options.skip_in_flight:
                raise UnsupportedState(f"{where} has {diag.rqueue} connection(s) waiting to be accepted; dump "
                                       "with --skip-in-flight to leave them out (their clients are reset)")
            if diag.rqueue:
                log.warning("%s: leaving out %d connection(s) not yet accepted", where, diag.rqueue)
            return
        if diag.state == TCP_CLOSE:
            if diag.shutdown:
                raise UnsupportedState(f"{where} is closed and shut down; not supported")
            return
        if self.options.tcp_close:
            n.closed = True
            log.info("%s (%s) will be restored closed (--tcp-close)", where, state)
            return
        if not self.options.tcp_established:
            raise UnsupportedState(f"{where} is a TCP connection in state {state}; dump with --tcp-established "
                                   "to keep it (or --tcp-close to restore it closed)")
        if diag.state != TCP_ESTABLISHED or diag.shutdown & ~RCV_SHUTDOWN:
            raise UnsupportedState(f"{where} is in TCP state {state}; only ESTABLISHED connections (possibly "
                                   "shut down for reading) can be kept yet")
        # read in `finish`, once its packets are blocked
        self.connections.append((entry.id, socket.socket(fileno=os.dup(s.fileno())), where))

    def finish(self, files):
        """Block the established connections' packets, then read them in repair mode.

        `files`: the table's OpenFile list (entries were copied into it when added)."""
        if not self.connections:
            return
        conns = []
        for file_id, _s, _where in self.connections:
            n = files[file_id - 1].inet
            conns.append((n.src_addr, n.src_port, n.dst_addr, n.dst_port))
        # leaving repair mode clears SO_REUSEADDR: given back with -R or on failure
        socks = [(s, s.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR)) for _id, s, _where in self.connections]
        self.guard = tcprepair.Guard(socks)      # before the block: it must not hold nft's pipe
        self.block = netblock.Block(conns)
        self.block.start()
        for (file_id, s, where), repaired in zip(self.connections, socks):
            n = files[file_id - 1].inet
            self.repaired.append(repaired)
            n.tcp.CopyFrom(tcprepair.dump(s, where))
            # the queues go back through the buffers: keep their sizes when something is queued
            for name, data in ((sockopts.SO_SNDBUF, n.tcp.send_queue), (sockopts.SO_RCVBUF, n.tcp.recv_queue)):
                if data and not any(o.level == sockopts.SOL_SOCKET and o.name == name for o in n.options):
                    n.options.add(level=sockopts.SOL_SOCKET, name=name,
                                  value=s.getsockopt(sockopts.SOL_SOCKET, name).to_bytes(4, "little"))

    def leave_blocked(self, files_msg, root_pid):
        """Dump that kills: a table stays until restore; its name goes into the image."""
        if self.block is None:
            return
        self.block_table = f"pyckpt_{root_pid}_{int.from_bytes(os.urandom(4), 'little'):08x}"
        self.block.keep(self.block_table)
        files_msg.tcp_block = self.block_table

    def abort(self):
        """Dump failed or leaves the processes running: connections out of repair mode, blocks lifted."""
        for s, reuseaddr in self.repaired:
            try:
                tcprepair.repair(s, False)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, reuseaddr)
            except OSError as err:
                log.warning("could not take a dumped connection out of repair mode: %s", err)
        if self.block_table:
            netblock.lift(self.block_table)
            self.block_table = ""
        self.done()

    def done(self):
        if self.guard is not None:
            self.guard.release()
            self.guard = None
        for _file_id, s, _where in self.connections:
            s.close()
        self.connections, self.repaired = [], []
        if self.block is not None:
            err = self.block.stop()
            if err:
                log.warning("nft said: %s", err)
            self.block = None


# -- restore ------------------------------------------------------------------


def _what(n):
    kind = FAMILY_NAMES.get(n.family, n.family) if n.type == socket.SOCK_STREAM else \
        f"{udp.PROTOCOLS.get(n.protocol, n.protocol)}{'v6' if n.family == socket.AF_INET6 else ''}"
    return (f"socket:[{n.ino}] ({kind} {show(n.family, n.src_addr, n.src_port)}"
            + (f" -> {show(n.family, n.dst_addr, n.dst_port)})" if n.dst_addr else ")"))


def _holder(n):
    """'process P (comm) fd F' holding a TCP socket on n's local port, or ''."""
    from . import pipe
    try:
        diag = sockdiag.inet_sockets(n.family, n.protocol)
    except PyckptError:
        return ""
    with socket.socket(n.family) as probe:
        dev = os.fstat(probe.fileno()).st_dev
    inos = {(dev, d.ino) for d in diag.values() if d.sport == n.src_port and d.ino}
    for (_dev, _ino), holders in pipe.holders_outside(inos, {os.getpid()}).items():
        pid, fd = holders[0]
        return f" by process {proc.holder_description(pid)} fd {fd}"
    return ""


def preflight(image):
    """Every address a listening or bound socket of the image takes must be free, before any process is made."""
    for entry in image.files.values():
        if entry.kind != files_pb2.OpenFile.INET_SOCKET:
            continue
        n = entry.inet
        if not n.src_addr or n.type == socket.SOCK_STREAM and n.state not in (TCP_LISTEN, TCP_CLOSE):
            continue
        with socket.socket(n.family, n.type, n.protocol) as s:
            sockopts.apply(s, n.options, _what(n), only=_BIND_OPTIONS)
            _bind(s, n)


_BIND_OPTIONS = {(sockopts.SOL_SOCKET, sockopts.SO_REUSEADDR), (sockopts.SOL_SOCKET, sockopts.SO_REUSEPORT),
                 (sockopts.SOL_SOCKET, sockopts.SO_BINDTODEVICE), (sockopts.SOL_IPV6, sockopts.IPV6_V6ONLY),
                 (sockopts.SOL_IP, sockopts.IP_FREEBIND), (sockopts.SOL_IPV6, sockopts.IPV6_FREEBIND),
                 (sockopts.SOL_IP, sockopts.IP_TRANSPARENT)}


def _bind(s, n):
    try:
        s.bind(sockaddr(n.family, n.src_addr, n.src_port))
    except OSError as err:
        raise RestoreConflict(f"{_what(n)}: cannot bind {show(n.family, n.src_addr, n.src_port)} again: "
                              f"{err.strerror}{_holder(n) if err.errno == 98 else ''}") from err


class InetRestore:
    """Every TCP socket of an image, made inside pyckpt and handed to the processes by fd."""

    def __init__(self, image, tcp_close=False):
        self.image = image
        self.tcp_close = tcp_close      # restore --tcp-close: every established connection made closed
        self.socks = []

    def close(self):
        for s in self.socks:
            s.close()
        self.socks = []

    def build(self, registry):
        # Until both ends of a connection inside the image are back, a packet from the first
        # one made (leaving repair mode sends one) would be answered with a RST: block them.
        conns = [(e.inet.src_addr, e.inet.src_port, e.inet.dst_addr, e.inet.dst_port)
                 for e in self.image.files.values()
                 if e.kind == files_pb2.OpenFile.INET_SOCKET and e.inet.HasField("tcp") and not self.tcp_close]
        block = netblock.Block(conns)
        block.start()
        try:
            self._build_all(registry)
        finally:
            block.stop()

    def _build_all(self, registry):
        for file_id, entry in self.image.files.items():
            if entry.kind != files_pb2.OpenFile.INET_SOCKET:
                continue
            n = entry.inet
            s = socket.socket(n.family, n.type, n.protocol)
            self.socks.append(s)
            what = _what(n)
            try:
                self._make(s, n, what)
            except OSError as err:
                raise RestoreConflict(f"{what}: cannot make it again: {err.strerror}") from err
            fcntl.fcntl(s.fileno(), fcntl.F_SETFL, entry.flags & os.O_NONBLOCK)
            registry[file_id] = (os.getpid(), s.fileno())

    def _make(self, s, n, what):
        if n.type == socket.SOCK_DGRAM:
            sockopts.apply(s, n.options, what)
            udp.make(s, n, _bind, what)
            return
        if n.closed or self.tcp_close and n.HasField("tcp"):
            return      # --tcp-close (at dump or restore): a fresh closed socket
        if n.HasField("tcp"):
            sizes = {(sockopts.SOL_SOCKET, sockopts.SO_SNDBUF), (sockopts.SOL_SOCKET, sockopts.SO_RCVBUF),
                     (sockopts.SOL_SOCKET, sockopts.SO_BINDTODEVICE)}
            sockopts.apply(s, n.options, what, only=sizes)
            tcprepair.restore(s, n.tcp, sockaddr(n.family, n.src_addr, n.src_port),
                              sockaddr(n.family, n.dst_addr, n.dst_port), what)
            # leaving repair mode reset SO_REUSEADDR: every option now
            sockopts.apply(s, n.options, what)
            if n.shutdown & RCV_SHUTDOWN:
                s.shutdown(socket.SHUT_RD)
            return
        sockopts.apply(s, n.options, what)
        if n.src_addr:
            _bind(s, n)
        if n.state == TCP_LISTEN:
            s.listen(n.backlog)
