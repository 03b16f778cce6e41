"""AF_UNIX sockets: stream, datagram and seqpacket, with names, peers and queues.

Dump: sock_diag (pyckpt/sockdiag.py) says what each socket is: type, state,
name, socket file, peer, the clients waiting on a listener, queue length,
shutdown. Options come from getsockopt on a copy of the socket taken with
pidfd_getfd. Receive queues are read without consuming them (the source's
`unix_queue`, files/unixqueue.py) and checked against the length sock_diag
reports; files in flight in them (SCM_RIGHTS) are files/inflight.py's. Every peer
must be in the dump; a datagram socket connected to a named socket outside
it is kept only with --ext-unix-sk (reconnected by name at restore, as CRIU
does). What cannot come back exactly is refused, naming the fd.

Restore: pyckpt builds every socket of the image itself (socketpair, bind,
listen, connect, accept), refills the queues by sending from the socket that
sent each message (with the files it carried), shuts down what was shut down, and the processes take
their fds from pyckpt with pidfd_getfd (restore_fds). So SO_PEERCRED of a
restored connection names pyckpt's PID, not the original peer's.
"""

import contextlib
import fcntl
import logging
import os
import socket
import stat
import struct

from .. import images, proc, sockdiag
from ..errors import PyckptError, RestoreConflict, UnsupportedState
from ..images.proto import files_pb2
from ..sockdiag import RCV_SHUTDOWN, SEND_SHUTDOWN, TCP_ESTABLISHED, TCP_LISTEN
from . import inflight, status
from .unixqueue import SO_PEEK_OFF, TYPE_NAMES, close_all, grab, name_of

log = logging.getLogger(__name__)

SO_PASSCRED = 16
SO_SNDBUFFORCE, SO_RCVBUFFORCE = 32, 33


def show_name(name):
    """A socket name for messages: a path, or @name for an abstract one."""
    if not name:
        return "(unnamed)"
    if name.startswith(b"\0"):
        return "@" + name[1:].decode(errors="replace")
    return os.fsdecode(name)


# -- dump ---------------------------------------------------------------------


def describe(entry, pid, fd, diag, what):
    """Fill `entry` from sock_diag and getsockopt; checks needing every socket come in `check_all`.

    Returns the peer's name if the socket is connected (getpeername answers),
    else None: sock_diag cannot say that of a socket whose peer was closed.
    """
    if diag.type not in TYPE_NAMES:
        raise UnsupportedState(f"{what} is a unix socket of type {diag.type}; not supported")
    entry.kind = files_pb2.OpenFile.UNIX_SOCKET
    u = entry.unix
    u.ino, u.type, u.state, u.name = diag.ino, diag.type, diag.state, diag.name
    u.peer, u.shutdown = diag.peer, diag.shutdown
    if diag.state == TCP_LISTEN:
        u.backlog = diag.wqueue
    with grab(pid, fd) as s:
        u.sndbuf = s.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
        u.rcvbuf = s.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        u.passcred = bool(s.getsockopt(socket.SOL_SOCKET, SO_PASSCRED))
        u.peek_off = s.getsockopt(socket.SOL_SOCKET, SO_PEEK_OFF)
        try:
            peer_name = name_of(s.getpeername())
        except OSError:
            return None
        if diag.type != socket.SOCK_DGRAM:
            u.ext_peer_name = peer_name
        return peer_name


