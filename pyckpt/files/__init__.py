"""File descriptors: one module per kind, dump and restore side by side.

Dump: `FileTable.add_process(pid)` classifies every fd of a frozen process,
groups fds that share one open file description (kcmp), and refuses a kind
it cannot restore, naming the fd. Restore: `install_fds()` in restore_fds.py.
"""

import logging
import os
import stat

from .. import linux, proc
from ..errors import UnsupportedState
from ..images.proto import files_pb2, mm_pb2
from . import anon, epoll, fifo, ghost, inet, inflight, inotify, locks, memfd, pidfd, pipe, procfs, pty, regular, \
    status, tty, unix

log = logging.getLogger(__name__)


def _describe_socket(pid, inode):
    """'netlink socket' etc. from /proc/PID/net tables, for refusal messages."""
    for table, name in (("unix", "unix"), ("netlink", "netlink"), ("tcp", "TCP"), ("tcp6", "TCPv6"),
                        ("udp", "UDP"), ("udp6", "UDPv6"), ("raw", "raw"), ("packet", "packet")):
        try:
            with open(f"/proc/{pid}/net/{table}") as f:
                next(f, None)
                for line in f:
                    if f" {inode} " in f" {line} " and str(inode) in line.split():
                        return f"{name} socket"
        except OSError:
            continue
    return "socket"


