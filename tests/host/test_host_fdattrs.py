"""--shell-job with terminals that are not the job's: restore needs no terminal of its own."""

def test_shell_job_without_a_terminal_keeps_other_terminals(start_workload, harness):
    """/dev/console, /dev/tty1 and a pty of the tree, none the controlling terminal,
    dumped with --shell-job and restored by a pyckpt whose stdin is not a terminal."""
    wl = start_workload("fdattrs-ttys")
    wl.dump("--shell-job")
    wl.restore("--shell-job")
    problem = harness.wait_untouched(wl.pid)
    assert problem is None, f"restored process: {problem}"
    wl.assert_passes()


def test_proc_folder_of_a_dead_process_refused(start_workload, harness):
    """/proc/PID of a child that exited and was reaped: refused by name, the target runs on."""
    wl = start_workload("fdattrs-procdead")
    res = wl.dump(check=False)
    assert res.returncode == 3, f"dumped an fd on a dead process's /proc folder: {res.describe()}"
    assert "which has exited" in res.stderr and str(wl.pid) in res.stderr, res.describe()
    assert not wl.images.exists(), "image folder left behind"
    problem = harness.untouched_problem(wl.pid)
    assert problem is None, f"after the refused dump: {problem}"
    wl.assert_passes()