class UnixDump:
    """Every unix socket of the dumped processes; `check_all` once all are seen."""

    def __init__(self, options, source, in_flight):
        self.options = options
        self.source = source
        self.in_flight = in_flight   # (pyckpt's fd on a file in flight, what) -> its OpenFile id
        self.sockets = {}        # ino -> (OpenFile, pid, fd, st_dev)
        self.queues = {}         # image file name -> UnixQueue
        self.connected = {}      # ino of a socket getpeername answers for -> the peer's name
        self.dumped_pids = ()
        self._diag = None

    def diag(self):
        if self._diag is None:
            self._diag = sockdiag.unix_sockets()
        return self._diag

    def add(self, entry, pid, fd, st, what):
        """Describe the socket at pid's fd into entry; False if it is not a unix socket we can see."""
        with grab(pid, fd) as s:
            if s.family != socket.AF_UNIX:
                return False
        diag = self.diag().get(st.st_ino)
        if diag is None:
            return False
        peer_name = describe(entry, pid, fd, diag, what)
        if peer_name is not None:
            self.connected[st.st_ino] = peer_name
        self.sockets[st.st_ino] = (entry, pid, fd, st.st_dev)
        return True

    def _what(self, ino):
        entry, pid, fd, _dev = self.sockets[ino]
        return f"process {pid} fd {fd} (socket:[{ino}], unix {TYPE_NAMES[entry.unix.type]} {show_name(entry.unix.name)})"

    def _outside_holder(self, ino, dumped_pids):
        from . import pipe
        dev = next(iter(self.sockets.values()))[3]
        found = pipe.holders_outside({(dev, ino)}, set(dumped_pids)).get((dev, ino))
        if not found:
            return f"socket:[{ino}] (held by no fd of any process)"
        pid, fd = found[0]
        return f"socket:[{ino}] of process {proc.holder_description(pid)} fd {fd}"

    def check_all(self, files, dumped_pids):
        """`files`: the table's OpenFile list (entries were copied into it when added)."""
        self.sockets = {ino: (files[entry.id - 1], pid, fd, dev) for ino, (entry, pid, fd, dev) in self.sockets.items()}
        self.dumped_pids = dumped_pids
        diag = self.diag()
        ours = self.sockets
        listeners = {}
        for s in diag.values():
            if s.state == TCP_LISTEN and s.name:
                listeners[s.name if s.name.startswith(b"\0") else s.vfs] = s
        pending_of = {}
        for s in diag.values():
            for client in s.icons:
                pending_of[client] = s
        for ino, (entry, pid, fd, _dev) in ours.items():
            u, what = entry.unix, self._what(ino)
            d = diag[ino]
            if u.state == TCP_LISTEN:
                for client in d.icons:
                    if client == 0:
                        raise UnsupportedState(f"{what} has a pending connection whose client was closed; "
                                               "not supported")
                    if client not in ours:
                        raise UnsupportedState(f"{what} has a pending connection from "
                                               f"{self._outside_holder(client, dumped_pids)}, outside the dump")
                    u.pending_clients.append(client)
            self._check_name(u, d, pid, what, listeners)
            if ino in self.connected or d.peer:
                self._check_peer(ino, u, d, what, pending_of, dumped_pids)
        # Someone outside connected to one of ours (a datagram client of our server).
        for s in diag.values():
            if s.peer in ours and s.ino not in ours and s.ino not in pending_of:
                if not self.options.ext_unix_sk:
                    raise UnsupportedState(f"{self._what(s.peer)} is the peer of "
                                           f"{self._outside_holder(s.ino, dumped_pids)}, outside the dump; "
                                           "dump with --ext-unix-sk to leave that socket disconnected")
                log.warning("%s: the outside %s loses its connection", self._what(s.peer),
                            self._outside_holder(s.ino, dumped_pids))
        for ino, (entry, pid, fd, _dev) in ours.items():
            self._read_queue(ino, entry.unix, pid, fd)

    def _check_name(self, u, d, pid, what, listeners):
        if not u.name:
            return
        abstract = u.name.startswith(b"\0")
        key = u.name if abstract else d.vfs
        listener = listeners.get(key)
        if u.type != socket.SOCK_DGRAM and u.state == TCP_ESTABLISHED and listener is not None \
                and listener.ino != u.ino:
            # An accepted socket: it shows its listener's name, which it does not own.
            if listener.ino not in self.sockets:
                raise UnsupportedState(f"{what} was accepted from a listener outside the dump "
                                       f"(socket:[{listener.ino}]); not supported")
            return
        u.bound = True
        if abstract:
            return
        path = os.fsdecode(u.name)
        if not path.startswith("/"):
            u.dir = self._relative_dir(path, d.vfs, pid, what)
            path = os.path.join(u.dir, path)
        try:
            st = os.lstat(path)
        except OSError:
            st = None
        if st is None or (st.st_dev, st.st_ino) != d.vfs:
            raise UnsupportedState(f"{what}: its socket file {path} was removed or replaced since bind(); "
                                   "not supported")
        status.save_attrs(u.file_attrs, st)

    def _relative_dir(self, name, vfs, pid, what):
        """The directory a socket bound to a relative name resolves in: the one, among the working
        directories and open directories of the dump, where the name leads to its socket file."""
        candidates = [proc.readlink(pid, "cwd")]
        for p in self.dumped_pids:
            candidates.append(proc.readlink(p, "cwd"))
            for fd in proc.list_fds(p):
                link = proc.readlink(p, f"fd/{fd}")
                if link.startswith("/") and os.path.isdir(link):
                    candidates.append(link)
        for directory in candidates:
            try:
                st = os.lstat(os.path.join(directory, name))
            except OSError:
                continue
            if (st.st_dev, st.st_ino) == vfs:
                return directory
        raise UnsupportedState(f"{what} is bound to the relative name {name!r}, whose socket file is in no "
                               "working or open directory of the dumped processes (removed or replaced, or "
                               "bound from elsewhere); not supported")

    def _check_peer(self, ino, u, d, what, pending_of, dumped_pids):
        if d.peer in self.sockets:
            peer = self.diag()[d.peer]
            if u.type == socket.SOCK_DGRAM and not peer.name and peer.peer != ino:
                # only socketpair() connects to an unnamed socket; one side was reconnected since
                raise UnsupportedState(f"{what} is connected to the unnamed {self._what(d.peer)}, which is "
                                       "connected elsewhere; not supported")
            return
        if d.peer:
            outside = self._outside_holder(d.peer, dumped_pids)
            peer = self.diag().get(d.peer)
            if u.type == socket.SOCK_DGRAM and peer is not None and peer.name:
                if self.options.ext_unix_sk and not peer.name.startswith((b"\0", b"/")):
                    raise UnsupportedState(f"{what} is connected to {outside}, bound to the relative path "
                                           f"{show_name(peer.name)}: it cannot be found again at restore")
                if self.options.ext_unix_sk:
                    u.ext_peer_name = peer.name
                    return
                raise UnsupportedState(f"{what} is connected to {outside} ({show_name(peer.name)}), outside the "
                                       "dump; dump (and restore) with --ext-unix-sk to reconnect it by name")
            raise UnsupportedState(f"{what} is connected to {outside}, outside the dump"
                                   + ("" if u.type == socket.SOCK_DGRAM else
                                      "; a stream or seqpacket connection cannot be re-established, even with --ext-unix-sk"))
        if ino in pending_of:
            listener = pending_of[ino]
            if listener.ino not in self.sockets:
                raise UnsupportedState(f"{what} waits to be accepted by a listener outside the dump "
                                       f"({self._outside_holder(listener.ino, dumped_pids)})")
            u.pending, u.peer = True, listener.ino
            if d.wqueue:
                self._read_sent(ino, u, listener, what)
            return
        if u.type == socket.SOCK_DGRAM:
            if self.connected.get(ino):
                raise UnsupportedState(f"{what} is connected to {show_name(self.connected[ino])}, a socket that "
                                       "was closed; a closed named peer is not supported")
            # Still connected to it: its next send fails (ECONNREFUSED) and disconnects it.
            u.peer_closed = True
            return
        if u.ext_peer_name:
            raise UnsupportedState(f"{what}: its peer ({show_name(u.ext_peer_name)}) was closed; a closed "
                                   "named peer is not supported yet")
        # The peer was closed: what it sent is still to be read, then end of file.

    def _read_sent(self, ino, u, listener, what):
        """What a client sent on a connection its listener has not accepted yet."""
        _entry, lpid, lfd, _dev = self.sockets[listener.ino]
        sent = self.source.unix_pending_queue(lpid, lfd, listener.icons.index(ino), u.type, what)
        if sent is None:
            raise UnsupportedState(f"{what} has sent data on a connection not yet accepted; the "
                                   f"{self.source.name} backend cannot read it without accepting the "
                                   "connection (the kmod backend can)")
        if sent:
            queue = files_pb2.UnixQueue()
            for data, _sender, _fds in sent:
                queue.messages.add(data=data)
            u.sent = images.unix_sent(ino)
            self.queues[u.sent] = queue

    def _read_queue(self, ino, u, pid, fd):
        d = self.diag()[ino]
        if u.type != socket.SOCK_DGRAM and u.state != TCP_ESTABLISHED:
            return      # a listener, or never connected: nothing can be queued (a peek says ENOTCONN)
        if not d.rqueue and u.type == socket.SOCK_STREAM:
            return
        what = self._what(ino)
        messages = self.source.unix_queue(pid, fd, u.type, bool(d.shutdown & RCV_SHUTDOWN), what)
        try:
            self._save_queue(ino, u, d, messages, what)
        finally:
            close_all(fd for message in messages for fd in message[2])

    def _save_queue(self, ino, u, d, messages, what):
        if not messages:
            return
        if u.passcred:
            raise UnsupportedState(f"{what} has SO_PASSCRED and queued messages: their credentials "
                                   "(SCM_CREDENTIALS) cannot be restored; not supported")
        total = sum(len(data) for data, _sender, _fds in messages)
        expect = len(messages[0][0]) if u.type == socket.SOCK_DGRAM else total
        if d.rqueue != expect:
            raise PyckptError(f"{what}: read {total} queued bytes, the kernel reports {d.rqueue}")
        queue = files_pb2.UnixQueue()
        for data, sender, fds in messages:
            queue.messages.add(data=data, sender=sender,
                               files=[self.in_flight(passed, f"{what}: a file in flight") for passed in fds])
            if u.type == socket.SOCK_DGRAM:
                self._check_sender(ino, u, sender, what)
        u.queue = images.unix_queue(ino)
        self.queues[u.queue] = queue

    def _check_sender(self, ino, u, sender, what):
        """A datagram must be re-sendable at restore by a socket with its sender's name."""
        if sender:
            if not any(e.unix.bound and e.unix.name == sender for e, *_ in self.sockets.values()):
                raise UnsupportedState(f"{what} holds a datagram from {show_name(sender)}, a socket outside "
                                       "the dump; not supported")
        elif not u.name and not u.peer_closed and not any(e.unix.peer == ino for e, *_ in self.sockets.values()):
            raise UnsupportedState(f"{what} holds a datagram from an unnamed socket outside the dump")


