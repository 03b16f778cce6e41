"""Runs *inside* the guest (not collected on the host: no test_ prefix).

A harness self-check that needs none of the project's suites:
    PYCKPT_VM_RUNS="ptrace=tests/vm/guest_smoke.py" pytest tests/vm
"""
import os
import platform


def test_guest_runs_debian_61_kernel():
    assert platform.release().startswith("6.1."), platform.release()


def test_guest_environment():
    assert os.environ.get("PYCKPT_TEST_BACKEND") in ("kmod", "ptrace")
    assert os.environ.get("PYCKPT_TEST_BIG_MB") == "256"
    assert os.environ.get("PYTHONDONTWRITEBYTECODE") == "1"


def test_guest_tmp_is_writable(tmp_path):
    (tmp_path / "x").write_text("ok")
    assert (tmp_path / "x").read_text() == "ok"


def test_crak_device_matches_module():
    loaded = any(line.split()[0] == "crak" for line in open("/proc/modules"))
    assert os.path.exists("/dev/crak") == loaded
