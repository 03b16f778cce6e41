"""--shell-job with terminals that are not the job's: restore needs no terminal of its own;
fd state refused by name."""

import pytest


def test_shell_job_without_a_terminal_keeps_other_terminals(start_workload, harness):
    """/dev/console, /dev/tty1 and a pty of the tree, none the controlling terminal,
    dumped with --shell-job and restored by a pyckpt whose stdin is not a terminal."""
    wl = start_workload("fdattrs-ttys")
    wl.dump("--shell-job")
    wl.restore("--shell-job")
    problem = harness.wait_untouched(wl.pid)
    assert problem is None, f"restored process: {problem}"
    wl.assert_passes()


@pytest.mark.parametrize("mode, words", [("procdead", "which has exited"),
                                         ("packets", "packet-mode (O_DIRECT) pipe with 7 bytes")])
def test_fd_state_refused(start_workload, harness, mode, words):
    """/proc/PID of a child that exited and was reaped; a packet-mode pipe holding packets:
    refused by name, the target runs on as it was."""
    wl = start_workload(f"fdattrs-{mode}")
    res = wl.dump(check=False)
    assert res.returncode == 3, f"dumped fdattrs {mode}: {res.describe()}"
    assert words in res.stderr and str(wl.pid) in res.stderr, res.describe()
    assert not wl.images.exists(), "image folder left behind"
    problem = harness.untouched_problem(wl.pid)
    assert problem is None, f"after the refused dump: {problem}"
    wl.assert_passes()
