"""The ptrace and kmod sources make the same image of the same frozen state.

A workload that sits blocked in a syscall (sigsuspend in wl_wait(), or a
read() on an empty pipe) is dumped twice with -R, first with the ptrace
source, then with the kmod source; between the two it is thawed and goes
straight back into the same syscall, so both dumps see the same registers,
memory and kernel state. Every image file is compared message by message
(protobuf, decoded) and every raw file byte for byte; only the inventory's
`backend` and `created` fields, the manifest (checksums, which cover those
fields) and the logs may differ.
"""

import difflib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from google.protobuf import text_format

from pyckpt.images.proto import core_pb2, files_pb2, inventory_pb2, ipc_pb2, mm_pb2

from .conftest import make_steady

REPO = Path(__file__).resolve().parents[2]
WORKLOADS = REPO / "tests" / "workloads"
SCALE = float(os.environ.get("PYCKPT_TEST_TIMEOUT_SCALE") or 10)

# workload id -> argv after the binary; each blocks in a restartable syscall
# (not `registers`, which spins in user mode, nor sleep/nanosleep, which
# come back as restart_syscall after the first thaw)
CASES = {
    "read": ("syscalls", "read"),
    "memory": ("memory",),
    "signals": ("signals",),
    "attrs": ("attrs",),
    "files": ("files",),
    "memfdmap": ("memfdmap",),
    "sysvipc": ("sysvipc",),
    # socket queues: MSG_PEEK + SO_PEEK_OFF (ptrace) vs CRAK_IOC_UNIX_QUEUE (kmod)
    "unix-pairs": ("unixsk", "pairs"),
    "unix-listen": ("unixsk", "listen"),
    "unix-dgram": ("unixsk", "dgram"),
}

MESSAGES = {
    "ipc": ipc_pb2.Ipc,
    "inventory": inventory_pb2.Inventory, "pstree": files_pb2.PsTree,
    "core": core_pb2.Task, "mm": mm_pb2.Mm, "pagemap": mm_pb2.PageMap,
    "fds": files_pb2.FdTable, "files": files_pb2.Files,
}


@pytest.fixture(scope="module")
def bindir(tmp_path_factory):
    if subprocess.run(["make", "-q", "-C", str(WORKLOADS)], capture_output=True).returncode == 0:
        return WORKLOADS / "build"
    build = tmp_path_factory.mktemp("workloads-build")
    res = subprocess.run(["make", "-C", str(WORKLOADS), f"BUILD={build}"],
                         capture_output=True, text=True)
    if res.returncode != 0:
        pytest.fail(f"building the workloads failed:\n{res.stdout}{res.stderr}")
    return build


def thread_syscalls(pid):
    """{tid: /proc/PID/task/TID/syscall} — 'running' for a thread not blocked in one."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/syscall") as f:
            out[tid] = f.read().strip()
    return out


def wait_blocked(pid, log, timeout):
    """Until every thread is blocked in the same syscall, at the same place, for a while."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        now = thread_syscalls(pid)
        if now == last and not any(v == "running" or v.startswith("-1") for v in now.values()):
            return now
        last = now
        time.sleep(0.3)
    pytest.fail(f"process {pid} did not settle in a syscall: {last}; log:\n{log.read_text()}")


def dump(pid, images, backend, cwd):
    argv = [sys.executable, "-m", "pyckpt", "dump", "-t", str(pid), "-D", str(images),
            "--backend", backend, "-R"]
    res = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=300 * SCALE,
                         stdin=subprocess.DEVNULL)
    assert res.returncode == 0, f"{' '.join(argv[2:])} exited {res.returncode}:\n{res.stdout}{res.stderr}"


def decode(name, data):
    kind = name.split("-", 1)[0].split(".", 1)[0]
    cls = MESSAGES.get(kind)
    if cls is None:
        return None
    msg = cls()
    msg.ParseFromString(data)
    return msg


def differences(ptrace_dir, kmod_dir):
    names = sorted(set(os.listdir(ptrace_dir)) | set(os.listdir(kmod_dir)))
    problems = []
    for name in names:
        if name.endswith(".log") or name == "manifest.img":
            continue
        p, k = ptrace_dir / name, kmod_dir / name
        if not p.exists() or not k.exists():
            problems.append(f"{name}: only in {'kmod' if k.exists() else 'ptrace'} image")
            continue
        pd, kd = p.read_bytes(), k.read_bytes()
        pm, km = decode(name, pd), decode(name, kd)
        if pm is None:
            if pd != kd:
                at = next((i for i, (a, b) in enumerate(zip(pd, kd)) if a != b), min(len(pd), len(kd)))
                problems.append(f"{name}: raw files differ (sizes {len(pd)} / {len(kd)}, "
                                f"first difference at byte {at:#x})")
            continue
        if name == "inventory.img":
            assert pm.backend == "ptrace" and km.backend == "kmod"
            for m in (pm, km):
                m.ClearField("backend")
                m.ClearField("created")
        if pm != km:
            diff = difflib.unified_diff(text_format.MessageToString(pm).splitlines(),
                                        text_format.MessageToString(km).splitlines(),
                                        "ptrace/" + name, "kmod/" + name, lineterm="", n=2)
            problems.append("\n".join(list(diff)[:80]))
    return problems


@pytest.mark.parametrize("case", sorted(CASES))
def test_ptrace_and_kmod_images_are_equal(case, bindir, tmp_path):
    argv = [str(bindir / CASES[case][0]), *CASES[case][1:]]
    log = tmp_path / "out.log"
    with open(log, "ab") as out:
        # make_steady: the kernel itself must not change the target's memory
        # between the two dumps: one CPU (it writes the CPU number into the
        # rseq area when a thread returns to user mode) and no THP (khugepaged
        # collapsing a huge page makes holes present, seen in the memory case).
        wl = subprocess.Popen(argv, cwd=tmp_path, stdin=subprocess.DEVNULL, stdout=out,
                              stderr=out, start_new_session=True, preexec_fn=make_steady)
    try:
        deadline = time.monotonic() + 60 * SCALE
        while "READY" not in log.read_text().splitlines():
            assert wl.poll() is None, f"{case} exited early:\n{log.read_text()}"
            assert time.monotonic() < deadline, f"{case}: no READY:\n{log.read_text()}"
            time.sleep(0.05)
        before = wait_blocked(wl.pid, log, 30 * SCALE)
        dump(wl.pid, tmp_path / "ptrace", "ptrace", tmp_path)
        after = wait_blocked(wl.pid, log, 30 * SCALE)
        assert after == before, "the workload moved between the two dumps"
        dump(wl.pid, tmp_path / "kmod", "kmod", tmp_path)
        problems = differences(tmp_path / "ptrace", tmp_path / "kmod")
        keep = os.environ.get("PYCKPT_TEST_KEEP_IMAGES")
        if problems and keep:
            shutil.copytree(tmp_path, Path(keep) / f"{case}-{wl.pid}", ignore_dangling_symlinks=True)
        assert not problems, "images differ:\n" + "\n\n".join(problems)
        # Both dumps left it running, unharmed.
        os.kill(wl.pid, signal.SIGTERM)
        rc = wl.wait(60 * SCALE)
        lines = log.read_text().splitlines()
        assert rc == 0 and lines[-1] == "PASS", f"{case}: exit {rc}, log:\n{log.read_text()}"
    finally:
        if wl.poll() is None:
            wl.kill()
            wl.wait()
