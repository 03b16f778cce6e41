"""Established TCP connections through the kernel's TCP repair mode.

A socket in repair mode (TCP_REPAIR, CAP_NET_ADMIN) sends nothing: no data,
no ACK, no FIN or RST when closed. Its queues can be read with MSG_PEEK
(TCP_REPAIR_QUEUE picks the send or the receive queue) and its sequence
numbers with TCP_QUEUE_SEQ, and a new socket in repair mode can be given
them back: TCP_QUEUE_SEQ before connect(), which then makes the connection
ESTABLISHED without a handshake; the negotiated options (MSS, window scale,
SACK, timestamps) with TCP_REPAIR_OPTIONS; the timestamp clock with
TCP_TIMESTAMP; data written to the receive queue lands there as received,
data written to the send queue counts as sent and not acknowledged (the
retransmit timer sends it again); TCP_REPAIR_WINDOW the window state.
Bytes the connection had not sent yet are written after repair mode is off,
as a program would.

The dumped socket stays in repair mode when its process is killed, so the
peer sees nothing; with -R it leaves repair mode again before the process
runs on. Either way the packets of the connection are dropped meanwhile
(pyckpt/netblock.py): an ACK or data crossing a socket under repair would
make what was read out of date.
"""

import fcntl
import os
import socket
import struct

from ..errors import RestoreConflict, UnsupportedState
from ..images.proto import files_pb2

TCP_INFO, TCP_MAXSEG = 11, 2
TCP_REPAIR, TCP_REPAIR_QUEUE, TCP_QUEUE_SEQ, TCP_REPAIR_OPTIONS = 19, 20, 21, 22
TCP_TIMESTAMP, TCP_REPAIR_WINDOW = 24, 29
TCP_NO_QUEUE, TCP_RECV_QUEUE, TCP_SEND_QUEUE = 0, 1, 2
TCPOPT_MSS, TCPOPT_WINDOW, TCPOPT_SACK_PERM, TCPOPT_TIMESTAMP = 2, 3, 4, 8
TCPI_OPT_TIMESTAMPS, TCPI_OPT_SACK, TCPI_OPT_WSCALE = 1, 2, 4
SIOCINQ, SIOCOUTQ, SIOCOUTQNSD = 0x541B, 0x5411, 0x894B
SO_PEEK_OFF = 42
_WINDOW = struct.Struct("=5I")


def _ioctl_int(s, request):
    return struct.unpack("=i", fcntl.ioctl(s.fileno(), request, b"\0" * 4))[0]


def repair(s, on):
    s.setsockopt(socket.SOL_TCP, TCP_REPAIR, 1 if on else 0)


def available():
    """(ok, detail): can this process put a TCP socket in repair mode?"""
    try:
        with socket.socket() as s:
            repair(s, True)
        return True, "TCP_REPAIR works (established connections: --tcp-established)"
    except OSError as err:
        return False, f"TCP_REPAIR: {err.strerror} (needs CAP_NET_ADMIN and Linux 3.5+)"


