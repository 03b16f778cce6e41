"""Odd fd states pyckpt refuses (workloads/oddfds.c): named, the target left running."""

import os

import pytest


@pytest.mark.parametrize("mode, words", [
    pytest.param("epoll-orphan", "watches a file no fd of process", id="epoll-orphan"),
    pytest.param("oneshot-fired", "EPOLLONESHOT watch that has fired", id="oneshot-fired"),
    pytest.param("pidfd-outside", "alive outside the dump", id="pidfd-outside")])
def test_fd_state_refused(start_workload, harness, mode, words):
    wl = start_workload(f"oddfds-{mode}")
    res = wl.dump(check=False)
    assert res.returncode == 3, f"dumped {mode}: {res.describe()}"
    assert words in res.stderr and str(wl.pid) in res.stderr, res.describe()
    assert not wl.images.exists(), f"image folder left behind: {sorted(os.listdir(wl.images))}"
    problem = harness.untouched_problem(wl.pid)
    assert problem is None, f"after the refused dump: {problem}"
    wl.assert_passes()
