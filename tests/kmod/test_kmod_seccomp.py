"""GET_SECCOMP: a thread's seccomp mode and filter chain as the ptrace source
reads them (PTRACE_SECCOMP_GET_FILTER/GET_METADATA), plus bad input."""

import ctypes
import errno

from pyckpt import arch as archmod
from pyckpt.sources import crak_uapi as uapi
from pyckpt.sources.kmod import KmodSource
from pyckpt.sources.ptrace import PtraceSource

from .crak import Session, ioctl
from .test_kmod_refusals import expect_errno
from .test_kmod_source import snapshot

SECCOMP_FILTER_FLAG_LOG = 2
EXDEV, ENOTBLK = 18, 15


def add_filter(target, syscall, err, flags=0):
    calls = archmod.host().SYSCALLS
    target.send(f"seccomp {calls['seccomp']} {calls[syscall]} {err} {flags}")
    return bytes.fromhex(target.readline())


def test_seccomp_chain_as_the_ptrace_source_reads_it(target, tmp_path):
    ks = snapshot(KmodSource, target.pid, tmp_path)[0]
    assert (ks.threads[0].seccomp_mode, ks.threads[0].seccomp_filters) == (0, [])
    first = add_filter(target, "getsid", EXDEV, SECCOMP_FILTER_FLAG_LOG)
    second = add_filter(target, "getpgid", ENOTBLK)
    ks = snapshot(KmodSource, target.pid, tmp_path)[0]
    ps = snapshot(PtraceSource, target.pid, tmp_path)[0]
    for k, p in zip(ks.threads, ps.threads):
        assert (k.seccomp_mode, k.seccomp_filters) == (p.seccomp_mode, p.seccomp_filters)
    leader = ks.threads[0]
    assert leader.seccomp_mode == 2
    assert [(f.program, f.log) for f in leader.seccomp_filters] == [(first, True), (second, False)]


def test_seccomp_short_buffer_reports_the_size(target):
    prog = add_filter(target, "getsid", EXDEV)
    head = ctypes.sizeof(uapi.SeccompFilter)
    with Session(target.pid) as s:
        q = uapi.Seccomp(tid=target.pid)
        ioctl(s.fd, "GET_SECCOMP", q)
        assert (q.mode, q.nr_filters, q.size) == (2, 1, head + len(prog))
        buf = ctypes.create_string_buffer(b"\xee" * 8)
        q = uapi.Seccomp(tid=target.pid, buf_ptr=ctypes.addressof(buf), buf_len=8)
        ioctl(s.fd, "GET_SECCOMP", q)
        assert q.size == head + len(prog) and buf.raw[:8] == b"\xee" * 8  # nothing written
        buf = ctypes.create_string_buffer(q.size)
        q = uapi.Seccomp(tid=target.pid, buf_ptr=ctypes.addressof(buf), buf_len=q.size)
        ioctl(s.fd, "GET_SECCOMP", q)
        rec = uapi.SeccompFilter.from_buffer_copy(buf.raw)
        assert (rec.flags, rec.len, buf.raw[head:]) == (0, len(prog) // 8, prog)


def test_seccomp_bad_input(target):
    with Session(target.pid) as s:
        fd = s.fd
        expect_errno(errno.EOPNOTSUPP, ioctl, fd, "GET_SECCOMP", uapi.Seccomp(tid=target.pid, flags=1))
        expect_errno(errno.EINVAL, ioctl, fd, "GET_SECCOMP", uapi.Seccomp(tid=target.pid, mode=1))
        q = uapi.Seccomp(tid=target.pid)
        q.reserved[3] = 1
        expect_errno(errno.EINVAL, ioctl, fd, "GET_SECCOMP", q)
        expect_errno(errno.E2BIG, ioctl, fd, "GET_SECCOMP",
                     uapi.Seccomp(tid=target.pid, buf_len=uapi.MAX_SECCOMP_BUF + 1))
        expect_errno(errno.ESRCH, ioctl, fd, "GET_SECCOMP", uapi.Seccomp(tid=1))
        expect_errno(errno.EFAULT, ioctl, fd, "GET_SECCOMP", 8)
    add_filter(target, "getsid", EXDEV)
    with Session(target.pid) as s:
        expect_errno(errno.EFAULT, ioctl, s.fd, "GET_SECCOMP",
                     uapi.Seccomp(tid=target.pid, buf_ptr=8, buf_len=4096))
