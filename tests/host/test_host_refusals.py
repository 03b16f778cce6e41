"""What pyckpt must refuse, and what it must leave behind when it does (or
when it is killed half-way): the target untouched, no image, no process."""

import os
import re
import signal
import subprocess
import time

import pytest


def netlink_fd(wl):
    m = re.search(r"^netlink fd (\d+)$", wl.log(), re.M)
    assert m, f"the workload did not say its netlink fd:\n{wl.log()}"
    return int(m.group(1))


@pytest.mark.parametrize("leave_running", [False, True], ids=["kill", "leave-running"])
def test_unsupported_fd_refused(start_workload, harness, leave_running):
    wl = start_workload("unsupported")
    fd = netlink_fd(wl)
    res = wl.dump(leave_running=leave_running, check=False)
    assert res.returncode != 0, f"a netlink socket was dumped: {res.describe()}"
    assert "pyckpt: error:" in res.stderr, res.describe()
    assert re.search(rf"\b{fd}\b", res.stderr), f"fd {fd} not named: {res.describe()}"
    assert "netlink" in res.stderr.lower(), f"kind not named: {res.describe()}"
    assert not wl.images.exists(), (
        f"image folder left behind: {sorted(os.listdir(wl.images))}")
    problem = harness.untouched_problem(wl.pid)
    assert problem is None, f"after the refused dump: {problem}"
    wl.assert_passes()


@pytest.mark.parametrize("mode, words", [
    pytest.param(mode, words, id=mode) for mode, words in (
        ("seccomp-notif", "SECCOMP_RET_USER_NOTIF"),
        ("lease-breaking", "lease being broken"),
        ("io-uring", "(anon_inode:[io_uring]), worker threads"),
        ("mqueue", "POSIX message queue"),
        ("shared-files", "share one fd table"),
        ("uffd-registered", "registered with userfaultfd (missing pages) (VmFlags \"um\")"))])
def test_unsupported_process_state_refused(start_workload, harness, mode, words):
    """State pyckpt cannot restore yet is refused by name, never silently dropped."""
    wl = start_workload(f"refused-{mode}")
    res = wl.dump(check=False)
    assert res.returncode == 3, f"dumped a process with {mode}: {res.describe()}"
    assert words in res.stderr and str(wl.pid) in res.stderr, res.describe()
    assert not wl.images.exists(), f"image folder left behind: {sorted(os.listdir(wl.images))}"
    problem = harness.untouched_problem(wl.pid)
    assert problem is None, f"after the refused dump: {problem}"
    wl.assert_passes()


def test_vdso_unmapped_under_a_child_refused(start_workload, harness):
    """A parent that unmapped its vDSO after forking a child that kept one: restore
    forks the child from the restored parent, which has no vDSO to give."""
    wl = start_workload("novdso-child-keeps")
    res = wl.dump(check=False)
    assert res.returncode == 3, f"dumped it: {res.describe()}"
    assert "vDSO" in res.stderr and str(wl.pid) in res.stderr, res.describe()
    assert not wl.images.exists(), f"image folder left behind: {sorted(os.listdir(wl.images))}"
    problem = harness.untouched_problem(wl.pid)
    assert problem is None, f"after the refused dump: {problem}"
    wl.assert_passes()


def test_restore_refused_pid_in_use(start_workload, harness):
    """Dump -R, then restore while the original still holds the PID."""
    wl = start_workload("counter")
    wl.dump(leave_running=True)
    res = harness.run_pyckpt("restore", "-D", wl.images, "-d",
                             outdir=wl.dir, tag="restore")
    assert res.returncode != 0, f"restored over a live PID: {res.describe()}"
    assert re.search(rf"\b{wl.pid}\b", res.stderr), f"PID not named: {res.describe()}"
    assert "counter" in res.stderr, f"the holder's comm not named: {res.describe()}"
    problem = harness.untouched_problem(wl.pid)
    assert problem is None, f"the original after the refused restore: {problem}"
    wl.wait_numbers()
    wl.assert_passes()


