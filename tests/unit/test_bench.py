"""`pyckpt bench` without running a workload: its plan, its table, its bad-input errors, its import cost."""

import subprocess
import sys

from click.testing import CliRunner

from pyckpt.bench.report import text_table
from pyckpt.bench.runner import Sample, plan, summarize
from pyckpt.bench.workloads import anon
from pyckpt.cli.main import cli


def test_rounds_interleave_backends_and_rotate_their_order():
    specs = [anon(1), anon(2)]
    order = [(r, s.name, b) for r, s, b in plan(specs, ["ptrace", "criu"], 3)]
    assert order == [
        (0, "anon-1M", "ptrace"), (0, "anon-1M", "criu"), (0, "anon-2M", "ptrace"), (0, "anon-2M", "criu"),
        (1, "anon-1M", "criu"), (1, "anon-1M", "ptrace"), (1, "anon-2M", "criu"), (1, "anon-2M", "ptrace"),
        (2, "anon-1M", "ptrace"), (2, "anon-1M", "criu"), (2, "anon-2M", "ptrace"), (2, "anon-2M", "criu"),
    ]


def _sample(r, dump_s, verified=True):
    s = Sample(r, "anon-1M", "anon", 1, "ptrace", verified=verified)
    if verified:
        s.dump_s, s.frozen_s, s.restore_s, s.image_bytes = dump_s, dump_s / 2, dump_s, 2**20
    else:
        s.error = "FAIL 3 wrong pages"
    return s


def test_summary_takes_only_verified_samples():
    samples = [_sample(0, 0.3), _sample(1, 0.1), _sample(2, 0.2), _sample(3, None, verified=False)]
    entry = summarize(samples)[("anon-1M", "ptrace")]
    assert (entry["n"], entry["failed"]) == (3, 1)
    assert (entry["dump_s"].median, entry["dump_s"].low, entry["dump_s"].high) == (0.2, 0.1, 0.3)
    table = text_table(samples)
    assert "3 (1 FAILED)" in table and "200 (100–300)" in table
    assert "pre-dump" not in table      # no column for what was never measured


def test_bad_sizes_are_a_usage_error():
    result = CliRunner().invoke(cli, ["bench", "--sizes", "1,lots"], catch_exceptions=False)
    assert result.exit_code == 2 and "sizes in MiB" in result.output


def test_version_imports_neither_bench_nor_matplotlib():
    code = ("import sys\nfrom pyckpt.cli.main import cli\n"
            "try:\n    cli(['--version'])\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in sys.modules if m.startswith(('pyckpt.bench', 'matplotlib'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.splitlines()[-1] == "[]"


def _run(samples):
    from pyckpt.bench.report import machine_info
    return {"command": "pyckpt bench", "machine": machine_info(), "load_average_end": [0, 0, 0], "rounds": 1,
            "backends": {"ptrace": "pyckpt (ptrace source)"}, "skipped_backends": {"kmod": "no /dev/crak"},
            "pre_dump_skipped": {"ptrace": "pyckpt has no pre-dump command yet"}, "samples": samples}


def test_without_matplotlib_the_rest_is_written_and_the_reason_told(tmp_path, monkeypatch):
    from pyckpt.bench import plots, session
    monkeypatch.setattr(plots, "available", lambda: "matplotlib is not installed (test)")
    said = []
    session.write_outputs(_run([_sample(0, 0.2), _sample(1, None, verified=False)]), tmp_path, said.append)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.md", "samples.csv", "samples.json"]
    md = (tmp_path / "report.md").read_text()
    assert "matplotlib is not installed (test)" in md and "FAIL 3 wrong pages" in md and "no /dev/crak" in md
    assert any("matplotlib is not installed" in line for line in said)


def test_plots_are_pngs(tmp_path):
    import pytest
    pytest.importorskip("matplotlib")
    from pyckpt.bench import session
    session.write_outputs(_run([_sample(0, 0.2), _sample(1, 0.3)]), tmp_path, lambda line: None)
    for png in ("time-vs-size.png", "frozen.png", "image-size.png"):
        assert (tmp_path / png).read_bytes()[:4] == b"\x89PNG"
