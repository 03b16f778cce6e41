"""Guard regions (MADV_GUARD_INSTALL, Linux 6.13+): saved and installed again.

The guard workload checks that its guard pages fault and the rest of the
mapping keeps its data, before the dump and after the restore, in a parent
and its child. On a kernel without guard regions there is nothing to
checkpoint: the test skips, saying so.
"""

import ctypes
import mmap

import pytest

MADV_GUARD_INSTALL = 102


def _kernel_has_guard_regions():
    libc = ctypes.CDLL(None, use_errno=True)
    libc.madvise.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
    area = mmap.mmap(-1, mmap.PAGESIZE)
    try:
        address = ctypes.addressof(ctypes.c_char.from_buffer(area))
        return libc.madvise(address, mmap.PAGESIZE, MADV_GUARD_INSTALL) == 0
    finally:
        area.close()


needs_guards = pytest.mark.skipif(not _kernel_has_guard_regions(),
                                  reason="this kernel has no guard regions (MADV_GUARD_INSTALL, Linux 6.13+)")


@needs_guards
def test_guard_baseline(start_workload):
    start_workload("guard").assert_passes()


@needs_guards
def test_guard_dump_restore(start_workload, harness):
    wl = start_workload("guard")
    pid = wl.pid
    wl.dump()
    wl.restore()
    assert wl.pid == pid
    problem = harness.wait_untouched(pid)
    assert problem is None, f"restored process: {problem}"
    wl.assert_passes()


@needs_guards
def test_guard_dump_leave_running(start_workload, harness):
    wl = start_workload("guard")
    wl.dump(leave_running=True)
    problem = harness.wait_untouched(wl.pid)
    assert problem is None, f"after dump -R: {problem}"
    wl.assert_passes()