class FileTable:
    """Open file descriptions of the dumped processes and each process's fds."""

    def __init__(self, options, source):
        self.options = options
        self.source = source
        self.files = files_pb2.Files()
        self.fd_tables = {}        # pid -> FdTable
        self.ghosts = {}           # file id -> (pid, fd) to copy a memfd's contents from
        self.deleted_sources = {}  # file id of a deleted file -> /proc path (fd or mapping) to save it from
        self.holders = {}          # file id -> "process P fd F (path)": the first fd seen on it
        self._deleted = {}         # (dev, ino) of a deleted file -> the first entry describing it
        self.pipe_data = {}        # pipe id -> buffered bytes
        self._pipe_ends = {}       # (dev, ino) of a pipe or FIFO -> [(pid, fd, O_RDONLY/O_WRONLY/O_RDWR)]
        self._by_inode = {}        # (dev, ino) -> [(pid, fd, file id)]
        self._pidfds = []          # [(file id, "process P fd F (...)")] of pidfds, checked once all are seen
        self._inotify_deleted = []  # [(inotify file id, watch index, (dev, ino) of its deleted file, what)]
        self._epoll_pending = []   # [(epoll file id, watch index, fd of the process being added on its file)]
        self.unix = unix.UnixDump(options, source, self.in_flight)
        self._in_flight = []       # (pyckpt's fd, file id) of files in flight no fd of the dump holds
        self.inet = inet.InetDump(options)
        self.ptys = pty.PtyTable(options.shell_job)

    def add_process(self, pid, skip=()):
        """The fd table of `pid`, but the fds in `skip` (pyckpt's own, e.g. its tracking userfaultfd)."""
        table = files_pb2.FdTable()
        seen_posix = set()
        for fd in proc.list_fds(pid):
            if fd in skip:
                continue
            info = proc.read_fdinfo(pid, fd)
            file_id, cloexec = self._add_fd(pid, fd, info)
            table.fds.add(fd=fd, file_id=file_id, cloexec=cloexec)
            held = locks.parse(info, f"process {pid} fd {fd}")
            if held:
                entry = self.files.files[file_id - 1]  # ids count from 1
                locks.record(table, entry, fd, held, seen_posix)
        file_of = {fd.fd: fd.file_id for fd in table.fds}
        for file_id, index, holder in self._epoll_pending:
            self.files.files[file_id - 1].watches[index].file_id = file_of[holder]
        self._epoll_pending = []
        for file_id, index, key, where in self._inotify_deleted:
            holder = next((fid for p, _fd, fid in self._by_inode.get(key, ()) if p == pid), None)
            if holder is None:
                raise UnsupportedState(f"{where}: no fd of process {pid} holds that file open; not supported")
            self.files.files[file_id - 1].inotify_watches[index].file_id = holder
        self._inotify_deleted = []
        self.fd_tables[pid] = table

    def _add_fd(self, pid, fd, info):
        link = proc.readlink(pid, f"fd/{fd}")
        try:
            st = os.stat(f"/proc/{pid}/fd/{fd}")
        except OSError as err:
            raise UnsupportedState(f"process {pid} fd {fd} ({link}): cannot stat it: {err.strerror}") from err
        cloexec = bool(info["flags"] & os.O_CLOEXEC)
        flags = info["flags"] & ~os.O_CLOEXEC

        shared_id = self._shared_description(pid, fd, st)
        if shared_id is not None:
            return shared_id, cloexec

        entry = files_pb2.OpenFile(id=len(self.files.files) + 1, flags=flags, pos=info.get("pos", 0))
        what = f"process {pid} fd {fd} ({link})"
        if link.startswith("socket:["):
            if not self.unix.add(entry, pid, fd, st, what) and not self.inet.add(entry, pid, fd, st, what):
                kind = _describe_socket(pid, st.st_ino)
                raise UnsupportedState(f"{what} is a {kind}; pyckpt cannot checkpoint sockets other than "
                                       "unix and TCP ones yet")
        elif link.startswith("pipe:[") or (stat.S_ISFIFO(st.st_mode) and link.startswith("/")):
            if link.startswith("pipe:["):
                pipe.describe(entry, st)
            else:
                fifo.describe(entry, link, st)
            self._pipe_ends.setdefault((st.st_dev, st.st_ino), []).append((pid, fd, flags & os.O_ACCMODE))
        elif link == inotify.LINK:
            self._inotify_deleted += [(entry.id, index, key, where)
                                      for index, key, where in inotify.describe(entry, info, what)]
        elif link == epoll.LINK:
            self._epoll_pending += [(entry.id, index, holder)
                                    for index, holder in epoll.describe(entry, pid, fd, info, what)]
        elif pidfd.is_pidfd(link):
            pidfd.describe(entry, info, what)
            self._pidfds.append((entry.id, what))
        elif link in anon.KINDS:
            anon.describe(entry, pid, fd, link, info, what)
        elif link.startswith("anon_inode:"):
            raise UnsupportedState(f"{what} is an anonymous inode ({link[11:]}); not supported yet")
        elif stat.S_ISREG(st.st_mode) and linux.fs_magic(f"/proc/{pid}/fd/{fd}") == linux.MQUEUE_MAGIC:
            # before the deleted-file branch: an unlinked queue is no file to save
            raise UnsupportedState(f"{what} is a POSIX message queue (mq_open); not supported yet")
        elif stat.S_ISREG(st.st_mode) and memfd.is_memfd(link):
            memfd.describe(entry, pid, fd, link, st)
            self.ghosts[entry.id] = (pid, fd)
        elif (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)) and ghost.is_deleted(link, st):
            first = self._deleted.get((st.st_dev, st.st_ino))
            ghost.describe(entry, f"/proc/{pid}/fd/{fd}", link, st, what, first, self.options.ghost_limit)
            if first is None:
                self._deleted[(st.st_dev, st.st_ino)] = entry
                self.deleted_sources[entry.id] = f"/proc/{pid}/fd/{fd}"
        elif stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode):
            procfs.check(link, st, what)
            regular.describe(entry, link, st, what)
        elif pty.is_master(st):
            pty.describe_master(entry, link, info, st, what)
            self.ptys.add(pid, fd, entry)
        elif pty.is_slave(st):
            pty.describe_slave(entry, link, st)
            self.ptys.add(pid, fd, entry)
        elif pty.is_dev_tty(st) and pty.is_slave_rdev(ctty := proc.read_stat(pid).tty_nr):
            # /dev/tty opened on a pty: reopened by path once the process has its controlling terminal.
            regular.describe_device(entry, link, st, what)
            self.ptys.add(pid, fd, entry, pty.slave_index(ctty))
        elif stat.S_ISCHR(st.st_mode) and tty.is_tty(st):
            if tty.is_job_terminal(st, proc.read_stat(pid).tty_nr):
                if not self.options.shell_job:
                    raise UnsupportedState(f"{what} is a terminal; dump with --shell-job to reattach it to the "
                                           "restoring shell's terminal")
                tty.describe(entry, link, st)
            else:
                # /dev/console, /dev/ttyN ... that is not the job's terminal: the same device again
                regular.describe_device(entry, link, st, what)
        elif stat.S_ISCHR(st.st_mode):
            regular.describe_device(entry, link, st, what)
        elif stat.S_ISLNK(st.st_mode):
            regular.describe_symlink(entry, link, st, flags, what)
        elif stat.S_ISFIFO(st.st_mode):
            raise UnsupportedState(f"{what} is a FIFO outside this mount namespace")
        else:
            raise UnsupportedState(f"{what}: unsupported kind of file (mode {st.st_mode:#o})")
        status.describe_owner(entry, pid, fd, what)
        self.files.files.append(entry)
        self.holders[entry.id] = what
        self._by_inode.setdefault((st.st_dev, st.st_ino), []).append((pid, fd, entry.id))
        return entry.id, cloexec

    def add_mappings(self, pid, vmas, mm):
        """Deleted files mapped by the process: each mapping names the description of its inode
        (one held by no fd, made here, when no fd of the dump holds the file)."""
        for vma, msg in zip(vmas, mm.vmas):
            if msg.kind not in (mm_pb2.Vma.FILE_PRIVATE, mm_pb2.Vma.FILE_SHARED) or not vma.deleted:
                continue
            what = f"process {pid} mapping {vma.start:#x}-{vma.end:#x} {vma.path}"
            source = f"/proc/{pid}/map_files/{vma.start:x}-{vma.end:x}"
            try:
                st = os.stat(source)
            except OSError as err:
                raise UnsupportedState(f"{what}: cannot stat the mapped file: {err.strerror}") from err
            entry = self._deleted.get((st.st_dev, st.st_ino))
            if entry is None:
                entry = files_pb2.OpenFile(id=len(self.files.files) + 1, flags=os.O_RDONLY)
                ghost.describe(entry, source, vma.path, st, what)
                self.files.files.append(entry)
                self.holders[entry.id] = what
                self._deleted[(st.st_dev, st.st_ino)] = entry
                self.deleted_sources[entry.id] = source
            msg.deleted_file = entry.id

    def in_flight(self, local, what):
        """The OpenFile id of a file in flight on a unix socket (`local`: pyckpt's copy of it)."""
        st = os.fstat(local)
        me = os.getpid()
        for pid, fd, file_id in self._by_inode.get((st.st_dev, st.st_ino), ()):
            if linux.kcmp_file(me, pid, local, fd) == 0:
                inflight.check_held(self.files.files[file_id - 1], what)
                return file_id
        for other, file_id in self._in_flight:
            if linux.kcmp_file(me, me, local, other) == 0:
                return file_id
        entry = files_pb2.OpenFile(id=len(self.files.files) + 1)
        inflight.describe(entry, local, st, what)
        self.files.files.append(entry)
        self.holders[entry.id] = what
        self._in_flight.append((os.dup(local), entry.id))
        return entry.id

    def _shared_description(self, pid, fd, st):
        """The id of an already seen open file description this fd shares, if any."""
        for other_pid, other_fd, file_id in self._by_inode.get((st.st_dev, st.st_ino), ()):
            try:
                if linux.kcmp_file(pid, other_pid, fd, other_fd) == 0:
                    return file_id
            except OSError as err:
                log.debug("kcmp %d:%d vs %d:%d failed: %s", pid, fd, other_pid, other_fd, err)
        return None

    def finish(self, dumped_pids):
        """Checks that need every process seen, pipe and socket contents (targets still frozen)."""
        try:
            self.unix.check_all(self.files.files, dumped_pids)
        finally:
            for local, _file_id in self._in_flight:
                os.close(local)
            self._in_flight = []
        self.inet.finish(self.files.files)
        self.ptys.finish(self.files, dumped_pids)
        threads = {tid for p in dumped_pids for tid in proc.thread_ids(p) if tid != p}
        for file_id, what in self._pidfds:
            pidfd.check_in_dump(self.files.files[file_id - 1], set(dumped_pids) | set(self.source.zombies),
                                threads, what)
        pgids = {proc.read_stat(p).pgid for p in dumped_pids}
        for file_id, what in self.holders.items():
            status.check_owner(self.files.files[file_id - 1], set(dumped_pids), pgids, what)
        outside = pipe.holders_outside(set(self._pipe_ends) | set(self._deleted), set(dumped_pids) | {os.getpid()})
        for key, entry in self._deleted.items():
            if outside.get(key):
                other_pid, other_fd = outside[key][0]
                raise UnsupportedState(
                    f"{self.holders[entry.id]} is a deleted file also open in process {other_pid} (fd {other_fd}), "
                    "outside the dump; restored, they would hold two different files")
        for (dev, ino), ends in self._pipe_ends.items():
            pid, fd, _mode = ends[0]
            kind = "pipe" if proc.readlink(pid, f"fd/{fd}").startswith("pipe:") else "fifo"
            pipe.check_ends(ino, ends, outside.get((dev, ino), []), kind)
            size = pipe.pipe_size(pid, fd)
            data = self.source.pipe_contents(pid, fd, size)
            if data:
                pipe.check_not_packets(ino, ends, len(data), kind)
            entry = self.files.pipes.add(id=ino, size=size)
            if data:
                entry.data = f"pipe-{ino}.img"
                self.pipe_data[ino] = data
