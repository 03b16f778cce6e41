"""The library API (pyckpt.pre_dump, pyckpt.dump, pyckpt.restore, pyckpt.check), in this
process: an incremental dump of a running counter restored with the handle restore returns.
(The supervisor is built on the same calls: test_host_supervise.py.)"""

import subprocess
import sys

import pytest

import pyckpt
from pyckpt.errors import PyckptError
from pyckpt.options import DumpOptions


def test_import_is_cheap():
    out = subprocess.run([sys.executable, "-c", "import pyckpt, sys; "
                          "print(sorted(m for m in sys.modules if m.startswith('pyckpt')))"],
                         capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['pyckpt']", out


def test_pre_dump_dump_restore(start_workload, harness, tmp_path):
    wl = start_workload("counter")
    wl.wait_numbers()
    options = DumpOptions(backend=harness.BACKEND)
    pre = pyckpt.pre_dump(wl.pid, tmp_path / "1", options)
    assert pre["pages"] > 0 and harness.untouched_problem(wl.pid) is None
    summary = pyckpt.dump(wl.pid, tmp_path / "2", DumpOptions(backend=harness.BACKEND, prev_images_dir="../1"))
    assert summary["pids"] == [wl.pid]
    # our own child: the dump (its tracer, in this process) took its exit status (SIGKILL) already
    wl.reap()
    assert harness.proc_status(wl.pid) is None, "the dump without -R did not kill it"
    job = pyckpt.restore(tmp_path / "2")
    assert job.pid == wl.pid
    wl.alive, wl.ours_by_pid = True, True
    wl.wait_numbers()
    wl.assert_passes()


def test_errors_are_pyckpt_errors(tmp_path):
    with pytest.raises(PyckptError):
        pyckpt.restore(tmp_path / "no-such-image")
    assert pyckpt.check().usable in (True, False)
