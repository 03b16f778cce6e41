"""Deleted files: a sparse one stays sparse in the image, and dump refuses,
naming the fd or mapping, every file restore could not open again as it is
(tests/workloads/ghosts.c; the dump/restore cases are in CASES)."""

import os
import re
import subprocess

import pytest


def test_sparse_ghost_image_is_small(start_workload, harness):
    """A 1 GiB deleted file with 12 KiB of data: only the data is saved."""
    wl = start_workload("ghosts-sparse")
    wl.dump()
    total = sum(p.stat().st_size for p in harness.image_files(wl.images))
    assert total < 16 << 20, f"the image is {total} bytes for 12 KiB of deleted-file data"
    wl.restore()
    wl.assert_passes()


@pytest.mark.parametrize("mode, words", [
    ("linked", "opened through a name since removed"),
    ("mounted", "restore could not reopen the same file"),
    ("deleted-exe", "maps a deleted file"),
])
def test_unreopenable_file_refused(start_workload, harness, mode, words):
    wl = start_workload(f"ghosts-{mode}")
    try:
        _refused(wl, harness, mode, words)
    finally:
        mount = wl.dir / "w" / "m"
        if os.path.ismount(mount):  # the workload unmounts it itself, unless killed
            subprocess.run(["umount", "-l", str(mount)], check=False)


def _refused(wl, harness, mode, words):
    res = wl.dump(check=False)
    assert res.returncode == 3, f"dumped what restore cannot reopen ({mode}): {res.describe()}"
    assert words in res.stderr and str(wl.pid) in res.stderr, res.describe()
    m = re.search(rf"^{mode} fd (\d+)$", wl.log(), re.M)
    if m:
        assert re.search(rf"\bfd {m.group(1)}\b", res.stderr), f"fd not named: {res.describe()}"
    assert not wl.images.exists(), f"image folder left behind: {sorted(os.listdir(wl.images))}"
    problem = harness.untouched_problem(wl.pid)
    assert problem is None, f"after the refused dump: {problem}"
    wl.assert_passes()