def truncate(path):
    size = path.stat().st_size
    os.truncate(path, size // 2)


def flip_byte(path):
    with open(path, "r+b") as f:
        f.seek(path.stat().st_size // 2)
        byte = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte[0] ^ 0xFF]))


def largest(images, harness):
    return harness.image_files(images)[0]


def inventory(images, harness):
    found = [p for p in harness.image_files(images) if p.name.startswith("inventory")]
    if not found:
        pytest.skip("no inventory file in the image (format changed?)")
    return found[0]


@pytest.mark.parametrize("damage", [truncate, flip_byte], ids=["truncated", "byte-flipped"])
@pytest.mark.parametrize("pick", [largest, inventory], ids=["largest-file", "inventory"])
def test_damaged_image_refused(start_workload, harness, damage, pick):
    wl = start_workload("counter")
    wl.dump()
    damaged_dir = harness.copy_images(wl.images, wl.dir / "damaged")
    victim = pick(damaged_dir, harness)
    if victim.stat().st_size < 2:
        pytest.skip(f"{victim.name} is too small to damage")
    damage(victim)
    res = harness.run_pyckpt("restore", "-D", damaged_dir, "-d",
                             outdir=wl.dir, tag="restore-damaged")
    if res.returncode == 0:
        wl.alive, wl.ours_by_pid = True, True  # so that teardown kills it
    assert res.returncode != 0, f"restored from a damaged {victim.name}: {res.describe()}"
    assert victim.name in res.stderr, (
        f"the damaged file {victim.name} is not named: {res.describe()}")
    assert harness.proc_status(wl.pid) is None, (
        f"a process {wl.pid} exists after the refused restore")
    # the untouched copy still restores
    wl.restore()
    wl.assert_passes()


def written_beside(workdir):
    """Bytes in files under new folders of workdir (a dump in progress)."""
    total = 0
    for entry in os.scandir(workdir):
        if entry.is_dir(follow_symlinks=False):
            for root, _, files in os.walk(entry.path):
                for name in files:
                    try:
                        total += os.stat(os.path.join(root, name)).st_size
                    except FileNotFoundError:
                        pass
    return total


def test_dump_killed_midway(start_workload, harness, tmp_path):
    """SIGKILL pyckpt in the middle of dumping the big-memory workload: the
    target runs on (not stopped, not traced) and no image appears."""
    wl = start_workload("bigmem")
    err = open(wl.dir / "dump.err", "w")
    dump = subprocess.Popen(
        harness.pyckpt_argv("dump", "-t", wl.pid, "-D", wl.images,
                            "--backend", harness.BACKEND),
        cwd=harness.REPO, stdin=subprocess.DEVNULL, stdout=err, stderr=err,
        start_new_session=True)
    try:
        # Kill it in the middle of writing the pages: some MiB already in a
        # new (temporary) folder next to the image folder. (Not while it runs
        # syscalls inside the frozen target just before: see the ptrace
        # source's note on that window.)
        deadline = time.monotonic() + harness.PYCKPT_TIMEOUT
        while dump.poll() is None and time.monotonic() < deadline:
            if written_beside(wl.dir) > (4 << 20):
                break
            time.sleep(0.005)
        if dump.poll() is not None:
            err.flush()
            assert dump.returncode == 0, (
                f"dump failed (exit {dump.returncode}) before it could be "
                f"interrupted:\n{(wl.dir / 'dump.err').read_text()}")
            pytest.skip("the dump finished before it could be interrupted")
        os.killpg(dump.pid, signal.SIGKILL)
        dump.wait()
    finally:
        if dump.poll() is None:
            os.killpg(dump.pid, signal.SIGKILL)
            dump.wait()
        err.close()
    problem = harness.wait_untouched(wl.pid)
    assert problem is None, f"after pyckpt was killed mid-dump: {problem}"
    assert not wl.images.exists() or not any(wl.images.iterdir()), (
        "a half-written image folder was left in place")
    wl.assert_passes()


