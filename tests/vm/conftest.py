"""VM tier: boot Debian's 6.1 kernel under qemu once per session.

Environment:
  PYCKPT_VM_ARCH       x86_64 (default) | aarch64 | mips64el
  PYCKPT_VM_GUEST_CMD  run this shell command in the guest instead of the test suite
  PYCKPT_VM_RUNS       the in-guest pytest runs, "kmod=tests/kmod,tests/host;ptrace=tests/host"
  PYCKPT_VM_TIMEOUT    seconds for the whole qemu run (default 2400)
  PYCKPT_VM_REUSE=1    judge the last run's results in .cache/vm/<arch>/out without booting
"""
from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest

TOOLS = Path(__file__).resolve().parents[2] / "tools" / "vm"
sys.path.insert(0, str(TOOLS))
import vm  # noqa: E402
import vm_arches  # noqa: E402

_summary: dict = {}


@pytest.fixture(scope="session")
def arch():
    return vm_arches.get(os.environ.get("PYCKPT_VM_ARCH", "x86_64"))


@pytest.fixture(scope="session")
def runs():
    return vm.parse_runs(os.environ.get("PYCKPT_VM_RUNS"))


@pytest.fixture(scope="session")
def guest(arch, runs):
    """Prepare (cached steps are no-ops), boot, run, and return the result dict."""
    guest_cmd = os.environ.get("PYCKPT_VM_GUEST_CMD")
    if os.environ.get("PYCKPT_VM_REUSE") == "1" and (vm.out_dir(arch) / "result.json").exists():
        res = json.loads((vm.out_dir(arch) / "result.json").read_text())
    else:
        if shutil.which(arch.qemu) is None:
            pytest.fail(f"{arch.qemu} is not installed: run `tools/vm/install-deps.sh {arch.name}` "
                        f"(or `make vm-test ARCH={arch.name}`, which does)", pytrace=False)
        vm.cache_dir(arch).mkdir(parents=True, exist_ok=True)
        vm.fetch(arch)
        if arch.root == "rootfs":
            vm.build_rootfs(arch)
        vm.build_module(arch)
        vm.build_initramfs(arch)
        res = vm.run(arch, guest_cmd, runs)
    res["plan"] = json.loads((vm.out_dir(arch) / "plan.json").read_text())
    res["initramfs"] = json.loads((vm.cache_dir(arch) / "initramfs.json").read_text())
    _summary.update(res)
    return res


def pytest_terminal_summary(terminalreporter):
    if not _summary:
        return
    s = _summary
    terminalreporter.write_line(
        f"vm tier: kernel {s.get('release')}, whole qemu run {s.get('wall_s')}s "
        f"(boot to guest command {s.get('boot_s')}s, guest command {s.get('guest_s')}s), "
        f"guest exit code {s.get('exit_code')}, crak.ko {s.get('crak')}; logs in {s.get('out')}")
