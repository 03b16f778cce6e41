"""Pseudo-terminal pairs created inside the dumped tree (a screen/tmux-like
master holder and a session on the slave).

Dump: every fd on /dev/ptmx (its fdinfo names the pty index) or /dev/pts/N
is noted; once every process is seen, `finish` looks at each pty through a
copy of the master fd taken with pidfd_getfd (the master's termios, window
size and terminal ioctls act on the slave) and a copy of one slave fd, and
at /proc/PID/stat (controlling terminal, foreground group) of the dumped
processes. Both sources go through here, so their images are the same.
Refused, naming the pty: an end (or a process having it as controlling
terminal) outside the dump, a pty with no slave fd in the dump. Bytes
waiting in either direction are read and written straight back (a tty's
buffers cannot be read without consuming them), and put into the new pty
at restore: files/ptydata.py.

Restore: `RestoredPtys` opens /dev/ptmx in pyckpt itself until devpts hands
out the same index (it always gives the lowest free one), applies the
settings from pyckpt, and the targets take the master with pidfd_getfd and
reopen the slave by path. The session leader makes the slave its controlling
terminal right after setsid, before any member of its session is forked
(children inherit it at fork); the foreground group is set once the process
groups exist; exclusive mode and the lock come last, after every reopen.
"""

import errno
import fcntl
import logging
import os
import select
import stat
import struct
import termios

from .. import arch as archmod
from .. import linux, proc
from ..errors import PyckptError, RestoreConflict, UnsupportedState
from ..images.proto import files_pb2
from . import ptydata, status
from .regular import file_ref

log = logging.getLogger(__name__)

PTMX_RDEV = os.makedev(5, 2)
DEV_TTY_RDEV = os.makedev(5, 0)     # /dev/tty: the opener's controlling terminal
_SLAVE_MAJORS = range(136, 144)       # UNIX98_PTY_SLAVE_MAJOR and the 7 after it
_N_TTY = 0
_WINSIZE = "=4H"


def ioctl_numbers(arch=None):
    """The pty ioctls Python's termios module lacks, encoded for `arch` (default: host)."""
    def ioc(direction, nr):
        return archmod.ioc(direction, ord("T"), nr, 4, arch)    # all take an int
    return {"TIOCGPTN": ioc("r", 0x30), "TIOCSPTLCK": ioc("w", 0x31), "TIOCGPKT": ioc("r", 0x38),
            "TIOCGPTLCK": ioc("r", 0x39), "TIOCGEXCL": ioc("r", 0x40),
            "TIOCGPTPEER": archmod.ioc("", ord("T"), 0x41, 0, arch)}


_IOCTL = ioctl_numbers()


def is_master(st):
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == PTMX_RDEV


def is_slave(st):
    return stat.S_ISCHR(st.st_mode) and is_slave_rdev(st.st_rdev)


def is_slave_rdev(rdev):
    return rdev != 0 and os.major(rdev) in _SLAVE_MAJORS


def is_dev_tty(st):
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == DEV_TTY_RDEV


def slave_index(rdev):
    return (os.major(rdev) - _SLAVE_MAJORS.start) * 256 + os.minor(rdev)


