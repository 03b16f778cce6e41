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
