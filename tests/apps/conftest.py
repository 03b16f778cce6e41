"""Apps tier: real programs from Debian packages, dumped and restored with the
ptrace backend on the host, each checked to go on working after the restore.

    make test-apps          the whole tier
    make test-apps-quick    the quick subset CI runs (tests marked `quick`)

The tier installs the packages it needs itself (apt-get, only those missing).
As in the host tier (tests/host/conftest.py, whose helpers are reused here)
the pytest process is a child subreaper: a tree restored with -d is
reparented to it and reaped by PID.

A dump refused by pyckpt raises `DumpRefused` with pyckpt's one-line reason,
so an app whose state is known to be refused is marked
`xfail(raises=DumpRefused, strict=True, reason=<that reason>)`: it fails
loudly once the refusal goes away (or if something else breaks).
"""

import ctypes
import os

import pytest

from apps_harness import App, PR_SET_CHILD_SUBREAPER


def pytest_configure(config):
    config.addinivalue_line("markers", "quick: the apps CI runs on every submission (make test-apps-quick)")
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, "prctl(PR_SET_CHILD_SUBREAPER): " + os.strerror(err))


@pytest.fixture
def app(tmp_path):
    """app(name) -> a new App in its own folder; every app's tree is killed at teardown."""
    made = []

    def make(name):
        d = tmp_path / name
        d.mkdir()
        made.append(App(d, name))
        return made[-1]

    yield make
    for a in made:
        a.kill()