def _peek(s, queue, length, what, label):
    s.setsockopt(socket.SOL_TCP, TCP_REPAIR_QUEUE, queue)
    data = b""
    if length:
        # a peek starts at the program's SO_PEEK_OFF, if it set one: from 0 here, then its own again
        try:
            peek_off = s.getsockopt(socket.SOL_SOCKET, SO_PEEK_OFF)
        except OSError:
            peek_off = -1       # TCP has SO_PEEK_OFF since Linux 6.10
        if peek_off > 0:
            s.setsockopt(socket.SOL_SOCKET, SO_PEEK_OFF, 0)
        try:
            data = s.recv(length, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        finally:
            if peek_off > 0:
                s.setsockopt(socket.SOL_SOCKET, SO_PEEK_OFF, peek_off)
    if len(data) != length:
        raise UnsupportedState(f"{what}: read {len(data)} bytes of its {label} queue, the kernel reports {length}")
    return data


def dump(s, what):
    """A TcpConnection of the established socket `s`, which is left in repair mode (the caller's to undo)."""
    repair(s, True)
    conn = files_pb2.TcpConnection()
    inq, outq = _ioctl_int(s, SIOCINQ), _ioctl_int(s, SIOCOUTQ)
    unsent = _ioctl_int(s, SIOCOUTQNSD)
    info = s.getsockopt(socket.SOL_TCP, TCP_INFO, 8)
    options, wscale = info[5], info[6]
    conn.timestamps = bool(options & TCPI_OPT_TIMESTAMPS)
    conn.sack = bool(options & TCPI_OPT_SACK)
    conn.wscale = bool(options & TCPI_OPT_WSCALE)
    conn.snd_wscale, conn.rcv_wscale = wscale & 0xF, wscale >> 4
    conn.mss = s.getsockopt(socket.SOL_TCP, TCP_MAXSEG)
    if conn.timestamps:
        conn.timestamp = s.getsockopt(socket.SOL_TCP, TCP_TIMESTAMP) & 0xFFFFFFFF
    conn.window = s.getsockopt(socket.SOL_TCP, TCP_REPAIR_WINDOW, _WINDOW.size)
    conn.recv_queue = _peek(s, TCP_RECV_QUEUE, inq, what, "receive")
    rcv_nxt = s.getsockopt(socket.SOL_TCP, TCP_QUEUE_SEQ) & 0xFFFFFFFF
    conn.send_queue = _peek(s, TCP_SEND_QUEUE, outq, what, "send")
    write_seq = s.getsockopt(socket.SOL_TCP, TCP_QUEUE_SEQ) & 0xFFFFFFFF
    s.setsockopt(socket.SOL_TCP, TCP_REPAIR_QUEUE, TCP_NO_QUEUE)
    conn.rcv_seq = (rcv_nxt - inq) & 0xFFFFFFFF
    conn.snd_seq = (write_seq - outq) & 0xFFFFFFFF
    conn.unsent = unsent
    return conn


def _send_all(s, data, what, label):
    view = memoryview(data)
    while view:
        try:
            sent = s.send(view, socket.MSG_DONTWAIT)
        except OSError as err:
            raise RestoreConflict(f"{what}: refilling its {label} queue failed after "
                                  f"{len(data) - len(view)} of {len(data)} bytes: {err.strerror}") from err
        view = view[sent:]


def restore(s, conn, local, remote, what):
    """Make the fresh socket `s` (options already set) the connection local -> remote again, out of repair mode."""
    repair(s, True)
    try:
        s.setsockopt(socket.SOL_TCP, TCP_REPAIR_QUEUE, TCP_SEND_QUEUE)
        s.setsockopt(socket.SOL_TCP, TCP_QUEUE_SEQ, struct.pack("=I", conn.snd_seq))
        s.setsockopt(socket.SOL_TCP, TCP_REPAIR_QUEUE, TCP_RECV_QUEUE)
        s.setsockopt(socket.SOL_TCP, TCP_QUEUE_SEQ, struct.pack("=I", conn.rcv_seq))
        s.bind(local)
        s.connect(remote)
        opts = [(TCPOPT_MSS, conn.mss)]
        if conn.wscale:
            opts.append((TCPOPT_WINDOW, conn.snd_wscale | conn.rcv_wscale << 16))
        if conn.sack:
            opts.append((TCPOPT_SACK_PERM, 0))
        if conn.timestamps:
            opts.append((TCPOPT_TIMESTAMP, 0))
        s.setsockopt(socket.SOL_TCP, TCP_REPAIR_OPTIONS, b"".join(struct.pack("=II", *o) for o in opts))
        if conn.timestamps:
            s.setsockopt(socket.SOL_TCP, TCP_TIMESTAMP, struct.pack("=I", conn.timestamp))
        s.setsockopt(socket.SOL_TCP, TCP_REPAIR_QUEUE, TCP_RECV_QUEUE)
        _send_all(s, conn.recv_queue, what, "receive")
        s.setsockopt(socket.SOL_TCP, TCP_REPAIR_QUEUE, TCP_SEND_QUEUE)
        sent = len(conn.send_queue) - conn.unsent
        _send_all(s, conn.send_queue[:sent], what, "send")
        s.setsockopt(socket.SOL_TCP, TCP_REPAIR_QUEUE, TCP_NO_QUEUE)
        if conn.window:
            s.setsockopt(socket.SOL_TCP, TCP_REPAIR_WINDOW, conn.window)
    except OSError as err:
        raise RestoreConflict(f"{what}: cannot rebuild the connection in TCP repair mode: {err.strerror}") from err
    finally:
        repair(s, False)
    _send_all(s, conn.send_queue[sent:], what, "send")


class Guard:
    """Takes the sockets out of repair mode again should pyckpt die before it does.

    A forked child holds its own copy of each socket and a pipe from pyckpt:
    end of file with no word first means pyckpt died mid-dump, and the child
    turns repair mode off (and SO_REUSEADDR back on where it was, since leaving
    repair mode clears it) so that the processes, thawed by their tracer's
    death, keep talking. `release()` says the sockets are taken care of.
    """

    def __init__(self, socks_and_reuse):
        read_end, self._write_end = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:       # the guard: nothing of pyckpt's but these (/dev/crak, nft's pipe...)
            keep = sorted({read_end} | {s.fileno() for s, _reuse in socks_and_reuse})
            low = 0
            for fd in keep:
                os.closerange(low, fd)
                low = fd + 1
            os.closerange(low, os.sysconf("SC_OPEN_MAX"))
            try:
                word = os.read(read_end, 1)
                if not word:
                    for s, reuse in socks_and_reuse:
                        try:
                            repair(s, False)
                            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, reuse)
                        except OSError:
                            pass
            finally:
                os._exit(0)
        os.close(read_end)

    def release(self):
        if self.pid:
            os.write(self._write_end, b"k")
            os.close(self._write_end)
            os.waitpid(self.pid, 0)
            self.pid = 0
