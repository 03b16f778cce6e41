"""A real target through /dev/crak: freeze without a visible stop, registers,
pages, fds, signals, credentials, pipe peek, and thaw on close or holder death."""

import os
import signal
import subprocess
import sys
import tempfile
import time

from pyckpt import arch as archmod
from pyckpt.ptrace import Tracee

from pyckpt.sources import crak_uapi as uapi

from .crak import Session, ioctl

NT_PRSTATUS = 1
NT_PRFPREG = 2
ARCH = archmod.host()


def assert_no_stop_seen(target):
    """The parent (we are it) sees no stop; no thread shows up as stopped."""
    assert os.waitpid(target.pid, os.WNOHANG | os.WUNTRACED) == (0, 0)
    states = target.states()
    assert not set(states.values()) & {"T", "t"}, states


def test_freeze_is_invisible_and_thaw_resumes(target):
    with Session(target.pid) as s:
        assert s.freeze() == 1
        assert_no_stop_seen(target)
        target.send("echo while-frozen")
        assert target.readline(timeout=1.0) is None  # frozen: nobody reads
        s.thaw()
        # The read(2) interrupted by the freeze was restarted and gets the data.
        assert target.readline() == "echo while-frozen"
        assert s.freeze() == 1  # a second freeze on the same session works
    target.send("echo after")
    assert target.readline() == "echo after"


