"""kmod tier: runs inside the VM guest with crak.ko loaded.

With PYCKPT_TEST_BACKEND=kmod (what the VM harness sets) a missing
/dev/crak is a failure. Elsewhere (the host, whose kernel has no modules)
the tier is skipped.
"""

import json
import os
import select
import subprocess
import sys
import textwrap

import pytest

from pyckpt.sources import crak_uapi as uapi

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
IN_KMOD_TIER = os.environ.get("PYCKPT_TEST_BACKEND") == "kmod"


def pytest_collection_modifyitems(config, items):
    if IN_KMOD_TIER or os.path.exists(uapi.DEVICE_PATH):
        return
    skip = pytest.mark.skip(reason="kmod tier: needs /dev/crak (runs in the VM, make vm-test)")
    for item in items:
        if os.path.dirname(str(item.fspath)) == os.path.dirname(__file__):
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def crak_device():
    if not os.path.exists(uapi.DEVICE_PATH):
        pytest.fail(f"{uapi.DEVICE_PATH} is missing: crak.ko did not load")


# The target: private anonymous pages with known contents, optional extra
# threads, a blocked and pending SIGUSR1, a SIGUSR2 handler; then it serves
# commands read from stdin, blocked in read(2) between them.
TARGET = textwrap.dedent("""
    import ctypes, json, mmap, os, signal, struct, threading
    PAGE = mmap.PAGESIZE
    m = mmap.mmap(-1, 4 * PAGE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    m[0:PAGE] = bytes(range(256)) * (PAGE // 256)
    m[2 * PAGE:3 * PAGE] = b"\\xa5" * PAGE
    m[3 * PAGE]  # a read fault maps the zero page
    addr = ctypes.addressof(ctypes.c_char.from_buffer(m))
    signal.signal(signal.SIGUSR2, lambda *a: None)
    signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR1])  # threads inherit it
    ev = threading.Event()
    for _ in range(int(os.environ.get("CRAK_TARGET_THREADS", "0"))):
        threading.Thread(target=ev.wait, daemon=True).start()
    os.kill(os.getpid(), signal.SIGUSR1)
    os.write(1, (json.dumps({"addr": addr, "page": PAGE, "tid": threading.get_native_id()}) + "\\n").encode())
    while True:
        line = os.read(0, 4096)
        if not line:
            break
        cmd = line.split()
        if cmd[0] == b"echo":
            os.write(1, line)
        elif cmd[0] == b"readfd":
            os.write(1, os.read(int(cmd[1]), 4096) + b"\\n")
        elif cmd[0] == b"setitimers":
            signal.setitimer(signal.ITIMER_REAL, 300, 500)
            signal.setitimer(signal.ITIMER_VIRTUAL, 400)
            signal.setitimer(signal.ITIMER_PROF, 7, 450)
            os.write(1, b"ok\\n")
        elif cmd[0] == b"posixtimers":  # posixtimers <timer_create nr> <timer_settime nr>
            libc = ctypes.CDLL(None, use_errno=True)
            create, settime = int(cmd[1]), int(cmd[2])
            def timer(clock, notify, signo, value, tid, secs, interval):
                ev = (ctypes.c_int * 16)()  # struct sigevent, 64 bytes
                ctypes.c_uint64.from_buffer(ev, 0).value = value
                ev[2], ev[3], ev[4] = signo, notify, tid
                tid_out = ctypes.c_int()
                assert libc.syscall(create, clock, ev, ctypes.byref(tid_out)) == 0
                spec = (ctypes.c_int64 * 4)(int(interval), int(interval % 1 * 1e9), int(secs), int(secs % 1 * 1e9))
                if secs:
                    assert libc.syscall(settime, tid_out.value, 0, spec, None) == 0
                return tid_out.value
            me = threading.get_native_id()
            ids = [timer(1, 0, signal.SIGUSR2, 0x5eed, 0, 300, 0.5),      # MONOTONIC, signal, periodic
                   timer(0, 1, 0, 0, 0, 100, 0),                          # REALTIME, SIGEV_NONE
                   timer(2, 1, 0, 7, 0, 1000, 5),                         # PROCESS_CPUTIME, SIGEV_NONE
                   timer(7, 1, 0, 0, 0, 0, 0),                            # BOOTTIME, never armed
                   timer(1, 4, signal.SIGUSR2, 9, me, 200, 0)]            # to this thread
            os.write(1, (json.dumps(ids) + "\\n").encode())
        elif cmd[0] == b"seccomp":  # seccomp <seccomp nr> <syscall nr> <errno> <flags>: one more filter
            libc = ctypes.CDLL(None, use_errno=True)
            nr, errno_, flags = int(cmd[2]), int(cmd[3]), int(cmd[4])
            insns = [(0x20, 0, 0, 0), (0x15, 0, 1, nr), (0x06, 0, 0, 0x50000 | errno_), (0x06, 0, 0, 0x7FFF0000)]
            prog = b"".join(struct.pack("=HBBI", *i) for i in insns)
            buf = ctypes.create_string_buffer(prog)
            fprog = struct.pack("=HxxxxxxQ", len(insns), ctypes.addressof(buf))
            assert libc.syscall(int(cmd[1]), 1, flags, fprog) == 0, ctypes.get_errno()
            os.write(1, prog.hex().encode() + b"\\n")
        elif cmd[0] == b"getitimers":
            os.write(1, (json.dumps([signal.getitimer(w) for w in range(3)]) + "\\n").encode())
""")


PR_SET_THP_DISABLE = 41


def make_steady():
    """In a child before exec: pin to one CPU, no THP (both inherited)."""
    import ctypes
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    ctypes.CDLL(None).prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0)


class Target:
    def __init__(self, threads=0, pass_fds=(), steady=False):
        """steady: one CPU and no transparent huge pages, so that the kernel
        changes nothing in its memory while it sleeps (khugepaged collapses,
        rseq cpu_id updates on a migration)."""
        env = dict(os.environ, CRAK_TARGET_THREADS=str(threads))
        self.proc = subprocess.Popen([sys.executable, "-c", TARGET], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, env=env, pass_fds=pass_fds,
                                     preexec_fn=make_steady if steady else None)
        self.pid = self.proc.pid
        self.info = json.loads(self.readline(timeout=60))
        self.nthreads = threads + 1

    def send(self, line):
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()

    def readline(self, timeout=10.0):
        """One line of output, or None if none came within timeout."""
        fd = self.proc.stdout.fileno()
        data = b""
        while not data.endswith(b"\n"):
            ready, _, _ = select.select([fd], [], [], timeout)
            if not ready:
                return None
            chunk = os.read(fd, 4096)
            if not chunk:
                return None
            data += chunk
        return data.decode().strip()

    def states(self):
        out = {}
        for tid in os.listdir(f"/proc/{self.pid}/task"):
            with open(f"/proc/{self.pid}/task/{tid}/stat") as f:
                out[int(tid)] = f.read().rsplit(")", 1)[1].split()[0]
        return out

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.proc.stdin.close()
        self.proc.stdout.close()


@pytest.fixture
def target():
    t = Target()
    yield t
    t.close()


@pytest.fixture
def make_target():
    made = []

    def make(**kwargs):
        t = Target(**kwargs)
        made.append(t)
        return t

    yield make
    for t in made:
        t.close()