# -- restore ------------------------------------------------------------------


def _path_of(u):
    path = os.fsdecode(u.name)
    return os.path.join(u.dir, path) if u.dir else path


def preflight(image, options, sockets=None):
    """Names the image binds must be free (a stale socket file is fine); external peers reachable."""
    records = [e.unix for e in image.files.values() if e.kind == files_pb2.OpenFile.UNIX_SOCKET]
    if not records:
        return
    sockets = sockdiag.unix_sockets() if sockets is None else sockets
    for u in records:
        if u.ext_peer_name and u.type == socket.SOCK_DGRAM and u.peer not in {r.ino for r in records}:
            if not options.ext_unix_sk:
                raise RestoreConflict(f"socket:[{u.ino}] was connected to {show_name(u.ext_peer_name)} outside "
                                      "the dump; restore with --ext-unix-sk to reconnect it")
            if not _name_is_live(u.ext_peer_name, sockets):
                raise RestoreConflict(f"socket:[{u.ino}] was connected to {show_name(u.ext_peer_name)}, which no "
                                      "socket is bound to now")
        if not u.bound:
            continue
        if u.name.startswith(b"\0"):
            held = sockdiag.holders_of_name(u.name, sockets=sockets)
            if held:
                raise RestoreConflict(f"the abstract unix name {show_name(u.name)} is in use "
                                      f"(socket:[{held[0].ino}])")
            continue
        path = _path_of(u)
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            continue
        if not stat.S_ISSOCK(st.st_mode):
            raise RestoreConflict(f"{path} exists and is not a socket; a unix socket of the image binds it")
        held = sockdiag.holders_of_name(u.name, (st.st_dev, st.st_ino), sockets)
        if held:
            raise RestoreConflict(f"{path} is bound by a live socket (socket:[{held[0].ino}])")


