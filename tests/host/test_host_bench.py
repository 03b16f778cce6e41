"""`pyckpt bench --quick` with the tier's backend (ptrace on the host, kmod in the guest): it runs, every
workload verifies, every output is written.

Timings are not asserted (the machine is shared); only the shape of the outputs.
"""

import csv
import importlib.util
import json
import os
import subprocess
import sys

from conftest import BACKEND, REPO, SCALE

EXPECTED_WORKLOADS = {"anon-1M", "anon-8M", "writer-4M", "mappings-100", "threads-16", "tree-8", "fds-100"}
MEASURED = ("dump_s", "frozen_s", "restore_s", "image_bytes", "dump_rss_kib", "restore_rss_kib")


def test_bench_quick(tmp_path):
    out = tmp_path / "out"
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path / "cache"))    # built on first use, here
    res = subprocess.run([sys.executable, "-m", "pyckpt", "bench", "--quick", "--backends", BACKEND,
                          "--out", str(out), "--work-dir", str(tmp_path)],
                         cwd=REPO, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                         timeout=900 * SCALE)   # far above its ~30 s: the machine may be loaded
    assert res.returncode == 0, res.stdout + res.stderr
    assert "workload" in res.stdout and BACKEND in res.stdout    # the table
    assert "pre-dump not measured" in res.stderr or "pre-dump" in res.stdout

    run = json.loads((out / "samples.json").read_text())
    samples = run["samples"]
    assert {s["workload"] for s in samples} == EXPECTED_WORKLOADS
    assert {s["backend"] for s in samples} == {BACKEND}
    for s in samples:
        assert s["verified"] and not s["error"], s
        for field in MEASURED:
            assert s[field] is not None and s[field] > 0, (field, s)
        assert s["image_bytes"] >= s["mib"] * 2**20 * 0.9, s   # the image holds the workload's memory
    assert run["machine"]["kernel"] == os.uname().release
    assert list(run["backends"]) == [BACKEND]

    with open(out / "samples.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(samples) and all(r["verified"] == "True" for r in rows)

    md = (out / "report.md").read_text()
    assert os.uname().release in md and "| workload | backend | ok |" in md
    if importlib.util.find_spec("matplotlib") is None:
        assert "matplotlib is not installed" in md
    else:
        for png in ("time-vs-size.png", "frozen.png", "image-size.png"):
            assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png
            assert f"]({png})" in md
    # the workloads' folders are gone once they verified; nothing was left running
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("pyckpt-bench-")]