def test_session_led_from_outside_refused(start_workload, harness):
    """A process in someone else's session (here pytest's) cannot be given that
    session back at restore: refused unless --shell-job, and left running."""
    wl = start_workload("counter", start_new_session=False)
    res = wl.dump(check=False)
    assert res.returncode == 3, f"dumped a process of an outside session: {res.describe()}"
    assert "session" in res.stderr and "--shell-job" in res.stderr, res.describe()
    assert not wl.images.exists(), "image folder left behind"
    problem = harness.untouched_problem(wl.pid)
    assert problem is None, f"after the refused dump: {problem}"
    wl.wait_numbers()
    wl.assert_passes()


def test_pty_with_unread_data_refused(start_workload, harness):
    """Bytes written to a pty's master and not yet read at the slave cannot be
    saved without consuming them: refused by name, never dropped."""
    wl = start_workload("ptytree-unread")
    res = wl.dump(check=False)
    assert res.returncode == 3, f"dumped a pty with unread data: {res.describe()}"
    assert "unread data" in res.stderr and "/dev/pts/" in res.stderr, res.describe()
    assert "4 byte(s) waiting at the slave" in res.stderr, res.describe()
    assert not wl.images.exists(), f"image folder left behind: {sorted(os.listdir(wl.images))}"
    problem = harness.untouched_problem(wl.pid)
    assert problem is None, f"after the refused dump: {problem}"
    wl.assert_passes()


def test_pty_with_packet_status_waiting_refused(start_workload, harness):
    """A packet-mode status byte waiting at the master is not saved: refused by name."""
    wl = start_workload("ptytree-pktstatus")
    res = wl.dump(check=False)
    assert res.returncode == 3, f"dumped a pty with a packet status waiting: {res.describe()}"
    assert "packet-mode status" in res.stderr and "/dev/pts/" in res.stderr, res.describe()
    assert not wl.images.exists(), f"image folder left behind: {sorted(os.listdir(wl.images))}"
    problem = harness.untouched_problem(wl.pid)
    assert problem is None, f"after the refused dump: {problem}"
    wl.assert_passes()


@pytest.mark.parametrize("mode", ["outside", "slave-outside"], ids=["master-outside", "slave-outside"])
def test_pty_leading_outside_refused(start_workload, harness, mode):
    """A pty with one end held outside the dumped tree: refused naming both ends."""
    wl = start_workload(f"ptytree-{mode}")
    m = re.search(r"^outside holder (\d+)$", wl.log(), re.M)
    assert m, f"the workload did not say who holds the master:\n{wl.log()}"
    res = wl.dump(check=False)
    assert res.returncode == 3, f"dumped a pty leading outside: {res.describe()}"
    assert str(wl.pid) in res.stderr and m.group(1) in res.stderr and "/dev/pts/" in res.stderr, res.describe()
    if mode == "outside":
        assert "--shell-job" in res.stderr, res.describe()
    assert not wl.images.exists(), f"image folder left behind: {sorted(os.listdir(wl.images))}"
    problem = harness.untouched_problem(wl.pid)
    assert problem is None, f"after the refused dump: {problem}"
    wl.assert_passes()


def test_restore_refused_pty_index_in_use(start_workload, harness):
    """The tree's pty gets its old index back; with that index taken, restore is
    a conflict naming it, before any process is created. Freed, restore works."""
    wl = start_workload("ptytree")
    m = re.search(r"^pty (/dev/pts/\d+)$", wl.log(), re.M)
    assert m, f"the workload did not say its pty:\n{wl.log()}"
    wl.dump()
    held = []
    try:
        while not held or os.ttyname(held[-1][1]) != m.group(1):
            held.append(os.openpty())
            assert len(held) < 64, f"could not get {m.group(1)}: {[os.ttyname(s) for _m, s in held]}"
        res = harness.run_pyckpt("restore", "-D", wl.images, "-d", outdir=wl.dir, tag="restore")
        assert res.returncode != 0, f"restored over a pty in use: {res.describe()}"
        assert m.group(1) in res.stderr, f"the pty not named: {res.describe()}"
        assert harness.proc_status(wl.pid) is None, "a process was created before the conflict was found"
    finally:
        for master, slave in held:
            os.close(master)
            os.close(slave)
    wl.restore()
    wl.assert_passes()