def _name_is_live(name, sockets):
    if name.startswith(b"\0"):
        return bool(sockdiag.holders_of_name(name, sockets=sockets))
    try:
        st = os.stat(name)
    except OSError:
        return False
    return bool(sockdiag.holders_of_name(name, (st.st_dev, st.st_ino), sockets))


@contextlib.contextmanager
def _in_dir(u):
    """Relative names are bound and connected to from the directory they resolve in."""
    if not u.dir or u.name.startswith(b"\0") or u.name.startswith(b"/"):
        yield
        return
    here = os.getcwd()
    os.chdir(u.dir)
    try:
        yield
    finally:
        os.chdir(here)


class UnixRestore:
    """Every unix socket of an image, built inside pyckpt, handed to the processes by fd."""

    def __init__(self, image):
        self.image = image
        self.records = {e.unix.ino: e.unix for e in image.files.values()
                        if e.kind == files_pb2.OpenFile.UNIX_SOCKET}
        self.socks = {}          # ino -> socket object in pyckpt
        self.closed_peers = {}   # ino -> partner of a socket whose peer was closed: closed once filled
        self.in_flight = {}      # file id -> pyckpt's fd on a file sent again in a queued message
        self.registry = None

    def close(self):
        for s in list(self.socks.values()) + list(self.closed_peers.values()):
            s.close()
        for fd in self.in_flight.values():
            os.close(fd)
        self.socks, self.closed_peers, self.in_flight = {}, {}, {}

    def build(self, registry):
        if not self.records:
            return
        self.registry = registry
        try:
            self._build()
        except OSError as err:
            raise RestoreConflict(f"cannot rebuild the unix sockets of the image: {err}") from err
        for file_id, entry in self.image.files.items():
            if entry.kind == files_pb2.OpenFile.UNIX_SOCKET:
                s = self.socks[entry.unix.ino]
                flags = entry.flags & os.O_NONBLOCK
                fcntl.fcntl(s.fileno(), fcntl.F_SETFL, flags)
                registry[file_id] = (os.getpid(), s.fileno())

    def _new(self, u, s=None):
        s = s or socket.socket(socket.AF_UNIX, u.type)
        if u.sndbuf:
            s.setsockopt(socket.SOL_SOCKET, SO_SNDBUFFORCE, u.sndbuf // 2)
        if u.rcvbuf:
            s.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, u.rcvbuf // 2)
        if u.passcred:
            s.setsockopt(socket.SOL_SOCKET, SO_PASSCRED, 1)
        self.socks[u.ino] = s
        return s

    def _with_closed_peer(self, u):
        """u connected to a partner that sends its queue, then is closed (as its peer was)."""
        a, b = socket.socketpair(socket.AF_UNIX, u.type)
        self._new(u, a)
        self.closed_peers[u.ino] = b
        if u.bound:
            self._bind(u)

    def _bind(self, u):
        s = self.socks[u.ino]
        if not u.name.startswith(b"\0"):
            path = _path_of(u)
            try:
                if stat.S_ISSOCK(os.lstat(path).st_mode):
                    os.unlink(path)     # stale: preflight found no live holder
            except FileNotFoundError:
                pass
        with _in_dir(u):
            s.bind(u.name)
        if u.HasField("file_attrs"):
            status.apply_attrs(_path_of(u), u.file_attrs)

    def _build(self):
        recs = self.records
        # listeners first: accepted and pending connections go through them
        for u in recs.values():
            if u.state == TCP_LISTEN:
                self._new(u)
                self._bind(u)
                self.socks[u.ino].listen(u.backlog)
        for u in recs.values():
            if u.ino in self.socks or u.state != TCP_ESTABLISHED or u.pending:
                continue
            peer = recs.get(u.peer)
            if u.type == socket.SOCK_DGRAM and u.peer_closed:
                self._with_closed_peer(u)
                continue
            if u.type == socket.SOCK_DGRAM:
                if peer is not None and peer.peer == u.ino and not u.bound and not peer.bound:
                    a, b = socket.socketpair(socket.AF_UNIX, u.type)
                    self._new(u, a)
                    self._new(peer, b)
                continue
            if peer is None:            # its peer was closed
                self._with_closed_peer(u)
                continue
            accepted = next((x for x in (u, peer) if x.name and not x.bound), None)
            if accepted is not None:
                client = peer if accepted is u else u
                listener = next(x for x in recs.values() if x.state == TCP_LISTEN and x.name == accepted.name)
                self._new(client)
                if client.bound:
                    self._bind(client)
                with _in_dir(listener):
                    self.socks[client.ino].connect(listener.name)
                conn, _ = self.socks[listener.ino].accept()
                self._new(accepted, conn)
            else:
                a, b = socket.socketpair(socket.AF_UNIX, u.type)
                self._new(u, a)
                self._new(peer, b)
                for x in (u, peer):
                    if x.bound:
                        self._bind(x)
        for u in recs.values():         # the rest stands alone: unconnected, datagram, pending clients
            if u.ino not in self.socks:
                self._new(u)
                if u.bound:
                    self._bind(u)
        for u in recs.values():
            if u.type == socket.SOCK_DGRAM and (u.peer or u.ext_peer_name):
                peer = recs.get(u.peer)
                if peer is not None and peer.peer == u.ino and not u.bound and not peer.bound:
                    continue            # a socketpair
                name, where = (peer.name, peer) if peer is not None else (u.ext_peer_name, None)
                with _in_dir(where) if where else contextlib.nullcontext():
                    self.socks[u.ino].connect(name)
        for u in recs.values():
            if u.state == TCP_LISTEN:
                for client in u.pending_clients:
                    with _in_dir(u):
                        self.socks[client].connect(u.name)
                    if recs[client].sent:
                        self._refill(recs[client], recs[client].sent, self.socks[client])
        for u in recs.values():
            if u.queue:
                self._refill(u, u.queue)
        # after the refill (a shut down socket cannot be written to); a closed
        # peer's partner shuts its survivor down by closing, below
        for u in recs.values():
            if u.shutdown and (u.type == socket.SOCK_DGRAM or u.peer in recs or u.state != TCP_ESTABLISHED):
                how = {RCV_SHUTDOWN: socket.SHUT_RD, SEND_SHUTDOWN: socket.SHUT_WR}.get(u.shutdown, socket.SHUT_RDWR)
                self.socks[u.ino].shutdown(how)
        for partner in self.closed_peers.values():
            partner.close()
        self.closed_peers = {}
        for u in recs.values():
            if u.peek_off >= 0:
                with contextlib.suppress(OSError):
                    self.socks[u.ino].setsockopt(socket.SOL_SOCKET, SO_PEEK_OFF, u.peek_off)

    def _sender(self, u, message):
        """The socket (and address to send to, or None when connected) that sent `message` to u."""
        recs = self.records
        if u.type != socket.SOCK_DGRAM or u.peer_closed and not message.sender:
            if u.peer in recs:
                return self.socks[u.peer], None
            return self.closed_peers.get(u.ino), None
        if message.sender:
            sender = next(x for x in recs.values() if x.bound and x.name == message.sender)
        else:
            sender = next((x for x in recs.values() if x.peer == u.ino and not x.name), None)
        if sender is None:
            return socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM), u
        if sender.peer == u.ino and sender.state == TCP_ESTABLISHED:
            return self.socks[sender.ino], None
        return self.socks[sender.ino], u

    def _file_in_flight(self, file_id, what):
        """pyckpt's fd on a file a queued message carries (a socket it built, else opened now);
        registered, so a process holding the same description takes it from pyckpt."""
        entry = self.image.files[file_id]
        if entry.kind == files_pb2.OpenFile.UNIX_SOCKET:
            return self.socks[entry.unix.ino].fileno()
        if file_id not in self.in_flight:
            self.in_flight[file_id] = inflight.open_local(entry, f"{what}: a file in flight")
            fcntl.fcntl(self.in_flight[file_id], fcntl.F_SETFL, entry.flags & status.SETFL_MASK & ~os.O_ASYNC)
            self.registry[file_id] = (os.getpid(), self.in_flight[file_id])
        return self.in_flight[file_id]

    def _refill(self, u, name, sender=None):
        """Send the messages of image file `name` to u (from `sender`: to whom u is connected)."""
        queue = self.image.reader.read_message(name, files_pb2.UnixQueue)
        what = f"socket:[{u.ino}] ({show_name(u.name)})"
        for message in queue.messages:
            s, to = (sender, None) if sender is not None else self._sender(u, message)
            if s is None:
                raise RestoreConflict(f"{what}: no socket to refill its queue from")
            carried = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack(f"={len(message.files)}i",
                        *(self._file_in_flight(file_id, what) for file_id in message.files)))] if message.files else []
            try:
                if to is None:
                    sent = s.sendmsg([message.data], carried, socket.MSG_DONTWAIT)
                else:
                    with _in_dir(to):
                        sent = s.sendmsg([message.data], carried, socket.MSG_DONTWAIT, to.name)
            except OSError as err:
                raise RestoreConflict(f"{what}: refilling its queue failed: {err.strerror}") from err
            if sent != len(message.data):
                raise RestoreConflict(f"{what}: short write refilling its queue ({sent} of {len(message.data)})")

