"""Small /dev/crak client for the kmod tests (the real one is pyckpt's)."""

import ctypes
import fcntl
import os

from pyckpt.sources import crak_uapi as uapi

REQUEST = uapi.requests()


def ioctl(fd, name, arg):
    """One CRAK_IOC_<name>; arg is a mirror struct (updated in place) or an int."""
    return fcntl.ioctl(fd, REQUEST[name], arg, True) if not isinstance(arg, int) \
        else fcntl.ioctl(fd, REQUEST[name], arg)


def open_device(handshake=True):
    fd = os.open(uapi.DEVICE_PATH, os.O_RDWR | os.O_CLOEXEC)
    if handshake:
        ioctl(fd, "VERSION", uapi.Version(abi_version=uapi.ABI_VERSION))
    return fd


class Session:
    """A session fd on `pid`; closing it thaws."""

    def __init__(self, pid, dev=None):
        own = dev is None
        dev = open_device() if own else dev
        try:
            self.fd = ioctl(dev, "OPEN_SESSION", uapi.OpenSession(pid=pid, flags=uapi.OPEN_F_CLOEXEC))
        finally:
            if own:
                os.close(dev)
        self.pid = pid

    def close(self):
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def freeze(self, timeout_ms=0):
        f = uapi.Freeze(timeout_ms=timeout_ms)
        ioctl(self.fd, "FREEZE", f)
        return f.nr_threads

    def thaw(self):
        ioctl(self.fd, "THAW", uapi.Thaw())

    def threads(self, cap=256):
        buf = (ctypes.c_uint32 * cap)()
        q = uapi.Threads(count=cap, tids_ptr=ctypes.addressof(buf))
        ioctl(self.fd, "THREADS", q)
        return sorted(buf[:min(cap, q.nr_threads)])

    def regset(self, tid, note_type, size=64 * 1024):
        buf = ctypes.create_string_buffer(size)
        q = uapi.Regset(tid=tid, note_type=note_type, buf_len=size, buf_ptr=ctypes.addressof(buf))
        ioctl(self.fd, "GET_REGSET", q)
        return buf.raw[:q.out_len]

    def vma(self, addr):
        name = ctypes.create_string_buffer(uapi.MAX_NAME)
        q = uapi.Vma(addr=addr, name_cap=uapi.MAX_NAME, name_ptr=ctypes.addressof(name))
        ioctl(self.fd, "GET_VMA", q)
        return q, name.value.decode(errors="surrogateescape")

    def vmas(self):
        out, addr = [], 0
        while True:
            try:
                q, name = self.vma(addr)
            except OSError as err:
                if err.errno == 2:  # ENOENT: past the last one
                    return out
                raise
            out.append((q, name))
            addr = q.end

    def dump_pages(self, start, end, out_fd, offset=0, runs_cap=1024):
        runs = (uapi.PageRun * max(runs_cap, 1))()
        q = uapi.DumpPages(start=start, end=end, out_fd=out_fd, out_offset=offset,
                           runs_ptr=ctypes.addressof(runs), runs_cap=runs_cap)
        ioctl(self.fd, "DUMP_PAGES", q)
        return q, [(runs[i].start, runs[i].nr_pages) for i in range(q.nr_runs)]

    def get_fd(self, start):
        name = ctypes.create_string_buffer(uapi.MAX_NAME)
        q = uapi.Fd(fd=start, name_cap=uapi.MAX_NAME, name_ptr=ctypes.addressof(name))
        ioctl(self.fd, "GET_FD", q)
        return q, name.value.decode(errors="surrogateescape")

    def fds(self):
        out, nr = [], 0
        while True:
            try:
                q, name = self.get_fd(nr)
            except OSError as err:
                if err.errno == 2:
                    return out
                raise
            out.append((q, name))
            nr = q.fd + 1

    def pipe_peek(self, fd, size=65536):
        buf = ctypes.create_string_buffer(max(size, 1))
        q = uapi.PipePeek(fd=fd, buf_ptr=ctypes.addressof(buf), buf_len=size)
        ioctl(self.fd, "PIPE_PEEK", q)
        return q, buf.raw[:q.out_len]

    def sigactions(self):
        acts = (uapi.Sigaction * 128)()
        q = uapi.Sigactions(count=128, actions_ptr=ctypes.addressof(acts))
        ioctl(self.fd, "GET_SIGACTIONS", q)
        return list(acts[:q.nr_signals])

    def thread_signals(self, tid):
        q = uapi.ThreadSignals(tid=tid)
        ioctl(self.fd, "GET_THREAD_SIGNALS", q)
        return q

    def pending(self, tid=0, shared=False, cap=64):
        entries = (uapi.Siginfo * cap)()
        q = uapi.Pending(tid=tid, flags=uapi.PENDING_F_SHARED if shared else 0, count=cap,
                         entries_ptr=ctypes.addressof(entries))
        ioctl(self.fd, "GET_PENDING", q)
        return q, list(entries[:q.nr_copied])

    def creds(self, tid=0, cap=256):
        groups = (ctypes.c_uint32 * cap)()
        q = uapi.Creds(tid=tid, groups_ptr=ctypes.addressof(groups), groups_cap=cap)
        ioctl(self.fd, "GET_CREDS", q)
        return q, list(groups[:min(cap, q.ngroups)])

    def thread_misc(self, tid):
        q = uapi.ThreadMisc(tid=tid)
        ioctl(self.fd, "GET_THREAD_MISC", q)
        return q

    def process_misc(self):
        q = uapi.ProcessMisc()
        ioctl(self.fd, "GET_PROCESS_MISC", q)
        return q