def slave_rdev(index):
    return os.makedev(_SLAVE_MAJORS.start + index // 256, index % 256)


def master_index(info, what):
    for line in info.get("extra", ()):
        key, _, value = line.partition(":")
        if key == "tty-index":
            return int(value)
    raise UnsupportedState(f"{what}: a pty master whose fdinfo gives no tty-index (kernel too old)")


def _int_ioctl(fd, request):
    return struct.unpack("=i", fcntl.ioctl(fd, request, b"\0" * 4))[0]


# -- dump -----------------------------------------------------------------------


def describe_master(entry, link, info, st, what):
    entry.kind = files_pb2.OpenFile.PTY_MASTER
    entry.pty_index = master_index(info, what)
    entry.rdev = st.st_rdev
    file_ref(entry.file, link, st)


def describe_slave(entry, link, st):
    """A pty slave; `PtyTable.finish` turns it into a --shell-job TTY if its master is outside."""
    entry.kind = files_pb2.OpenFile.PTY_SLAVE
    entry.pty_index = slave_index(st.st_rdev)
    entry.rdev = st.st_rdev
    file_ref(entry.file, link, st)


class PtyTable:
    """The pty ends seen while adding processes, checked and described at `finish`."""

    def __init__(self, shell_job):
        self.shell_job = shell_job
        self.masters = {}      # index -> [(pid, fd, file id)]
        self.slaves = {}       # index -> [(pid, fd, file id)]: /dev/pts/N, and /dev/tty opened on it

    def add(self, pid, fd, entry, index=None):
        table = self.masters if entry.kind == files_pb2.OpenFile.PTY_MASTER else self.slaves
        table.setdefault(entry.pty_index if index is None else index, []).append((pid, fd, entry.id))

    def finish(self, files, dumped_pids):
        """Describe each pty into `files.ptys`; refuse what cannot be restored. Targets are frozen."""
        dumped = set(dumped_pids)
        entries = {e.id: e for e in files.files}
        stats = {p: proc.read_stat(p) for p in dumped}
        cttys = {s.tty_nr for s in stats.values()}
        for index, slaves in sorted(self.slaves.items()):
            if index in self.masters:
                continue
            if self.shell_job:
                # The job's terminal becomes the restoring shell's; another pty stays that pty (by path).
                kind = files_pb2.OpenFile.TTY if slave_rdev(index) in cttys else files_pb2.OpenFile.CHARDEV
                for _pid, _fd, file_id in slaves:
                    entries[file_id].kind = kind
                    entries[file_id].ClearField("pty_index")
                continue
            pid, fd, file_id = slaves[0]
            master = _outside_holders({index}, dumped).get(index, {}).get("master")
            where = (f"process {proc.holder_description(master[0])} fd {master[1]}" if master
                     else "no process pyckpt can see")
            raise UnsupportedState(
                f"process {pid} fd {fd} ({entries[file_id].file.path}) is a terminal whose master is held by "
                f"{where}, outside the dump; dump with --shell-job to reattach it to the restoring shell's terminal")
        outside = _outside_holders(set(self.masters), dumped)
        for index, masters in sorted(self.masters.items()):
            files.ptys.append(self._describe(index, masters, entries[masters[0][2]], self.slaves.get(index, []),
                                             stats, outside.get(index, {})))

    def _describe(self, index, masters, master_entry, slaves, stats, outside):
        pid, fd, _file_id = masters[0]
        slave_path = os.path.join(_pts_dir(master_entry.file.path), str(index))
        what = f"pty {slave_path} (master: process {pid} fd {fd})"
        for role in ("master", "slave", "controlling"):
            if role in outside:
                opid, ofd = outside[role]
                held = ("has it as its controlling terminal" if role == "controlling"
                        else f"holds its {role} at fd {ofd}")
                raise UnsupportedState(f"{what}: process {proc.holder_description(opid)}, outside the dump, {held}")
        if not slaves:
            raise UnsupportedState(f"{what}: no process in the dump has its slave open; not supported")
        spid, sfd, _slave_entry = slaves[0]
        rdev = slave_rdev(index)
        pty = files_pb2.Pty(index=index, ptmx_path=master_entry.file.path, slave_path=slave_path)
        self._controlling(pty, what, rdev, stats)
        master = _take_fd(pid, fd, what)
        try:
            slave = _take_fd(spid, sfd, what)
            try:
                _check_no_status(master, what)
                attrs = termios.tcgetattr(master)
                cc = bytes(c if isinstance(c, int) else c[0] for c in attrs[6])
                pty.termios.iflag, pty.termios.oflag, pty.termios.cflag, pty.termios.lflag = attrs[:4]
                pty.termios.ispeed, pty.termios.ospeed = attrs[4:6]
                pty.termios.cc = cc
                pty.rows, pty.cols, pty.xpixel, pty.ypixel = struct.unpack(
                    _WINSIZE, fcntl.ioctl(master, termios.TIOCGWINSZ, b"\0" * 8))
                pty.packet_mode = bool(_int_ioctl(master, _IOCTL["TIOCGPKT"]))
                pty.locked = bool(_int_ioctl(master, _IOCTL["TIOCGPTLCK"]))
                pty.master_ldisc = _int_ioctl(master, termios.TIOCGETD)
                pty.slave_ldisc = _int_ioctl(slave, termios.TIOCGETD)
                pty.exclusive = bool(_int_ioctl(slave, _IOCTL["TIOCGEXCL"]))
                status.save_attrs(pty.slave_attrs, os.fstat(slave))
                _save_waiting(pty, master, slave, what)
            finally:
                os.close(slave)
        finally:
            os.close(master)
        log.debug("%s: %s", what, pty)
        return pty

    @staticmethod
    def _controlling(pty, what, rdev, stats):
        """Which dumped session has the pty as controlling terminal, and its foreground group."""
        holders = {p: s for p, s in stats.items() if s.tty_nr == rdev}
        if not holders:
            return
        sessions = {s.sid for s in holders.values()}
        if len(sessions) != 1:
            raise UnsupportedState(f"{what} is the controlling terminal of several sessions {sorted(sessions)}")
        sid = sessions.pop()
        if sid not in stats:
            raise UnsupportedState(f"{what} is the controlling terminal of session {sid}, whose leader "
                                   "is not a live process of the dump")
        for p, s in stats.items():
            if s.sid == sid and p not in holders:
                raise UnsupportedState(f"{what}: process {p} of session {sid} has dropped it as its controlling "
                                       "terminal (TIOCNOTTY); restore would give it back")
        pty.session = sid
        fg = next(iter(holders.values())).tpgid
        if fg > 0:
            if fg not in {s.pgid for s in stats.values() if s.sid == sid}:
                raise UnsupportedState(f"{what}: its foreground process group {fg} has no member in the dump")
            pty.foreground = fg


def _pts_dir(ptmx_path):
    """The devpts folder of a master opened at ptmx_path (/dev/ptmx serves /dev/pts)."""
    return "/dev/pts" if ptmx_path == "/dev/ptmx" else os.path.dirname(ptmx_path)


def _take_fd(pid, fd, what):
    """A copy of pid's fd in pyckpt (pidfd_getfd): the same open file, no open() side effects."""
    try:
        return linux.pidfd_getfd(pid, fd)
    except OSError as err:
        raise UnsupportedState(f"{what}: cannot look at fd {fd} of process {pid}: {err.strerror}") from err


def _save_waiting(pty, master, slave, what):
    """Bytes waiting in either direction: read (consumed), written straight back (files/ptydata.py)."""
    to_master = _int_ioctl(master, termios.FIONREAD)   # written to the slave, not yet read at the master
    to_slave = _int_ioctl(slave, termios.FIONREAD)     # written to the master, not yet read at the slave
    if not to_master and not to_slave:
        return
    # the output first: in packet mode it is refused, before anything is consumed
    output = ptydata.read_output(master, pty.packet_mode, what) if to_master else b""
    lines = []
    try:
        if to_slave:
            lines = ptydata.read_input(slave, bool(termios.tcgetattr(slave)[3] & termios.ICANON), what)
    finally:
        ptydata.put_back(master, slave, lines, output, what)
    pty.waiting_input.extend(lines)
    pty.waiting_output = output


def _check_no_status(master, what):
    poller = select.poll()
    poller.register(master, select.POLLPRI)
    if any(ev & select.POLLPRI for _fd, ev in poller.poll(0)):
        raise UnsupportedState(f"{what}: a packet-mode status byte is waiting at the master; not supported")


def _outside_holders(indexes, dumped):
    """{index: {"master"|"slave"|"controlling": (pid, fd)}} for processes outside the dump."""
    found = {}
    if not indexes:
        return found
    slave_rdevs = {slave_rdev(i): i for i in indexes}
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) in dumped:
            continue
        pid = int(name)
        try:
            tty_nr = proc.read_stat(pid).tty_nr
            fds = os.listdir(f"/proc/{pid}/fd")
        except (OSError, PyckptError):
            continue
        if tty_nr in slave_rdevs:
            found.setdefault(slave_rdevs[tty_nr], {}).setdefault("controlling", (pid, -1))
        for fd in fds:
            try:
                st = os.stat(f"/proc/{pid}/fd/{fd}")
                if st.st_rdev in slave_rdevs and is_slave(st):
                    found.setdefault(slave_rdevs[st.st_rdev], {}).setdefault("slave", (pid, int(fd)))
                elif is_master(st):
                    index = master_index(proc.read_fdinfo(pid, int(fd)), "")
                    if index in indexes:
                        found.setdefault(index, {}).setdefault("master", (pid, int(fd)))
            except (OSError, PyckptError):
                continue
    return found


