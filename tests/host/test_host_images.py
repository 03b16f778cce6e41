"""What a user reads from an image folder: `pyckpt show` and the logs."""

import json


def walk(node, path=""):
    """Every (key path, key, value) in a JSON document."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield f"{path}/{key}", str(key), value
            yield from walk(value, f"{path}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from walk(value, f"{path}[{i}]")


def test_show_json(start_workload, harness):
    wl = start_workload("counter")
    wl.dump(leave_running=True)
    res = harness.run_pyckpt("show", wl.images, outdir=wl.dir, tag="show")
    assert res.returncode == 0, res.describe()
    try:
        doc = json.loads(res.stdout)
    except ValueError as err:
        raise AssertionError(f"show did not print JSON ({err}):\n{res.stdout[:2000]}")
    items = list(walk(doc))
    keys = [k.lower() for _, k, _ in items]
    assert any("pid" in k.lower() and v == wl.pid for _, k, v in items), (
        f"pid {wl.pid} not in show output")
    assert any("reg" in k for k in keys), "no registers in show output"
    vmas = [v for _, k, v in items if "vma" in k.lower() and isinstance(v, list) and v]
    assert vmas, "no VMA list in show output"
    wl.assert_passes()


def test_verbose_and_logs(start_workload, harness):
    """-v prints more; dump and restore each leave a debug log in the image
    folder that mentions the process."""
    wl = start_workload("counter")
    dump = wl.dump("-v")
    assert dump.stderr.strip(), "dump -v printed nothing on stderr"
    logs = sorted(wl.images.rglob("*.log"))
    assert logs, f"no *.log in the image folder: {sorted(p.name for p in wl.images.rglob('*'))}"
    dump_logs = [p for p in logs if "dump" in p.name]
    assert dump_logs and str(wl.pid) in dump_logs[0].read_text(errors="replace"), (
        f"no dump log mentioning pid {wl.pid} among {[p.name for p in logs]}")
    restore = wl.restore("-v")
    assert restore.stderr.strip(), "restore -v printed nothing on stderr"
    restore_logs = [p for p in wl.images.rglob("*.log") if "restore" in p.name]
    assert restore_logs and restore_logs[0].stat().st_size > 0, (
        f"no restore log in the image folder: {[p.name for p in wl.images.rglob('*.log')]}")
    wl.assert_passes()


def test_cow_shared_memory_stored_once(start_workload, harness):
    """cowtree's 16 MiB region is shared copy-on-write by four processes
    (one MiB rewritten in A and so in G), and so are the root's 1 MiB of
    private copies in a file mapping (256 KiB rewritten in A): the image
    holds about 18.25 MiB of pages, not 4 x 17, and the restored tree still
    checks out."""
    wl = start_workload("cowtree")
    wl.dump()
    pages = {p.name: p.stat().st_size for p in wl.images.glob("pages-*.img")}
    assert len(pages) == 4, f"expected 4 processes' pages images, found {sorted(pages)}"
    total_mib = sum(pages.values()) / (1 << 20)
    assert total_mib < 16 + 1 + 1.25 + 1, f"pages images hold {total_mib:.1f} MiB: {pages}"
    res = harness.run_pyckpt("show", wl.images, outdir=wl.dir, tag="show")
    assert res.returncode == 0, res.describe()
    inherited = {p["pid"]: p["pagemap"]["inherited_pages"] for p in json.loads(res.stdout)["processes"]}
    assert sorted(n > 0 for n in inherited.values()) == [False, True, True, True], inherited
    wl.restore()
    wl.assert_passes()


def test_shared_anon_image_holds_only_written_pages(start_workload, harness):
    """bigshm's 1 GiB MAP_SHARED|MAP_ANONYMOUS mapping has 6 pages written:
    its image holds those (not 1 GiB, not even a sparse 1 GiB file), and the
    restored process finds the same resident pages and contents."""
    wl = start_workload("bigshm")
    wl.dump()
    shm = {p.name: p.stat().st_size for p in wl.images.glob("shmem-*.img")}
    assert len(shm) == 1, f"expected one shared anonymous memory image, found {shm}"
    assert sum(shm.values()) < 64 << 10, f"shared memory images hold {shm} bytes"
    wl.restore()
    wl.assert_passes()
