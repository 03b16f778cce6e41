"""Bad input to /dev/crak returns the documented errno and never oopses."""

import ctypes
import errno
import os
import subprocess
import sys
import tempfile

import pytest

from pyckpt.sources import crak_uapi as uapi

from .crak import Session, ioctl, open_device


def expect_errno(code, fn, *args, **kwargs):
    with pytest.raises(OSError) as exc:
        fn(*args, **kwargs)
    assert exc.value.errno == code, f"expected {errno.errorcode[code]}, got {exc.value!r}"


@pytest.fixture
def dev():
    fd = open_device()
    yield fd
    os.close(fd)


def test_device_is_root_only():
    st = os.stat(uapi.DEVICE_PATH)
    assert st.st_mode & 0o777 == 0o600


def test_handshake_reports_module_facts():
    fd = open_device(handshake=False)
    try:
        v = uapi.Version(abi_version=uapi.ABI_VERSION)
        ioctl(fd, "VERSION", v)
        assert v.module_version == uapi.ABI_VERSION
        assert v.page_size == os.sysconf("SC_PAGE_SIZE")
        assert v.nr_signals in (64, 128)
        assert v.dump_max_pages == uapi.DUMP_MAX_PAGES
    finally:
        os.close(fd)


def test_handshake_mismatch_is_a_clear_error():
    fd = open_device(handshake=False)
    try:
        v = uapi.Version(abi_version=uapi.ABI_VERSION + 100)
        expect_errno(errno.EPROTONOSUPPORT, ioctl, fd, "VERSION", v)
        assert v.module_version == uapi.ABI_VERSION
    finally:
        os.close(fd)


def test_commands_before_handshake_are_refused():
    fd = open_device(handshake=False)
    try:
        expect_errno(errno.EPROTO, ioctl, fd, "OPEN_SESSION", uapi.OpenSession(pid=1))
    finally:
        os.close(fd)


@pytest.mark.parametrize("field,value,code", [
    ("flags", 1 << 31, errno.EOPNOTSUPP),
    ("reserved", 1, errno.EINVAL),
])
def test_handshake_flags_and_reserved(field, value, code):
    fd = open_device(handshake=False)
    try:
        v = uapi.Version(abi_version=uapi.ABI_VERSION)
        if field == "reserved":
            v.reserved[2] = value
        else:
            setattr(v, field, value)
        expect_errno(code, ioctl, fd, "VERSION", v)
    finally:
        os.close(fd)


def test_bad_pointer_is_efault(dev):
    expect_errno(errno.EFAULT, ioctl, dev, "OPEN_SESSION", 16)


def test_unknown_ioctl_is_enotty(dev):
    expect_errno(errno.ENOTTY, ioctl, dev, "FREEZE", uapi.Freeze())


def dead_pid():
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def a_thread_id():
    """The tid of a non-leader thread of another process."""
    proc = subprocess.Popen([sys.executable, "-c",
                             "import threading,sys,time\n"
                             "t=threading.Thread(target=time.sleep,args=(60,),daemon=True);t.start()\n"
                             "print(t.native_id,flush=True);time.sleep(60)"],
                            stdout=subprocess.PIPE)
    return proc, int(proc.stdout.readline())


@pytest.mark.parametrize("case,code", [
    ("dead", errno.ESRCH),
    ("zero", errno.ESRCH),
    ("kthread", errno.EINVAL),
    ("self", errno.EDEADLK),
    ("thread", errno.ESRCH),
])
def test_open_session_refusals(dev, case, code):
    proc = None
    if case == "dead":
        pid = dead_pid()
    elif case == "zero":
        pid = 0
    elif case == "kthread":
        pid = 2  # kthreadd
    elif case == "self":
        pid = os.getpid()
    else:
        proc, pid = a_thread_id()
    try:
        expect_errno(code, ioctl, dev, "OPEN_SESSION", uapi.OpenSession(pid=pid))
    finally:
        if proc:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("field,value,code", [
    ("flags", 1 << 7, errno.EOPNOTSUPP),
    ("reserved", 1, errno.EINVAL),
])
def test_open_session_flags_and_reserved(dev, target, field, value, code):
    o = uapi.OpenSession(pid=target.pid)
    if field == "reserved":
        o.reserved[0] = value
    else:
        setattr(o, field, value)
    expect_errno(code, ioctl, dev, "OPEN_SESSION", o)


