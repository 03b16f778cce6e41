"""Reading a unix socket's receive queue without consuming it, and the shape the image keeps it in.

Sources read queues their own way (the ptrace source with peek_queue here,
crak.ko in place); both hand back [(data, sender name, fds)] in arrival
order, and shape_queue makes of it what the image keeps. fds are pyckpt's
copies of the files a message carries (SCM_RIGHTS), closed by the caller.
"""

import errno
import os
import socket
import struct

from .. import linux
from ..errors import PyckptError, UnsupportedState

SO_PEEK_OFF = 42
TYPE_NAMES = {socket.SOCK_STREAM: "stream", socket.SOCK_DGRAM: "dgram", socket.SOCK_SEQPACKET: "seqpacket"}
_PEEK_START = 1 << 16


class FilesInFlight(Exception):
    """A source's queue reader met a message carrying files it cannot copy (peek_queue can)."""


def grab(pid, fd):
    """A socket object in pyckpt for the socket at `pid`'s fd (the same socket, not a copy)."""
    return socket.socket(fileno=linux.pidfd_getfd(pid, fd))


def name_of(addr):
    if isinstance(addr, str):
        return os.fsencode(addr)
    return bytes(addr or b"")


def peek_queue(pid, fd, sock_type, shut_rd, what, stream_segments=False):
    """[(data, sender name, fds)] queued on the socket at `pid`'s fd, oldest first, left in place.

    MSG_PEEK from SO_PEEK_OFF 0 onward; a stream queue comes back as its
    bytes, split where a segment carries files (shape_queue). The socket's own peek offset is put back afterwards. A socket
    shut down for reading answers an empty read at the end of its queue
    instead of EAGAIN, which ends the queue there (`shut_rd`). A stream read
    stops after the segment carrying files, but where that segment begins
    no peek tells: only a caller that knows the segments (`stream_segments`,
    see attach_files) may read files on a stream.
    """
    with grab(pid, fd) as s:
        old = s.getsockopt(socket.SOL_SOCKET, SO_PEEK_OFF)
        try:
            s.setsockopt(socket.SOL_SOCKET, SO_PEEK_OFF, 0)
        except OSError as err:
            if err.errno != errno.EOPNOTSUPP:
                raise
            first = _peek_one(s, 1, what)
            close_all(first[3] if first else ())
            if first is None or (shut_rd and not first[0]):
                return []
            raise UnsupportedState(f"{what} has queued messages and this kernel has no SO_PEEK_OFF for "
                                   f"unix {TYPE_NAMES[sock_type]} sockets: they cannot be read without "
                                   "consuming them") from None
        try:
            messages, offset, size = [], 0, _PEEK_START
            while True:
                got = _peek_one(s, size, what)
                if got is None:
                    break
                data, sender, truncated, fds = got
                if truncated:
                    close_all(fds)
                    size *= 4
                    s.setsockopt(socket.SOL_SOCKET, SO_PEEK_OFF, offset)
                    continue
                if not data and (shut_rd or sock_type == socket.SOCK_STREAM):
                    close_all(fds)
                    break               # end of file
                messages.append((data, sender, fds))
                if fds and sock_type == socket.SOCK_STREAM and not stream_segments:
                    raise UnsupportedState(f"{what} has file descriptors in flight (SCM_RIGHTS) on a stream: "
                                           "a peek cannot tell where the segment carrying them begins; dump "
                                           "with --backend kmod")
                offset += len(data)
        except BaseException:
            close_all(fd for message in messages for fd in message[2])
            raise
        finally:
            s.setsockopt(socket.SOL_SOCKET, SO_PEEK_OFF, old)
    return shape_queue(messages, sock_type)


def close_all(fds):
    for fd in fds:
        os.close(fd)


def attach_files(segments, peeked, sock_type, what):
    """The queue from a source's [(data, sender, carries files)] of every segment and
    peek_queue's reading of it: its files go on the segments that carry them."""
    carried = [fds for _data, _sender, fds in peeked if fds]
    if len(carried) != sum(1 for segment in segments if segment[2]):
        close_all(fd for fds in carried for fd in fds)
        raise PyckptError(f"{what}: its queue changed while it was read")
    carried = iter(carried)
    return shape_queue([(data, sender, next(carried) if has_files else [])
                        for data, sender, has_files in segments], sock_type)


def shape_queue(messages, sock_type):
    """A queue as the image keeps it, from [(data, sender name, fds in flight)] in
    arrival order, however a source read it: a stream queue is one message per
    segment that carries files (and one for the bytes before each), and only
    datagrams keep their sender's name."""
    if sock_type == socket.SOCK_STREAM:
        out = []
        for data, _sender, fds in messages:
            if out and not out[-1][2] and not fds:
                out[-1] = (out[-1][0] + data, b"", [])
            else:
                out.append((data, b"", fds))
        return out
    if sock_type == socket.SOCK_DGRAM:
        return messages
    return [(data, b"", fds) for data, _sender, fds in messages]


def _peek_one(s, size, what):
    """(data, sender, truncated, fds) of the next message from the peek offset, or None when none
    is left; fds: copies, in pyckpt, of the files it carries (SCM_RIGHTS), for the caller to close."""
    try:
        data, ancdata, flags, addr = s.recvmsg(size, socket.CMSG_SPACE(253 * 4),
                                               socket.MSG_PEEK | socket.MSG_DONTWAIT | socket.MSG_CMSG_CLOEXEC)
    except BlockingIOError:
        return None
    fds = []
    for level, kind, payload in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.extend(struct.unpack(f"={len(payload) // 4}i", payload[:len(payload) // 4 * 4]))
    if flags & socket.MSG_CTRUNC:
        close_all(fds)
        raise UnsupportedState(f"{what} has more control data in flight than pyckpt can read")
    return data, name_of(addr), bool(flags & socket.MSG_TRUNC), fds
