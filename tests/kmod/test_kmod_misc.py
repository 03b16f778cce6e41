"""GET_THREAD_MISC / GET_PROCESS_MISC: what the ptrace source asks the target
itself for (sigaltstack, PR_GET_TID_ADDRESS, get_robust_list, rseq, brk(0),
PR_GET_PDEATHSIG, PR_GET_DUMPABLE), read by the module, plus bad input."""

import ctypes
import errno
import os

from pyckpt import linux, proc
from pyckpt.sources import crak_uapi as uapi

from .crak import Session, ioctl
from .test_kmod_refusals import expect_errno

SS_DISABLE = 2
ROBUST_LIST_HEAD_SIZE = 3 * ctypes.sizeof(ctypes.c_void_p)


def get_robust_list(tid):
    head, length = ctypes.c_uint64(), ctypes.c_size_t()
    linux.syscall("get_robust_list", tid, ctypes.c_void_p(ctypes.addressof(head)),
                  ctypes.c_void_p(ctypes.addressof(length)))
    return head.value, length.value


def test_thread_misc_of_every_thread(make_target):
    t = make_target(threads=2)
    with Session(t.pid) as s:
        s.freeze()
        tids = s.threads()
        assert len(tids) == 3
        rseqs = set()
        for tid in tids:
            m = s.thread_misc(tid)
            # glibc registers a robust list and an rseq area for every thread.
            assert (m.robust_list, m.robust_list_len) == get_robust_list(tid)
            assert m.robust_list_len == ROBUST_LIST_HEAD_SIZE
            if m.rseq:
                assert m.rseq_len >= 32 and m.rseq_sig != 0
                rseqs.add(m.rseq)
            else:
                assert m.rseq_len == 0
            if m.sas_ss_size == 0:
                assert m.sas_ss_flags & SS_DISABLE
            # glibc's pthread_create passes CLONE_CHILD_CLEARTID: non-main threads have one.
            if tid != t.pid:
                assert m.clear_child_tid != 0
        assert len(rseqs) in (0, 3)  # one area per thread, or rseq unused


def test_process_misc(target):
    with Session(target.pid) as s:
        m = s.process_misc()  # allowed while running
        stat = proc.read_stat(target.pid)
        assert m.start_brk == stat.start_brk
        assert m.brk >= m.start_brk
        assert m.dumpable == 1
        assert m.pdeath_signal == 0
        assert m.mlock_future == 0      # no mlockall(MCL_FUTURE): the vmflags workload has one
        s.freeze()
        assert s.process_misc().brk == m.brk


def test_misc_bad_input(target):
    with Session(target.pid) as s:
        fd = s.fd
        expect_errno(errno.EBUSY, ioctl, fd, "GET_THREAD_MISC", uapi.ThreadMisc(tid=target.pid))
        expect_errno(errno.EOPNOTSUPP, ioctl, fd, "GET_PROCESS_MISC", uapi.ProcessMisc(flags=1))
        q = uapi.ProcessMisc()
        q.reserved[0] = 1
        expect_errno(errno.EINVAL, ioctl, fd, "GET_PROCESS_MISC", q)
        expect_errno(errno.EINVAL, ioctl, fd, "GET_PROCESS_MISC", uapi.ProcessMisc(brk=1))
        for out_field in ("stop_signal", "stop_flags", "membarrier", "child_subreaper", "mlock_future", "pad2"):
            expect_errno(errno.EINVAL, ioctl, fd, "GET_PROCESS_MISC", uapi.ProcessMisc(**{out_field: 1}))
        expect_errno(errno.EFAULT, ioctl, fd, "GET_PROCESS_MISC", 8)
        s.freeze()
        expect_errno(errno.EOPNOTSUPP, ioctl, fd, "GET_THREAD_MISC",
                     uapi.ThreadMisc(tid=target.pid, flags=1))
        expect_errno(errno.EINVAL, ioctl, fd, "GET_THREAD_MISC",
                     uapi.ThreadMisc(tid=target.pid, rseq=1))
        q = uapi.ThreadMisc(tid=target.pid)
        q.reserved[0] = 1
        expect_errno(errno.EINVAL, ioctl, fd, "GET_THREAD_MISC", q)
        expect_errno(errno.ESRCH, ioctl, fd, "GET_THREAD_MISC", uapi.ThreadMisc(tid=os.getpid()))
        expect_errno(errno.ESRCH, ioctl, fd, "GET_THREAD_MISC", uapi.ThreadMisc(tid=0))
        expect_errno(errno.EFAULT, ioctl, fd, "GET_THREAD_MISC", 8)