def test_open_session_needs_ptrace_rights(dev, target):
    """An unprivileged caller cannot open a session on root's process."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.setgroups([])
            os.setresgid(65534, 65534, 65534)
            os.setresuid(65534, 65534, 65534)
            try:
                ioctl(dev, "OPEN_SESSION", uapi.OpenSession(pid=target.pid))
            except OSError as err:
                code = 0 if err.errno == errno.EPERM else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_opening_the_device_needs_privilege():
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.setresuid(65534, 65534, 65534)
            try:
                os.open(uapi.DEVICE_PATH, os.O_RDWR)
            except PermissionError:
                code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_session_bad_input(target):
    with Session(target.pid) as s:
        fd = s.fd
        expect_errno(errno.EOPNOTSUPP, ioctl, fd, "FREEZE", uapi.Freeze(flags=2))
        f = uapi.Freeze()
        f.reserved[1] = 3
        expect_errno(errno.EINVAL, ioctl, fd, "FREEZE", f)
        expect_errno(errno.EINVAL, ioctl, fd, "FREEZE",
                     uapi.Freeze(timeout_ms=uapi.FREEZE_MAX_TIMEOUT_MS + 1))
        expect_errno(errno.EINVAL, ioctl, fd, "FREEZE", uapi.Freeze(nr_stopped=1))
        expect_errno(errno.EOPNOTSUPP, ioctl, fd, "GET_ITIMERS", uapi.Itimers(flags=1))
        expect_errno(errno.EINVAL, ioctl, fd, "GET_ITIMERS", uapi.Itimers(pad=1))
        it = uapi.Itimers()
        it.value_ns[2] = 1
        expect_errno(errno.EINVAL, ioctl, fd, "GET_ITIMERS", it)
        it = uapi.Itimers()
        it.reserved[3] = 1
        expect_errno(errno.EINVAL, ioctl, fd, "GET_ITIMERS", it)
        expect_errno(errno.EFAULT, ioctl, fd, "GET_ITIMERS", 8)
        ioctl(fd, "GET_ITIMERS", uapi.Itimers())  # not frozen: fine, as getitimer
        expect_errno(errno.EALREADY, ioctl, fd, "THAW", uapi.Thaw())
        expect_errno(errno.EBUSY, ioctl, fd, "GET_REGSET", uapi.Regset(tid=target.pid, note_type=1))
        expect_errno(errno.EBUSY, ioctl, fd, "DUMP_PAGES", uapi.DumpPages())
        expect_errno(errno.E2BIG, ioctl, fd, "THREADS", uapi.Threads(count=uapi.MAX_THREADS + 1))
        expect_errno(errno.EFAULT, ioctl, fd, "THREADS", uapi.Threads(count=4, tids_ptr=8))
        expect_errno(errno.E2BIG, ioctl, fd, "GET_VMA", uapi.Vma(name_cap=uapi.MAX_NAME + 1))
        expect_errno(errno.ENOENT, ioctl, fd, "GET_VMA", uapi.Vma(addr=(1 << 64) - 4096))
        expect_errno(errno.EFAULT, ioctl, fd, "GET_VMA", uapi.Vma(name_cap=64, name_ptr=8))
        expect_errno(errno.E2BIG, ioctl, fd, "PIPE_PEEK", uapi.PipePeek(buf_len=uapi.MAX_PEEK + 1))
        expect_errno(errno.EBADF, ioctl, fd, "PIPE_PEEK", uapi.PipePeek(fd=999))
        expect_errno(errno.EBADF, ioctl, fd, "PIPE_PEEK", uapi.PipePeek(fd=2 ** 31))
        expect_errno(errno.E2BIG, ioctl, fd, "GET_PENDING", uapi.Pending(count=uapi.MAX_PENDING + 1))
        expect_errno(errno.EINVAL, ioctl, fd, "GET_PENDING",
                     uapi.Pending(tid=1, flags=uapi.PENDING_F_SHARED))
        expect_errno(errno.EOPNOTSUPP, ioctl, fd, "GET_PENDING", uapi.Pending(flags=4))
        expect_errno(errno.ESRCH, ioctl, fd, "GET_THREAD_SIGNALS", uapi.ThreadSignals(tid=1))
        expect_errno(errno.ESRCH, ioctl, fd, "GET_CREDS", uapi.Creds(tid=os.getpid()))
        expect_errno(errno.E2BIG, ioctl, fd, "GET_CREDS", uapi.Creds(groups_cap=uapi.MAX_GROUPS + 1))
        expect_errno(errno.ENOTTY, ioctl, fd, "VERSION", uapi.Version())
        expect_errno(errno.EFAULT, ioctl, fd, "GET_FD", 0)


def test_pipe_peek_on_a_non_pipe_is_einval():
    with tempfile.TemporaryFile() as f:
        t = subprocess.Popen(["sleep", "60"], stdin=f)
        try:
            with Session(t.pid) as s:
                expect_errno(errno.EINVAL, s.pipe_peek, 0)
        finally:
            t.kill()
            t.wait()


def test_frozen_session_bad_input(target):
    page = target.info["page"]
    with Session(target.pid) as s:
        s.freeze()
        fd = s.fd
        expect_errno(errno.EALREADY, ioctl, fd, "FREEZE", uapi.Freeze())
        expect_errno(errno.ESRCH, ioctl, fd, "GET_REGSET", uapi.Regset(tid=os.getpid(), note_type=1))
        expect_errno(errno.ENODATA, ioctl, fd, "GET_REGSET",
                     uapi.Regset(tid=target.pid, note_type=0x7777))
        expect_errno(errno.EINVAL, ioctl, fd, "GET_REGSET",
                     uapi.Regset(tid=target.pid, note_type=1, buf_len=7))
        expect_errno(errno.EFAULT, ioctl, fd, "GET_REGSET",
                     uapi.Regset(tid=target.pid, note_type=1, buf_len=64, buf_ptr=8))
        r = uapi.Regset(tid=target.pid, note_type=1)
        ioctl(fd, "GET_REGSET", r)
        assert r.out_len == 0 and r.full_len > 0
        with tempfile.TemporaryFile() as out:
            addr = target.info["addr"]
            expect_errno(errno.EINVAL, ioctl, fd, "DUMP_PAGES",
                         uapi.DumpPages(start=addr + 1, end=addr + page, out_fd=out.fileno()))
            expect_errno(errno.EINVAL, ioctl, fd, "DUMP_PAGES",
                         uapi.DumpPages(start=addr + page, end=addr, out_fd=out.fileno()))
            expect_errno(errno.EBADF, ioctl, fd, "DUMP_PAGES",
                         uapi.DumpPages(start=addr, end=addr + page, out_fd=9999))
            with open(out.fileno(), "rb", closefd=False):
                ro = os.open(f"/proc/self/fd/{out.fileno()}", os.O_RDONLY)
                try:
                    expect_errno(errno.EBADF, ioctl, fd, "DUMP_PAGES",
                                 uapi.DumpPages(start=addr, end=addr + page, out_fd=ro))
                finally:
                    os.close(ro)
            expect_errno(errno.EFAULT, ioctl, fd, "DUMP_PAGES",
                         uapi.DumpPages(start=addr, end=addr + page, out_fd=out.fileno(),
                                        runs_cap=4, runs_ptr=8))
            # A huge range is bounded: it returns with next < end, never hangs.
            runs = (uapi.PageRun * 1)()
            q = uapi.DumpPages(start=0, end=(1 << 47) - page, out_fd=out.fileno(),
                               runs_cap=1, runs_ptr=ctypes.addressof(runs))
            ioctl(fd, "DUMP_PAGES", q)
            assert q.next < q.end and q.nr_runs == 1
        s.thaw()
    target.send("echo alive")
    assert target.readline() == "echo alive"
