"""`tar c DIR | bzip2 > out.tar.bz2` dumped in the middle: after the restore
the pipeline finishes with a valid archive holding exactly the files."""

import hashlib
import random

import pytest

from apps_harness import host, require_packages, run, which

FILES = 16
FILE_SIZE = 1 << 20


def _make_tree(root):
    """FILES files of text that compresses only so-so (bzip2 takes seconds over it)."""
    rng = random.Random(10)
    words = [bytes(rng.choices(b"abcdefghijklmnopqrstuvwxyz", k=rng.randint(2, 9))) for _ in range(5000)]
    sums = {}
    for i in range(FILES):
        sub = root / f"d{i % 4}"
        sub.mkdir(parents=True, exist_ok=True)
        data = b" ".join(rng.choices(words, k=FILE_SIZE // 5))[:FILE_SIZE]
        (sub / f"f{i:02}.txt").write_bytes(data)
        sums[f"src/d{i % 4}/f{i:02}.txt"] = hashlib.sha256(data).hexdigest()
    return sums


@pytest.mark.quick
@pytest.mark.parametrize("leave_running", [False, True], ids=["dump", "dump-R"])
def test_tar_bzip2_pipeline(app, leave_running):
    require_packages("tar", "bzip2")
    a = app("tarbz2")
    sums = _make_tree(a.dir / "src")
    out = a.dir / "out.tar.bz2"
    a.start(["/bin/sh", "-c", f"{which('tar')} c src | {which('bzip2')} -9 > out.tar.bz2"])
    # mid-run: bzip2 has written its first block, tar is not done
    a.wait_for(lambda: out.exists() and out.stat().st_size > 0, "bzip2 output")
    assert len(host.descendants(a.root)) == 2, "tar and bzip2 should both still run at the dump"
    a.dump(leave_running=leave_running)
    if not leave_running:
        a.restore()
    assert a.wait_exit() == 0, a.log()
    run(["bzip2", "-t", out])
    listed = run(["tar", "tjf", out]).stdout.split()
    assert sorted(n for n in listed if not n.endswith("/")) == sorted(sums)
    check = a.dir / "check"
    check.mkdir()
    run(["tar", "xjf", out, "-C", check])
    got = {name: hashlib.sha256((check / name).read_bytes()).hexdigest() for name in sums}
    assert got == sums
