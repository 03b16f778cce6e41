"""tmux with a bash window and a top window: after the restore top's pane
still updates (capture-pane changes) and bash runs what send-keys types."""

import time

import pytest

from apps_harness import TIMEOUT, require_packages, run, which


def _tmux(a, *args, check=True):
    return run([which("tmux"), "-S", a.dir / "sock", *args], cwd=a.dir, check=check,
               env={"PATH": "/usr/bin:/bin", "TERM": "xterm", "HOME": str(a.dir)})


def _pane(a, target):
    return _tmux(a, "capture-pane", "-p", "-t", target).stdout


def _wait_pane(a, target, predicate, what):
    deadline = time.monotonic() + TIMEOUT
    while True:
        text = _pane(a, target)
        if predicate(text):
            return text
        if time.monotonic() > deadline:
            pytest.fail(f"tmux pane {target}: no {what}; it shows:\n{text}")
        time.sleep(0.1)


def _server_pid(a):
    return int(_tmux(a, "display-message", "-p", "#{pid}").stdout)


def _check_working(a, token):
    """top's pane changes by itself; bash answers what we type."""
    first = _wait_pane(a, "app:top", lambda t: "load average" in t, "top screen")
    _wait_pane(a, "app:top", lambda t: t != first and "load average" in t, "top refresh")
    _tmux(a, "send-keys", "-t", "app:sh", f"echo {token}-$((6*7))", "Enter")
    _wait_pane(a, "app:sh", lambda t: f"{token}-42" in t.split(), f"bash output {token}-42")


@pytest.mark.quick
@pytest.mark.parametrize("leave_running", [False, True], ids=["dump", "dump-R"])
def test_tmux_bash_top(app, leave_running):
    require_packages("tmux", "procps", "bash")
    a = app("tmux")
    _tmux(a, "-f", "/dev/null", "new-session", "-d", "-s", "app", "-n", "sh", "-x", "100", "-y", "30",
          "bash --norc --noprofile")
    _tmux(a, "new-window", "-t", "app", "-n", "top", "top -d 1")
    a.adopt(_server_pid(a))
    _check_working(a, "before")
    # top may write a screen after tmux is frozen and before top is: those bytes are saved and put back
    a.dump(leave_running=leave_running)
    if not leave_running:
        a.restore()
    assert _server_pid(a) == a.root
    _check_working(a, "after")
    _tmux(a, "kill-server")
    assert a.wait_exit() == 0
