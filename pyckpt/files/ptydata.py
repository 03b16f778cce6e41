"""Bytes waiting in a pty: typed into the master and not yet read at the slave
("input"), or written to the slave and not yet read at the master ("output").

A tty has no way to read its buffers without consuming them, so the dump
reads them (the tree is frozen) and writes them straight back, the same way
restore puts them into the new pty: input through the master, output through
the slave. The bytes went through the line discipline once already, so while
they are written again the slave's termios is made not to touch them a second
time (no echo, no signals, no input mapping, no output processing; the
editing characters moved to bytes the data does not hold), then set back.
IXON and the start/stop characters are left alone: changing them would queue
a packet-mode status byte. In canonical mode the input is read line by line;
a line that does not end in a newline was pushed by the EOF character (or
ended by EOL/EOL2), and is pushed again. (A partial line typed into a
canonical slave is invisible from user space: it stays where it is.)
"""

import fcntl
import os
import struct
import termios
import time

from ..errors import PyckptError, UnsupportedState

_MAX_READS = 1 << 16
_SETTLE_S = 5.0
_INPUT_MAPPING = (termios.ICRNL | termios.INLCR | termios.IGNCR | termios.ISTRIP | termios.IUCLC
                  | termios.BRKINT | termios.PARMRK | termios.INPCK)
_LOCAL_EFFECTS = (termios.ECHO | termios.ECHOE | termios.ECHOK | termios.ECHONL | termios.ISIG | termios.IEXTEN
                  | termios.ECHOCTL | termios.ECHOKE | termios.ECHOPRT)
_EDITING = (termios.VERASE, termios.VKILL, termios.VWERASE, termios.VREPRINT, termios.VLNEXT, termios.VEOL,
            termios.VEOL2, termios.VDISCARD)


def read_input(slave, canonical, what):
    """The bytes waiting at the slave, consumed: [line] in canonical mode, else [everything]."""
    reads = _drain(slave, what)
    if not canonical:
        return [b"".join(reads)] if reads else []
    return reads


def read_output(master, packet_mode, what):
    """The bytes waiting at the master, consumed (none in packet mode: refused if any)."""
    if packet_mode:
        raise UnsupportedState(f"{what} has unread output waiting at its master in packet mode; not supported")
    return b"".join(_drain(master, what))


def _drain(fd, what):
    """Every read that returns data until EAGAIN, with O_NONBLOCK on the (shared) description
    only meanwhile (the tree is frozen: nobody sees it)."""
    flags = fcntl.fcntl(fd, fcntl.F_GETFL)
    fcntl.fcntl(fd, fcntl.F_SETFL, flags | os.O_NONBLOCK)
    reads = []
    try:
        for _ in range(_MAX_READS):
            try:
                reads.append(os.read(fd, 1 << 16))
            except BlockingIOError:
                return reads
        raise PyckptError(f"{what}: its buffer does not run dry")
    finally:
        fcntl.fcntl(fd, fcntl.F_SETFL, flags)


def put_back(master, slave, lines, output, what):
    """Write saved input (through the master) and output (through the slave) into a pty,
    with the slave's termios made to leave them as they are meanwhile."""
    if not lines and not output:
        return
    saved = termios.tcgetattr(slave)
    quiet = [saved[0] & ~_INPUT_MAPPING, saved[1] & ~termios.OPOST, saved[2], saved[3] & ~_LOCAL_EFFECTS,
             saved[4], saved[5], list(saved[6])]
    canonical = bool(saved[3] & termios.ICANON)
    unused = [bytes([b]) for b in range(1, 256) if b != ord("\n") and all(bytes([b]) not in line for line in lines)]
    if canonical and len(unused) < 2:
        raise PyckptError(f"{what}: its waiting input uses every byte value; cannot write it back as lines")
    if canonical:
        for index in _EDITING:
            quiet[6][index] = unused[0]
        quiet[6][termios.VEOF] = unused[1]
    termios.tcsetattr(slave, termios.TCSANOW, quiet)
    try:
        waiting = _count(slave)
        for line in lines:
            _write_all(master, line + (unused[1] if canonical and not line.endswith(b"\n") else b""), what)
        # the line discipline takes input in from a work queue: under the quiet termios, not after
        _wait_for(slave, waiting + sum(len(line) for line in lines), what)
        _write_all(slave, output, what)
    finally:
        termios.tcsetattr(slave, termios.TCSANOW, saved)


def _count(fd):
    return struct.unpack("=i", fcntl.ioctl(fd, termios.FIONREAD, b"\0" * 4))[0]


def _wait_for(fd, count, what):
    deadline = time.monotonic() + _SETTLE_S
    while _count(fd) < count:
        if time.monotonic() > deadline:
            raise PyckptError(f"{what}: the bytes written back did not arrive ({_count(fd)} of {count})")
        time.sleep(0.001)


def _write_all(fd, data, what):
    while data:
        try:
            n = os.write(fd, data)
        except OSError as err:
            raise PyckptError(f"{what}: cannot write its waiting bytes back: {err.strerror}") from err
        data = data[n:]
