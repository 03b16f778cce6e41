"""Incremental dumps: pre-dump, dump --prev-images-dir, chains, and refusals of a bad parent.

The incremental workload changes its memory and layout (fork, mremap, munmap
and map again, a page dropped and read back as the zero page) on SIGUSR1,
between the pre-dumps and the dump; after restore it checks every byte.
"""

import json
import os
import re
import shutil
import signal

import pytest


def next_phase(wl, k):
    os.kill(wl.pid, signal.SIGUSR1)
    wl.wait_for_line(f"PHASE {k}")


def pyckpt_ok(harness, wl, *args, tag):
    res = harness.run_pyckpt(*args, outdir=wl.dir, tag=tag)
    assert res.returncode == 0, res.describe()
    return res


def chain_of_three(harness, wl, *extra, first=("pre-dump",)):
    """`first` 1, phase 1, pre-dump 2 on 1, phase 2, dump 3 on 2 (the tree is killed)."""
    base = wl.dir / "chain"
    base.mkdir()
    b = ["--backend", harness.BACKEND, *extra]
    pyckpt_ok(harness, wl, *first, "-t", wl.pid, "-D", base / "1", *b, tag="first")
    next_phase(wl, 1)
    pyckpt_ok(harness, wl, "pre-dump", "-t", wl.pid, "-D", base / "2", "--prev-images-dir", "../1", *b, tag="pre2")
    next_phase(wl, 2)
    wl.dump("--prev-images-dir", "../2", *extra, images=base / "3")
    return base


def pages_by_image(harness, wl, images):
    doc = json.loads(pyckpt_ok(harness, wl, "show", images, tag="show").stdout)
    assert [c["image"] for c in doc["chain"]] == [str(images)] + [str(images.parent / n) for n in ("2", "1")]
    return {p["pid"]: p["pagemap"]["pages_by_image"] for p in doc["processes"]}


def tracking_methods(harness, tmp_path):
    """The methods `pyckpt check` reports for the backend under test (first: what auto picks)."""
    res = harness.run_pyckpt("check", outdir=tmp_path, tag="check")
    line = next(l for l in res.stdout.splitlines() if l.startswith("track_mem"))
    return line


def test_chain_of_three_tracked(start_workload, harness, tmp_path):
    """Tracking as `auto` picks it, started by a full dump -R --track-mem: each image holds only
    what changed, restore follows the chain."""
    wl = start_workload("incremental")
    base = chain_of_three(harness, wl, first=("dump", "-R", "--track-mem"))
    check = pyckpt_ok(harness, wl, "check-image", base / "3", tag="check-image")
    assert check.stdout.count("unchanged since") == 2, check.stdout
    where = pages_by_image(harness, wl, base / "3")
    root = where[wl.pid]
    assert root[str(base / "1")] > 1000 and root[str(base / "3")] < root[str(base / "1")], root
    log = (base / "3" / "dump.log").read_text()
    method = re.search(r"pages left in the parent image \((\S+)\)", log).group(1)
    assert method in ("uffd-wp", "soft-dirty", "compared"), log
    if "yes" in tracking_methods(harness, tmp_path).split()[1]:
        assert method != "compared", f"tracking available but the dump compared contents:\n{log}"
    # a pre-dump is a parent, never restored itself
    res = harness.run_pyckpt("restore", "-D", base / "2", "-d", outdir=wl.dir, tag="restore-pre")
    assert res.returncode != 0 and "pre-dump" in res.stderr and harness.proc_status(wl.pid) is None, res.describe()
    wl.restore(images=base / "3")
    wl.assert_passes()


def test_chain_compare_contents(start_workload, harness):
    """No tracking (forced): the dump compares pages with the parent, says so, and is as exact;
    `pyckpt merge` makes the chain one image that restores without its parents."""
    wl = start_workload("incremental")
    base = chain_of_three(harness, wl, "--track-method", "compare")
    log = (base / "3" / "dump.log").read_text()
    assert "comparing page contents" in log and "(compared)" in log, log
    assert "tracking written pages with" not in (base / "2" / "dump.log").read_text()
    where = pages_by_image(harness, wl, base / "3")
    assert where[wl.pid][str(base / "1")] > 1000, where
    # flattened into one standalone image, restored with the parents gone
    pyckpt_ok(harness, wl, "merge", base / "3", base / "merged", tag="merge")
    for name in ("1", "2", "3"):
        os.rename(base / name, base / f"{name}.away")
    doc = json.loads(pyckpt_ok(harness, wl, "show", base / "merged", tag="show-merged").stdout)
    assert "chain" not in doc and not doc["inventory"]["parent"], doc["inventory"]
    wl.restore(images=base / "merged")
    wl.assert_passes()


def test_missing_or_changed_parent_refused(start_workload, harness):
    """A missing, damaged or replaced parent: restore and check-image refuse, naming it,
    before anything is created; a dump on a missing parent leaves the process untouched."""
    wl = start_workload("incremental")
    base = chain_of_three(harness, wl)

    def refused(what, name):
        for args in (("check-image", base / "3"), ("restore", "-D", base / "3", "-d")):
            res = harness.run_pyckpt(*args, outdir=wl.dir, tag=args[0])
            assert res.returncode != 0 and what in res.stderr and str(base / name) in res.stderr \
                and "Traceback" not in res.stderr, res.describe()
            assert harness.proc_status(wl.pid) is None, f"{args[0]} created process {wl.pid}"

    os.rename(base / "1", base / "1.away")
    refused("is missing", "1")
    os.rename(base / "1.away", base / "1")
    # damaged: a byte of the oldest pages file flipped
    pages = next((base / "1").glob("pages-*.img"))
    data = bytearray(pages.read_bytes())
    data[100] ^= 0xFF
    pages.write_bytes(bytes(data))
    refused("corrupted", "1")
    data[100] ^= 0xFF
    pages.write_bytes(bytes(data))
    # replaced by another whole image: its manifest is not the one 2 was built on
    shutil.rmtree(base / "2")
    other = start_workload("incremental", subdir="other")
    pyckpt_ok(harness, other, "pre-dump", "-t", other.pid, "-D", base / "2", "--prev-images-dir", "../1",
              "--backend", harness.BACKEND, tag="pre-other")
    refused("changed since", "2")
    # dump on a parent that is not there: refused before the freeze, process untouched
    res = harness.run_pyckpt("dump", "-t", other.pid, "-D", wl.dir / "x", "--prev-images-dir", "../nowhere",
                             "--backend", harness.BACKEND, outdir=wl.dir, tag="dump-nowhere")
    assert res.returncode != 0 and "nowhere" in res.stderr and not (wl.dir / "x").exists(), res.describe()
    harness.wait_untouched(other.pid)
    other.assert_passes()


def test_track_mem_refused_without_method(start_workload, harness, tmp_path):
    """--track-mem with a method this machine lacks is refused with the reason, process untouched."""
    line = tracking_methods(harness, tmp_path)
    missing = "soft-dirty" if harness.BACKEND == "ptrace" and "uffd-wp" in line else "uffd-wp"
    wl = start_workload("incremental")
    res = harness.run_pyckpt("pre-dump", "-t", wl.pid, "-D", wl.dir / "p", "--track-mem", "--track-method", missing,
                             "--backend", harness.BACKEND, outdir=wl.dir, tag="pre")
    if res.returncode == 0:
        pytest.skip(f"this machine has {missing} as well: nothing to refuse")
    assert "--track-mem" in res.stderr and missing in res.stderr and "Traceback" not in res.stderr, res.describe()
    assert not (wl.dir / "p").exists()
    harness.wait_untouched(wl.pid)
    wl.assert_passes()