# -- restore ----------------------------------------------------------------------


def check_free(image):
    """Before anything is created: every pty index of the image must be free here."""
    for pty in image.ptys.values():
        if os.path.exists(pty.slave_path):
            raise RestoreConflict(f"pty {pty.slave_path} of the image is in use on this machine")


class RestoredPtys:
    """The image's pty masters, opened in pyckpt with their old indexes, until the targets took them."""

    def __init__(self, image):
        self.image = image
        self.masters = {}        # index -> master fd in pyckpt
        self.held_slaves = []    # slaves opened to put waiting bytes back: kept open until the targets have theirs

    def open_all(self):
        masters = {e.pty_index: e for e in self.image.files.values() if e.kind == files_pb2.OpenFile.PTY_MASTER}
        spare = []               # lower free indexes, held until every wanted one is ours
        try:
            for pty in sorted(self.image.ptys.values(), key=lambda p: p.index):
                flags = (masters[pty.index].flags & ~status.NOT_ON_OPEN) | os.O_NOCTTY | os.O_CLOEXEC
                while pty.index not in self.masters:
                    fd = os.open(pty.ptmx_path, flags)
                    got = _int_ioctl(fd, _IOCTL["TIOCGPTN"])
                    if got == pty.index:
                        self.masters[got] = fd
                    elif got < pty.index:
                        spare.append(fd)
                    else:
                        os.close(fd)
                        raise RestoreConflict(f"pty {pty.slave_path} of the image is in use on this machine "
                                              f"(devpts handed out {got})")
                self._apply(pty, self.masters[pty.index])
                if pty.waiting_input or pty.waiting_output:
                    slave = self.open_peer(pty.index, os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
                    self.held_slaves.append(slave)
                    ptydata.put_back(self.masters[pty.index], slave, list(pty.waiting_input), pty.waiting_output,
                                     f"pty {pty.slave_path}")
                if pty.HasField("slave_attrs"):
                    status.apply_attrs(pty.slave_path, pty.slave_attrs)
        finally:
            for fd in spare:
                os.close(fd)

    @staticmethod
    def _apply(pty, fd):
        """Settings kept on the pair, set through the master before any process sees it."""
        fcntl.ioctl(fd, _IOCTL["TIOCSPTLCK"], struct.pack("=i", 0))
        t = pty.termios
        termios.tcsetattr(fd, termios.TCSANOW, [t.iflag, t.oflag, t.cflag, t.lflag, t.ispeed, t.ospeed, list(t.cc)])
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack(_WINSIZE, pty.rows, pty.cols, pty.xpixel, pty.ypixel))
        if pty.master_ldisc != _N_TTY:
            fcntl.ioctl(fd, termios.TIOCSETD, struct.pack("=i", pty.master_ldisc))
        # After termios: turning packet mode on clears a status byte a termios change may have queued.
        if pty.packet_mode:
            fcntl.ioctl(fd, termios.TIOCPKT, struct.pack("=i", 1))

    def master_fd(self, index):
        return self.masters[index]

    def open_peer(self, index, flags):
        """A new slave fd in pyckpt opened through the master (TIOCGPTPEER, as openpty() does):
        unlike an open of its path it has no O_LARGEFILE, and F_SETFL cannot clear that.
        Not O_CLOEXEC: that would show in its F_GETFL; the caller closes it at once."""
        return fcntl.ioctl(self.masters[index], _IOCTL["TIOCGPTPEER"], flags)

    def take_controlling(self, pr):
        """In a new session leader, before its session's members are forked: TIOCSCTTY."""
        for pty in self.image.ptys.values():
            if pty.session == pr.pid:
                tmp = self._open_slave(pr, pty)
                pr.inj.call("ioctl", tmp, termios.TIOCSCTTY, 0, detail=f"{pty.slave_path} controls session {pr.pid}")
                pr.inj.call("close", tmp)

    def set_foreground(self, procs):
        """Once the process groups exist: each pty's foreground group, set from its session leader."""
        for pty in self.image.ptys.values():
            if not pty.foreground:
                continue
            leader = procs[pty.session]
            tmp = self._open_slave(leader, pty)
            leader.inj.call("ioctl", tmp, termios.TIOCSPGRP, leader.scratch.put(struct.pack("=i", pty.foreground)),
                            detail=f"foreground group {pty.foreground} of {pty.slave_path}")
            leader.inj.call("close", tmp)

    @staticmethod
    def _open_slave(pr, pty):
        pr.scratch.reset()
        path = pr.scratch.put_str(pty.slave_path)
        return pr.inj.call("openat", linux.AT_FDCWD, path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK, 0,
                           detail=pty.slave_path)

    def finish(self):
        """After every fd is in place (the slave reopened where it was open): slave modes, then the lock."""
        for pty in self.image.ptys.values():
            if pty.exclusive or pty.slave_ldisc != _N_TTY:
                slave = os.open(pty.slave_path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK | os.O_CLOEXEC)
                try:
                    if pty.slave_ldisc != _N_TTY:
                        fcntl.ioctl(slave, termios.TIOCSETD, struct.pack("=i", pty.slave_ldisc))
                    if pty.exclusive:
                        fcntl.ioctl(slave, termios.TIOCEXCL)
                finally:
                    os.close(slave)
            if pty.locked:
                fcntl.ioctl(self.masters[pty.index], _IOCTL["TIOCSPTLCK"], struct.pack("=i", 1))

    def close(self):
        for fd in self.held_slaves:
            os.close(fd)
        self.held_slaves = []
        for fd in self.masters.values():
            try:
                os.close(fd)
            except OSError as err:
                if err.errno != errno.EBADF:
                    raise
        self.masters = {}
