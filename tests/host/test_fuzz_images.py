"""The image fuzzer's quick run (tests/fuzz/imagefuzz.py; `make fuzz` runs a long one):
real images of a few workloads, one structural mutation each with the manifest
re-signed, then `pyckpt restore`. Every case must be refused in one line naming
the image file (exit 4, or 5 for a conflict with this machine) with no process
left, or restored; never a traceback, a hang, a leftover stub or a file written
outside the image. The seeds of every class the long runs found come first."""

import importlib.util
import os

import pytest

from conftest import BACKEND, REPO

_spec = importlib.util.spec_from_file_location("imagefuzz", REPO / "tests" / "fuzz" / "imagefuzz.py")
imagefuzz = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(imagefuzz)

QUICK_CASES = int(os.environ.get("PYCKPT_FUZZ_CASES", "100"))

# (workload, seed) of cases that once failed, one or two per class (tests/unit/test_image_validation.py
# holds each class written by hand, independent of what the workloads' images look like).
REGRESSIONS = [
    ("tree", 1),          # mm vmas[].prot unknown bits: mprotect EINVAL in the target
    ("anonfds", 3),       # registers of another arch: ptrace EIO traceback
    ("counter", 8),       # page runs past the pages file: a refusal naming no image file
    ("tree", 41),         # a page run outside every mapping: preadv EFAULT in the target
    ("files", 46),        # fds naming a dropped open file: KeyError
    ("anonfds", 51),      # fds naming file id 0: KeyError: 0
    ("files", 26),        # fd 65536: dup3 EBADF in the target
    ("counter", 48),      # the root marked a zombie: AttributeError
    ("counter", 132),     # pstree and core disagree on the session: setpgid EPERM in the target
    ("anonfds", 163),     # empty cwd: chdir ENOENT in the target
    ("tree", 169),        # an unknown register set: refused after the tree was created
    ("counter", 16),      # a memfd object no mapping uses: TypeError
    ("tree", 25),         # an empty semaphore set: semget EINVAL plus a warning line
    ("memfdmap", 10041),  # an open file without a path: a refusal naming no image file
    ("memfdmap", 1019),   # file offset 2^63: mmap EOVERFLOW in the target
    ("files", 1042),      # mm end_data below start_data: PR_SET_MM_MAP EINVAL in the target
    ("counter", 1155),    # a file mapping's offset moved: saved pages past the file's end, a failed fill
    ("files", 1157),      # non-canonical fs_base: ptrace EIO traceback
    ("anonfds", 200051),  # an F_SETOWN owner outside the image: fcntl ESRCH in the target
    ("tree", 200085),     # inherited pages past a file's end (child's mapping offset moved): preadv EFAULT
    ("memfdmap", 200389), # ambient capabilities outside permitted: prctl EPERM in the target
    ("unix-pairs", 200166),  # a queued datagram's sender longer than sun_path: StopIteration traceback
    ("unix-pairs", 200886),  # a queued datagram from a name no socket of the image has: StopIteration
]


@pytest.mark.skipif(BACKEND != "ptrace", reason="the fuzzer restores on the host (ptrace backend)")
def test_image_fuzz_quick(workload_dir):
    workloads = imagefuzz.QUICK_WORKLOADS + ("memfdmap", "unix-pairs")
    seeds = REGRESSIONS + [(workloads[i % len(workloads)], i) for i in range(1000, 1000 + QUICK_CASES)]
    outcomes = imagefuzz.campaign(workloads, seeds, timeout=30, report=lambda o: None)
    bad = [o for o in outcomes if o.verdict not in imagefuzz.GOOD]
    assert len(outcomes) == len(seeds)
    assert any(o.verdict == "restored" for o in outcomes) and any(o.verdict == "refused-4" for o in outcomes)
    assert not bad, "\n".join(f"{o.workload}:{o.seed} {o.verdict}: {o.mutation} => {o.detail}" for o in bad[:20])


@pytest.mark.skipif(BACKEND != "ptrace", reason="restores on the host (ptrace backend)")
def test_refused_registers_of_a_thread_do_not_hang(workload_dir, tmp_path):
    """A second thread's register set the kernel refuses (a cut xstate), found by the fuzzer as a
    hang: the failed restore waited for a leader whose traced threads nobody reaped."""
    import shutil
    import subprocess
    import sys
    from pyckpt.images.proto import core_pb2
    imagefuzz.set_subreaper()
    os.chmod(tmp_path, 0o755)
    base = imagefuzz.dump_workload("threads", tmp_path)
    pid = min(p for p in imagefuzz.image_pids(base) if (base / f"core-{p}.img").exists())
    case = tmp_path / "case"
    shutil.copytree(base, case)
    task = core_pb2.Task()
    task.ParseFromString((case / f"core-{pid}.img").read_bytes())
    regset = task.threads[1].regs.extra[-1]
    regset.data = regset.data[: len(regset.data) // 2]
    (case / f"core-{pid}.img").write_bytes(task.SerializeToString())
    imagefuzz.resign(case)
    res = subprocess.run([sys.executable, "-m", "pyckpt", "restore", "-d", "-D", str(case)], cwd=REPO,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode in (4, 5) and res.stderr.count("\n") == 1, res.stderr
    assert not imagefuzz._live_strays(), "processes left after a refused restore"
