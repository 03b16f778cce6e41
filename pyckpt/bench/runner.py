"""A bench run: every workload through every backend, interleaved round by round.

Round r runs each workload once per backend, the backends' order rotated by
r, so that a slow spell of this (shared) machine falls on all of them alike.
One sample: start the workload, [pre-dump], dump -R, ask the workload how
long it was frozen, kill it, restore it, let it check its own memory. A
sample whose workload did not verify keeps its error and no numbers.
"""

import ctypes
import dataclasses
import os
import shutil
import statistics
from pathlib import Path

from . import backends as backends_mod
from ..proc import reap_orphans
from .workloads import RunningWorkload, WorkloadError

PR_SET_CHILD_SUBREAPER = 36
# What is measured, in the order of the table: (field, heading, unit, scale from the stored unit).
METRICS = (
    ("dump_s", "dump", "ms", 1e3),
    ("frozen_s", "frozen", "ms", 1e3),
    ("restore_s", "restore", "ms", 1e3),
    ("image_bytes", "image", "MiB", 1 / 2**20),
    ("dump_rss_kib", "dump RSS", "MiB", 1 / 1024),
    ("restore_rss_kib", "restore RSS", "MiB", 1 / 1024),
    ("predump_s", "pre-dump", "ms", 1e3),
    ("predump_bytes", "pre-dump size", "MiB", 1 / 2**20),
)


@dataclasses.dataclass
class Sample:
    round: int
    workload: str
    kind: str
    mib: float
    backend: str
    verified: bool = False
    error: str = ""
    dump_s: float = None
    frozen_s: float = None
    restore_s: float = None
    image_bytes: int = None
    dump_rss_kib: int = None
    restore_rss_kib: int = None
    predump_s: float = None
    predump_bytes: int = None


@dataclasses.dataclass(frozen=True)
class Spread:
    median: float
    low: float
    high: float
    n: int


def become_subreaper():
    """Restored workloads are reparented to us (PID 1 here may not reap): we reap them."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, "prctl(PR_SET_CHILD_SUBREAPER): " + os.strerror(err))


def plan(specs, backends, rounds):
    """(round, spec, backend) in the order they run."""
    order = []
    for r in range(rounds):
        turn = r % len(backends)
        rotated = backends[turn:] + backends[:turn]
        order += [(r, spec, backend) for spec in specs for backend in rotated]
    return order


def run_sample(r, spec, backend, bindir, folder, pre_dump):
    sample = Sample(r, spec.name, spec.kind, spec.mib, backend.name)
    folder = Path(folder)
    workload = None
    try:
        workload = RunningWorkload(spec, bindir, folder / "workload")
        if pre_dump and backend.pre_dump_reason() is None:
            timing = backend.pre_dump(workload.pid, folder / "pre-dump", folder / "pre-dump.out")
            sample.predump_s = timing.seconds
            sample.predump_bytes = backends_mod.image_bytes(folder / "pre-dump")
        workload.stall_ns()     # forget start-up and pre-dump: only the dump's freeze counts
        images = folder / "images"
        timing = backend.dump(workload.pid, images, folder / "dump.out")
        sample.dump_s, sample.dump_rss_kib = timing.seconds, timing.maxrss_kib
        sample.frozen_s = workload.stall_ns() / 1e9
        sample.image_bytes = backends_mod.image_bytes(images)
        workload.kill()
        timing = backend.restore(images, folder / "restore.out")
        sample.restore_s, sample.restore_rss_kib = timing.seconds, timing.maxrss_kib
        workload.verify()
        sample.verified = True
    except (WorkloadError, backends_mod.BackendError) as err:
        sample.error = str(err)
    finally:
        if workload is not None:
            try:
                workload.kill()
            except WorkloadError as err:
                sample.error = sample.error or str(err)
                sample.verified = False
        reap_orphans()
    return sample


def run(specs, backends, rounds, bindir, workdir, pre_dump=True, keep=False, progress=None):
    """Every sample of the run, in the order taken."""
    samples = []
    order = plan(specs, backends, rounds)
    for i, (r, spec, backend) in enumerate(order):
        folder = Path(workdir) / f"r{r}-{spec.name}-{backend.name}"
        if progress:
            progress(f"[{i + 1}/{len(order)}] round {r + 1}: {spec.name} via {backend.name}")
        sample = run_sample(r, spec, backend, bindir, folder, pre_dump)
        if not sample.verified:
            # never report a number the workload did not vouch for
            for field, *_ in METRICS:
                setattr(sample, field, None)
            if progress:
                progress(f"    FAILED: {sample.error}")
        samples.append(sample)
        if sample.verified and not keep:
            shutil.rmtree(folder, ignore_errors=True)
    return samples


def spread(values):
    values = [v for v in values if v is not None]
    if not values:
        return None
    return Spread(statistics.median(values), min(values), max(values), len(values))


def summarize(samples):
    """{(workload, backend): {"n", "failed", field: Spread}} in the order first seen."""
    groups = {}
    for s in samples:
        groups.setdefault((s.workload, s.backend), []).append(s)
    summary = {}
    for key, group in groups.items():
        ok = [s for s in group if s.verified]
        entry = {"n": len(ok), "failed": len(group) - len(ok), "kind": group[0].kind, "mib": group[0].mib}
        for field, *_ in METRICS:
            entry[field] = spread([getattr(s, field) for s in ok])
        summary[key] = entry
    return summary
