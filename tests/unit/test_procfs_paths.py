"""Which fd paths belong to a process under /proc (files/procfs.py)."""

import pytest

from pyckpt.files import procfs


@pytest.mark.parametrize("path, owner", [
    ("/proc/123/stat", (123, None)),
    ("/proc/123", (123, None)),
    ("/proc/123 (deleted)", (123, None)),
    ("/proc/123/task/130/status", (123, 130)),
    ("/proc/sys/kernel/hostname", None),
    ("/proc/1234x/stat", None),
    ("/procfoo/1/stat", None),
    ("/tmp/proc/1/stat", None),
])
def test_pid_of(path, owner):
    assert procfs.pid_of(path) == owner
