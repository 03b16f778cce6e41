"""One `pyckpt bench` run from start to outputs: build, choose backends, run, report."""

import dataclasses
import os
import shutil
import tempfile
from pathlib import Path
from typing import Optional

from . import backends as backends_mod, report, runner, workloads


@dataclasses.dataclass(frozen=True)
class BenchConfig:
    rounds: int = 3
    sizes: tuple = (1, 16, 64, 256, 1024)
    quick: bool = False
    backends: Optional[tuple] = None    # None: every one available here
    criu_path: Optional[str] = None
    out_dir: Optional[str] = None
    work_dir: Optional[str] = None
    pre_dump: bool = True
    keep: bool = False


def run_bench(config, say, show):
    """Run the bench; say() gets progress and notes, show() the table. True when every sample verified."""
    runner.become_subreaper()
    bindir = workloads.build()
    chosen, skipped = backends_mod.select(config.backends, config.criu_path, bindir / "measure")
    for name, reason in skipped.items():
        say(f"bench: {name}: not run: {reason}")
    pre_dump_skipped = {}
    if config.pre_dump:
        pre_dump_skipped = {b.name: b.pre_dump_reason() for b in chosen if b.pre_dump_reason()}
        for name, reason in pre_dump_skipped.items():
            say(f"bench: {name}: pre-dump not measured: {reason}")
    specs = workloads.standard_set(list(config.sizes), config.quick)
    machine = report.machine_info()
    work = Path(tempfile.mkdtemp(prefix="pyckpt-bench-", dir=config.work_dir))
    try:
        samples = runner.run(specs, chosen, config.rounds, bindir, work, pre_dump=config.pre_dump,
                             keep=config.keep, progress=lambda line: say("bench: " + line))
    finally:
        if not any(work.iterdir()):     # failed samples' folders stay, for their logs
            shutil.rmtree(work, ignore_errors=True)
    if work.exists():
        say(f"bench: images and logs kept in {work}")
    run = {
        "command": report.command_line(),
        "machine": machine,
        "load_average_end": [round(x, 2) for x in os.getloadavg()],
        "rounds": config.rounds,
        "backends": {b.name: b.version() for b in chosen},
        "skipped_backends": skipped,
        "pre_dump_skipped": pre_dump_skipped if config.pre_dump else {"all": "--no-pre-dump"},
        "samples": samples,
    }
    show(report.text_table(samples))
    if config.out_dir:
        write_outputs(run, Path(config.out_dir), say)
    failed = [s for s in samples if not s.verified]
    if failed:
        say(f"bench: {len(failed)} of {len(samples)} samples FAILED (no numbers reported for them)")
    return not failed


def write_outputs(run, out, say):
    from . import plots

    out.mkdir(parents=True, exist_ok=True)
    report.write_json(out / "samples.json", run)
    report.write_csv(out / "samples.csv", run["samples"])
    reason = plots.available()
    drawn = []
    if reason:
        say(f"bench: {reason}")
    else:
        drawn = plots.draw(run, out)
    report.write_markdown(out / "report.md", run, drawn, reason or "")
    say(f"bench: wrote {out}/samples.json, samples.csv, report.md" +
        "".join(f", {name}" for name, _title in drawn))
