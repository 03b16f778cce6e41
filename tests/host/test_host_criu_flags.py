"""CRIU's flags on a real dump and restore: --ghost-limit refuses a deleted file
larger than the limit naming it (the target left running), -o names the log
inside -D, and the flags pyckpt accepts as they are change nothing."""

import os

DUMP_FLAGS = ("--file-locks", "--link-remap", "--tcp-established", "--skip-in-flight",
              "--manage-cgroups=ignore", "-v4")


def test_ghost_limit_refuses_a_larger_deleted_file(start_workload, harness):
    """ghosts-sparse holds a deleted file of 1 GiB (12 KiB of data): st_size counts, as in CRIU."""
    wl = start_workload("ghosts-sparse")
    res = wl.dump("--ghost-limit", "1M", check=False)
    assert res.returncode == 3, res.describe()
    assert "--ghost-limit (1048576 bytes)" in res.stderr and f"process {wl.pid} fd" in res.stderr, res.describe()
    assert "(deleted)" in res.stderr, res.describe()
    assert not wl.images.exists()
    assert harness.untouched_problem(wl.pid) is None
    wl.dump("--ghost-limit", "1G", "-o", "criu-style.log")
    assert (wl.images / "criu-style.log").stat().st_size > 0
    assert not (wl.images / "dump.log").exists()
    wl.restore("-o", "back.log")
    assert (wl.images / "back.log").stat().st_size > 0
    assert not (wl.images / "restore.log").exists()
    wl.assert_passes()


def test_accepted_flags_dump_and_restore(start_workload, tmp_path):
    wl = start_workload("locks")
    log = tmp_path / "abs-dump.log"
    res = wl.dump(*DUMP_FLAGS, "-o", log, leave_running=True)
    assert "DEBUG" in res.stderr, "-v4 shows debug lines on stderr"
    assert log.stat().st_size > 0 and not (wl.images / "dump.log").exists()
    wl.assert_passes()
    wl.restore("--tcp-close", "--file-locks", "--manage-cgroups=ignore", "-v0")
    assert wl.dir.joinpath("restore.err").read_text() == ""
    wl.assert_passes()
    assert os.path.exists(wl.images / "restore.log")
