"""Bulk memory never passes through pyckpt's own memory: dumping and
restoring the big-memory workload keeps pyckpt small (pages are streamed
in chunks on dump and read by the kernel straight into the process on
restore)."""

import os
import subprocess
import sys

# Python, protobuf and click account for a few tens of MiB; a copy of the
# workload's memory would be PYCKPT_TEST_BIG_MB on top of that.
ALLOWED_MIB = 160

MEASURE = (
    "import resource, subprocess, sys\n"
    "rc = subprocess.run(sys.argv[1:], stdin=subprocess.DEVNULL).returncode\n"
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024, file=sys.stderr)\n"
    "sys.exit(rc)\n"
)


def peak_rss_mib(harness, *args):
    """Run pyckpt with args; return its peak resident size in MiB."""
    argv = [sys.executable, "-c", MEASURE, *harness.pyckpt_argv(*args)]
    res = subprocess.run(argv, cwd=harness.REPO, capture_output=True, text=True,
                         timeout=harness.PYCKPT_TIMEOUT, start_new_session=True)
    assert res.returncode == 0, f"{' '.join(map(str, args))} failed:\n{res.stderr}"
    return int(res.stderr.strip().splitlines()[-1])


def test_big_memory_is_streamed(start_workload, harness):
    big_mib = int(os.environ.get("PYCKPT_TEST_BIG_MB", "1024"))
    assert big_mib > ALLOWED_MIB, "the workload must be bigger than the bound for this test to mean anything"
    wl = start_workload("bigmem")
    dump_peak = peak_rss_mib(harness, "dump", "-t", wl.pid, "-D", wl.images, "--backend", harness.BACKEND)
    wl.reap()
    pages = sum(p.stat().st_size for p in wl.images.glob("pages-*.img")) // (1 << 20)
    # bigmem fills all but the last MiB of its region: that much must be in the image.
    assert pages >= big_mib - 1, f"only {pages} MiB of pages saved for a {big_mib} MiB workload"
    assert dump_peak < ALLOWED_MIB, f"pyckpt dump peaked at {dump_peak} MiB for {big_mib} MiB of memory"
    restore_peak = peak_rss_mib(harness, "restore", "-D", wl.images, "-d")
    wl.alive = wl.ours_by_pid = True  # restored with -d: reparented to us, reaped by PID
    assert restore_peak < ALLOWED_MIB, f"pyckpt restore peaked at {restore_peak} MiB for {big_mib} MiB of memory"
    wl.assert_passes()
