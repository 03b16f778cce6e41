"""pyckpt.sources.kmod.KmodSource against a live target: handshake, freeze,
state equal to the ptrace source's, page dump, thaw and kill."""

import errno
import json
import os
import signal

import pytest

from pyckpt import proc
from pyckpt.errors import FreezeError, NoSuchProcess, PyckptError
from pyckpt.sources import crak_uapi as uapi
from pyckpt.sources import kmod
from pyckpt.sources.kmod import KmodSource
from pyckpt.sources.ptrace import PtraceSource


def test_probe_reports_the_abi_version():
    assert kmod.probe() == uapi.ABI_VERSION


def test_version_mismatch_names_both_versions(monkeypatch):
    monkeypatch.setattr(uapi, "ABI_VERSION", uapi.ABI_VERSION + 40)
    with pytest.raises(PyckptError) as exc:
        kmod.probe()
    msg = str(exc.value)
    assert f"version {uapi.ABI_VERSION}" in msg and "crak.ko speaks ABI version" in msg


def test_refuses_its_own_pid_and_missing_ones():
    with pytest.raises(FreezeError):
        KmodSource(os.getpid(), None).freeze()
    with pytest.raises(NoSuchProcess):
        KmodSource(4194303, None).freeze()


def private_vmas(pid):
    return [v for v in proc.read_vmas(pid) if not v.shared and not v.path.startswith("[v")]


def snapshot(source_cls, pid, tmp_path):
    src = source_cls(pid, None)
    with src:
        assert src.freeze() == [pid]  # already frozen by `with`: the same answer
        state = src.collect(pid)
        vmas = private_vmas(pid)
        path = tmp_path / f"pages-{src.name}"
        with open(path, "wb", buffering=0) as out:
            out.write(b"HEAD")  # dump_pages writes at the file's position
            runs = src.dump_pages(pid, vmas, out)
            assert out.tell() == 4 + sum(r.nr_pages for r in runs) * os.sysconf("SC_PAGE_SIZE")
        src.release(kill=False)
        src.release(kill=False)  # safe twice
    return state, [(r.vaddr, r.nr_pages) for r in runs], path.read_bytes()


def test_state_and_pages_equal_the_ptrace_sources(make_target, tmp_path):
    # steady: one CPU (the kernel writes the CPU number into each thread's rseq
    # area) and no THP (khugepaged would fill holes), so memory stays as it is.
    t = make_target(threads=2, steady=True)
    # Nothing runs in between: the target goes straight back into read(2).
    ks, kruns, kpages = snapshot(KmodSource, t.pid, tmp_path)
    ps, pruns, ppages = snapshot(PtraceSource, t.pid, tmp_path)
    assert [th.tid for th in ks.threads] == [th.tid for th in ps.threads]
    assert ks.threads[0].tid == t.pid
    for k, p in zip(ks.threads, ps.threads):
        assert k.regsets.keys() == p.regsets.keys()
        for name in k.regsets:
            assert k.regsets[name] == p.regsets[name], f"thread {k.tid} regset {name}"
        for field in ("sigmask", "pending", "rseq", "altstack", "clear_child_tid", "robust_list"):
            assert getattr(k, field) == getattr(p, field), f"thread {k.tid} {field}"
    for field in ("sigactions", "shared_pending", "brk", "pdeathsig", "dumpable", "stopped",
                  "itimers"):
        assert getattr(ks, field) == getattr(ps, field), field
    assert ks.sigactions, "the target has a SIGUSR2 handler"
    assert ks.threads[0].pending == [] and ks.shared_pending, "SIGUSR1 is pending for the process"
    assert kruns == pruns
    assert kpages == ppages
    # thawed: it still answers
    t.send("echo after")
    assert t.readline() == "echo after"


def test_itimers_as_getitimer_reports_them(target, tmp_path):
    target.send("setitimers")
    assert target.readline() == "ok"
    ks = snapshot(KmodSource, target.pid, tmp_path)[0]
    target.send("getitimers")
    own = json.loads(target.readline())  # [[value_s, interval_s]] by which
    ps = snapshot(PtraceSource, target.pid, tmp_path)[0]
    assert [(w, i) for w, _, i in ks.itimers] == [(0, 500_000_000), (1, 0), (2, 450_000_000)]
    assert [(w, i) for w, _, i in ps.itimers] == [(w, i) for w, _, i in ks.itimers]
    kv, pv = [v for _, v, _ in ks.itimers], [v for _, v, _ in ps.itimers]
    # REAL runs on while frozen: the target read it later, ptrace later still.
    assert 250_000_000 < pv[0] <= own[0][0] * 1e6 <= kv[0] <= 300_000_000
    # The CPU timers only move while the target runs: a few ms of Python
    # between the kmod read and its own getitimer (tick-sampled, 4 ms each);
    # ptrace's injection of ~100 syscalls costs it more CPU time.
    for which in (1, 2):
        assert 0 <= kv[which] - own[which][0] * 1e6 < 50_000, (which, kv, own)
        assert 0 <= kv[which] - pv[which] < 2_000_000, (which, kv, pv)
    # setitimer rounds a CPU timer up by one tick
    assert kv[1] <= 400_020_000 and kv[2] <= 7_020_000


def state_letter(pid):
    return proc.read_stat(pid).state


def test_a_job_control_stopped_process_is_frozen_as_ptrace_sees_it(target, tmp_path):
    os.kill(target.pid, signal.SIGSTOP)
    os.waitpid(target.pid, os.WUNTRACED)
    ks = snapshot(KmodSource, target.pid, tmp_path)[0]
    assert state_letter(target.pid) == "T"  # thaw left it stopped
    ps = snapshot(PtraceSource, target.pid, tmp_path)[0]
    assert state_letter(target.pid) == "T"
    assert ks.stopped and ps.stopped
    for k, p in zip(ks.threads, ps.threads):
        for name in k.regsets:
            assert k.regsets[name] == p.regsets[name], f"thread {k.tid} regset {name}"
        for field in ("sigmask", "pending", "altstack", "clear_child_tid", "robust_list"):
            assert getattr(k, field) == getattr(p, field), f"thread {k.tid} {field}"
    target.send("echo still-stopped")
    assert target.readline(timeout=1.0) is None
    os.kill(target.pid, signal.SIGCONT)
    assert target.readline() == "echo still-stopped"


def test_release_kill_leaves_the_target_to_its_parent(target):
    src = KmodSource(target.pid, None)
    src.freeze()
    src.release(kill=True)
    src.release(kill=True)
    _, status = os.waitpid(target.pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL


def test_error_on_exit_thaws(target):
    with pytest.raises(RuntimeError):
        with KmodSource(target.pid, None) as src:
            assert src.frozen
            raise RuntimeError("boom")
    target.send("echo alive")
    assert target.readline() == "echo alive"


def test_ioctl_errors_name_what_failed(target):
    src = KmodSource(target.pid, None)
    with src:
        with pytest.raises(NoSuchProcess) as exc:
            src._thread_state(target.pid, os.getpid())
        assert "thread" in str(exc.value) and os.strerror(errno.ESRCH) in str(exc.value)
        src.release(kill=False)


def test_pipe_contents_are_left_in_place(make_target):
    r, w = os.pipe()
    try:
        os.write(w, b"queued bytes")
        t = make_target(pass_fds=(r,))
        src = KmodSource(t.pid, None)
        with src:
            assert src.pipe_contents(t.pid, r, 65536) == b"queued bytes"
            src.release(kill=False)
        t.send(f"readfd {r}")
        assert t.readline() == "queued bytes"
    finally:
        os.close(r)
        os.close(w)
