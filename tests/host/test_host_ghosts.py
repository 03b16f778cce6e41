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


def test_mapped_file_times_kept_by_dump(start_workload, harness):
    """dump -R reads nothing through a mapped file: its atime stays."""
    wl = start_workload("ghosts-mapped")
    wl.dump(leave_running=True)
    assert harness.wait_untouched(wl.pid) is None
    wl.assert_passes()


def test_mapped_file_times_kept_by_restore(start_workload, harness):
    wl = start_workload("ghosts-mapped")
    wl.dump()
    wl.restore()
    wl.assert_passes()


@pytest.mark.parametrize("mode, words", [
    ("linked", "opened through a name since removed"),
    ("mounted", "restore could not reopen the same file"),
    ("outside", "outside the dump"),
    ("deleted-exe", "its executable"),
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


def test_older_image_without_ghost_record(start_workload, harness):
    """An image written before deleted files carried their extents and owner
    (whole contents in ghost-<id>.img) still restores, as it used to."""
    from pyckpt.images import FILES, MANIFEST
    from pyckpt.images.proto import files_pb2, inventory_pb2
    from pyckpt.images.store import _sha256_of

    wl = start_workload("files")
    wl.dump()
    files = files_pb2.Files.FromString((wl.images / FILES).read_bytes())
    old = [f for f in files.files if f.HasField("deleted")]
    assert old, "the files workload holds no deleted file"
    for entry in old:
        whole = (wl.images / entry.ghost).read_bytes()
        assert len(whole) == entry.file.size, "one extent expected: the file has no holes"
        entry.ClearField("deleted")
    (wl.images / FILES).write_bytes(files.SerializeToString())
    manifest = inventory_pb2.Manifest.FromString((wl.images / MANIFEST).read_bytes())
    for e in manifest.entries:
        if e.name == FILES:
            e.sha256, e.size = _sha256_of(wl.images / FILES)
    (wl.images / MANIFEST).write_bytes(manifest.SerializeToString())
    wl.restore()
    wl.assert_passes()