def wait_in_syscall(pid, name, timeout=10.0):
    """Until the thread is blocked in syscall `name` (it may still be on its way there)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open(f"/proc/{pid}/syscall") as f:
            if f.read().split()[0] == str(ARCH.SYSCALLS[name]):
                return
        time.sleep(0.01)
    raise AssertionError(f"{pid} is not in {name}()")


def test_registers_of_a_thread_blocked_in_read(target):
    wait_in_syscall(target.pid, "read")
    with Session(target.pid) as s:
        s.freeze()
        regs_bytes = s.regset(target.pid, NT_PRSTATUS)
        fp_bytes = s.regset(target.pid, NT_PRFPREG) if ARCH.NAME != "mips64" else None
    regs = archmod.unpack_gpregs(ARCH, regs_bytes)
    # Parked in get_signal() before the restart fix-up: a PTRACE_INTERRUPT stop.
    assert ARCH.interrupted_syscall(regs, archmod.RESTART_ERRNOS) == ARCH.SYSCALLS["read"]
    assert ARCH.syscall_result(regs) == -archmod.ERESTARTSYS
    assert regs[ARCH.IP] and regs[ARCH.SP]

    # After thaw the read restarted; interrupting it with ptrace must show the
    # very same registers.
    tracee = Tracee(target.pid)
    tracee.seize()
    try:
        tracee.stop()
        ptrace_regs = tracee.get_regset(NT_PRSTATUS, len(regs_bytes))
        ptrace_fp = tracee.get_regset(NT_PRFPREG, len(fp_bytes)) if fp_bytes else None
    finally:
        tracee.detach()
    assert archmod.unpack_gpregs(ARCH, ptrace_regs) == regs
    assert ptrace_regs == regs_bytes
    if fp_bytes:
        assert ptrace_fp == fp_bytes
    target.send("echo still-fine")
    assert target.readline() == "echo still-fine"


def test_threads_are_all_frozen_and_listed(make_target):
    target = make_target(threads=3)
    with Session(target.pid) as s:
        tids = sorted(int(t) for t in os.listdir(f"/proc/{target.pid}/task"))
        assert s.threads() == tids
        assert s.freeze() == len(tids) == 4
        assert_no_stop_seen(target)
        for tid in tids:
            assert len(s.regset(tid, NT_PRSTATUS)) == archmod.gpregs_size(ARCH)
    target.send("echo ok")
    assert target.readline() == "echo ok"


def test_pages_dumped_equal_the_targets_memory(target):
    addr, page = target.info["addr"], target.info["page"]
    with Session(target.pid) as s, tempfile.TemporaryFile() as out:
        s.freeze()
        q, runs = s.dump_pages(addr, addr + 4 * page, out.fileno(), offset=page)
        # page 0 and 2 written, 3 holds the zero page, 1 was never touched
        assert runs == [(addr, 1), (addr + 2 * page, 2)]
        assert (q.nr_pages, q.next, q.out_offset) == (3, addr + 4 * page, 4 * page)
        out.seek(page)
        data = out.read()
        assert data[:page] == bytes(range(256)) * (page // 256)
        assert data[page:2 * page] == b"\xa5" * page
        assert data[2 * page:] == bytes(page)

        # Bounded by the caller's run buffer: stops where a new run would start.
        q, runs = s.dump_pages(addr, addr + 4 * page, out.fileno(), runs_cap=1)
        assert runs == [(addr, 1)] and q.next == addr + 2 * page and q.nr_pages == 1


def proc_maps(pid):
    out = []
    with open(f"/proc/{pid}/maps") as f:
        for line in f:
            parts = line.split(None, 5)
            start, end = (int(x, 16) for x in parts[0].split("-"))
            name = parts[5].strip() if len(parts) > 5 else ""
            if name == "[vsyscall]":
                continue  # the gate area is no VMA
            out.append((start, end, parts[1], int(parts[2], 16), int(parts[4]), name))
    return out


def test_vmas_match_proc_maps(target):
    from pyckpt.sources import crak_uapi as uapi
    with Session(target.pid) as s:
        s.freeze()
        mine = []
        for v, name in s.vmas():
            perms = "".join(c if v.prot_flags & bit else "-" for c, bit in
                            (("r", uapi.VMA_READ), ("w", uapi.VMA_WRITE), ("x", uapi.VMA_EXEC)))
            perms += "s" if v.prot_flags & uapi.VMA_MAYSHARE else "p"
            mine.append((v.start, v.end, perms, v.offset, v.ino, name))
        assert mine == proc_maps(target.pid)
        kinds = {name: v.kind for v, name in s.vmas()}
        assert kinds["[stack]"] == uapi.VMA_KIND_STACK
        assert kinds["[vdso]"] == uapi.VMA_KIND_SPECIAL


def test_fds_match_proc(target):
    from pyckpt.sources import crak_uapi as uapi
    with Session(target.pid) as s:
        fds = s.fds()
    proc_fds = sorted(int(n) for n in os.listdir(f"/proc/{target.pid}/fd"))
    assert [q.fd for q, _ in fds] == proc_fds
    for q, name in fds:
        assert name == os.readlink(f"/proc/{target.pid}/fd/{q.fd}")
        with open(f"/proc/{target.pid}/fdinfo/{q.fd}") as f:
            info = dict(line.split(":", 1) for line in f if ":" in line)
        assert q.pos == int(info["pos"])
        cloexec = os.O_CLOEXEC if q.fd_flags & uapi.FD_CLOEXEC else 0
        assert q.f_flags | cloexec == int(info["flags"], 8)
        st = os.stat(f"/proc/{target.pid}/fd/{q.fd}")
        assert (q.ino, q.mode) == (st.st_ino, st.st_mode)
    stdin = fds[0][0]
    assert stdin.kind == uapi.FD_KIND_PIPE and stdin.pipe_id == stdin.ino


def test_pipe_peek_does_not_consume(make_target):
    r, w = os.pipe()
    try:
        os.write(w, b"buffered bytes")
        target = make_target(pass_fds=(r,))
        with Session(target.pid) as s:
            s.freeze()
            q, data = s.pipe_peek(r)
            assert data == b"buffered bytes"
            assert q.nr_bytes == len(data) and q.pipe_size >= 4096
            q, data = s.pipe_peek(r, size=4)
            assert data == b"buff" and q.nr_bytes == 14
        target.send(f"readfd {r}")
        assert target.readline() == "buffered bytes"
    finally:
        os.close(r)
        os.close(w)


def status_fields(pid):
    with open(f"/proc/{pid}/status") as f:
        return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)


def test_signals_are_read_without_dequeuing(target):
    usr1 = signal.SIGUSR1
    with Session(target.pid) as s:
        s.freeze()
        acts = s.sigactions()
        assert acts[signal.SIGUSR2 - 1].handler not in (0, 1)  # a real handler
        assert acts[signal.SIGUSR1 - 1].handler == 0  # SIG_DFL
        ts = s.thread_signals(target.pid)
        status = status_fields(target.pid)
        mask = ts.blocked[0] | ts.blocked[1] << 64
        assert mask == int(status["SigBlk"], 16)
        shared = ts.shared_pending[0] | ts.shared_pending[1] << 64
        assert shared == int(status["ShdPnd"], 16) and shared & (1 << (usr1 - 1))
        q, entries = s.pending(shared=True)
        assert q.nr_queued == 1 and entries[0].signo == usr1
        assert int.from_bytes(bytes(entries[0].info[:4]), sys.byteorder) == usr1
        # still pending: a second look sees the same
        q, entries = s.pending(shared=True)
        assert q.nr_queued == 1
        assert s.pending(tid=target.pid)[0].nr_queued == 0


def test_credentials_match_proc(target):
    with Session(target.pid) as s:
        creds, groups = s.creds()
    status = status_fields(target.pid)
    assert [creds.uid, creds.euid, creds.suid, creds.fsuid] == [int(x) for x in status["Uid"].split()]
    assert [creds.gid, creds.egid, creds.sgid, creds.fsgid] == [int(x) for x in status["Gid"].split()]
    assert sorted(groups) == sorted(int(x) for x in status["Groups"].split())
    assert creds.cap_effective == int(status["CapEff"], 16)
    assert creds.cap_bset == int(status["CapBnd"], 16)


def test_closing_the_session_thaws(target):
    s = Session(target.pid)
    s.freeze()
    target.send("echo pending-read")
    assert target.readline(timeout=1.0) is None
    s.close()
    assert target.readline() == "echo pending-read"


def test_killing_the_session_holder_thaws(target):
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time\n"
         "from tests.kmod.crak import Session\n"
         f"s = Session({target.pid}); s.freeze()\n"
         "print('frozen', flush=True); time.sleep(600)"],
        stdout=subprocess.PIPE, cwd=os.path.dirname(os.path.dirname(os.path.dirname(
            os.path.abspath(__file__)))))
    try:
        assert holder.stdout.readline().strip() == b"frozen"
        assert_no_stop_seen(target)
        target.send("echo after-holder")
        assert target.readline(timeout=1.0) is None
        holder.kill()
        holder.wait()
        assert target.readline() == "echo after-holder"
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()


def stop(target):
    wait_in_syscall(target.pid, "read")
    os.kill(target.pid, signal.SIGSTOP)
    assert os.waitpid(target.pid, os.WUNTRACED)[1] >> 8 == signal.SIGSTOP


def test_a_stopped_target_counts_as_frozen_and_thaw_leaves_it_stopped(target):
    stop(target)
    with Session(target.pid) as s:
        f = uapi.Freeze()
        ioctl(s.fd, "FREEZE", f)
        assert (f.nr_threads, f.nr_stopped) == (1, 1)
        regs = archmod.unpack_gpregs(ARCH, s.regset(target.pid, NT_PRSTATUS))
        # Stopped inside get_signal() of the interrupted read(2): as ptrace shows it.
        assert ARCH.interrupted_syscall(regs, archmod.RESTART_ERRNOS) == ARCH.SYSCALLS["read"]
        s.thaw()
        assert target.states() == {target.pid: "T"}
        assert os.waitpid(target.pid, os.WNOHANG | os.WUNTRACED | os.WCONTINUED) == (0, 0)
        assert s.freeze() == 1  # again, on the same session
    assert target.states() == {target.pid: "T"}  # close thaws: still stopped
    target.send("echo continued")
    assert target.readline(timeout=1.0) is None
    os.kill(target.pid, signal.SIGCONT)
    assert target.readline() == "echo continued"


def test_sigcont_while_frozen_parks_the_stopped_target(target):
    stop(target)
    with Session(target.pid) as s:
        assert s.freeze() == 1
        target.send("echo woke")
        os.kill(target.pid, signal.SIGCONT)
        assert target.readline(timeout=1.0) is None  # woke, but parked in crak.ko
        assert target.states() == {target.pid: "D"}
        s.thaw()
        assert target.readline() == "echo woke"
    target.send("echo after")
    assert target.readline() == "echo after"


def test_sigkill_of_a_stopped_frozen_target(target):
    stop(target)
    with Session(target.pid) as s:
        assert s.freeze() == 1
        os.kill(target.pid, signal.SIGKILL)
        assert os.waitpid(target.pid, 0)[1] & 0x7f == signal.SIGKILL
    target.proc.returncode = -signal.SIGKILL
