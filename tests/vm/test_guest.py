"""What a guest run under qemu must show (see tests/vm/conftest.py)."""
from __future__ import annotations

from pathlib import Path

import pytest

import vm
import vm_results


def _log_tail(guest, name="guest.log", n=40):
    return vm_results.tail(Path(guest["out"]) / name, n)


def test_guest_booted_and_ran_the_command(guest):
    assert not guest.get("timed_out"), guest.get("error")
    assert guest["exit_code"] is not None, (
        f"{guest.get('error')}\n--- console tail ---\n{_log_tail(guest, 'console.log')}")


def test_custom_guest_command_succeeded(guest):
    if guest["plan"].get("guest_cmd") is None:
        pytest.skip("default guest command: judged per pytest run below")
    assert guest["exit_code"] == 0, (
        f"guest command exited {guest['exit_code']}\n--- guest.log tail ---\n{_log_tail(guest)}")


def pytest_generate_tests(metafunc):
    if "run_name" in metafunc.fixturenames:
        import os
        names = list(vm.parse_runs(os.environ.get("PYCKPT_VM_RUNS")))
        if os.environ.get("PYCKPT_VM_GUEST_CMD"):
            names = []
        metafunc.parametrize("run_name", names or [pytest.param(None, marks=pytest.mark.skip(
            reason="custom guest command: no in-guest pytest runs"))])


def test_in_guest_pytest_run_passed(guest, run_name):
    entry = guest["plan"]["runs"][run_name]
    if entry.get("skipped"):
        pytest.skip(f"run {run_name}: {entry['skipped']}")
    out = Path(guest["out"])
    log = f"pytest-{run_name}.log"
    junit = out / entry["junit"]
    assert junit.exists(), (
        f"run {run_name} wrote no {junit.name} (guest exit {guest['exit_code']})\n"
        f"--- {log} tail ---\n{_log_tail(guest, log)}\n--- guest.log tail ---\n{_log_tail(guest)}")
    s = vm_results.junit_summary(junit)
    assert s["tests"] > 0, f"run {run_name} collected no tests\n--- {log} tail ---\n{_log_tail(guest, log)}"
    assert s["failures"] + s["errors"] == 0, (
        f"run {run_name} (PYCKPT_TEST_BACKEND={run_name}, {' '.join(entry['present'])}): "
        f"{s['failures']} failed, {s['errors']} errors of {s['tests']}\n  "
        + "\n  ".join(s["failed"]) + f"\n--- {log} tail ---\n{_log_tail(guest, log)}")


def test_guest_dmesg_has_no_kernel_warnings(guest):
    text = (Path(guest["out"]) / "dmesg.txt").read_text(errors="replace")
    bad = vm_results.bad_dmesg_lines(text)
    assert not bad, "kernel log has warnings/oopses:\n" + "\n".join(bad[:60])


def test_crak_module_loaded(guest):
    if not guest["initramfs"].get("crak"):
        pytest.skip("crak.ko was not built (kmod/ has no module source yet)")
    assert guest["crak"] == "loaded", f"insmod crak.ko: {guest['crak']}"
    assert guest.get("crak_dev") == "present", "crak.ko loaded but /dev/crak did not appear"
