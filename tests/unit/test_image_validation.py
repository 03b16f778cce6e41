"""pyckpt/images/validate.py: each class of damage the image fuzzer found
(tests/fuzz/imagefuzz.py), written by hand into a small image whose manifest
is then re-signed, is refused with one ImageError naming the file and field."""

import hashlib
import os
import platform

import pytest

from pyckpt import images
from pyckpt.errors import ImageError
from pyckpt.images.proto import core_pb2, files_pb2, inventory_pb2, ipc_pb2, mm_pb2
from pyckpt.restorer.image import Image
from sample_image import PID, write_tiny_image

pytestmark = pytest.mark.skipif(platform.machine() != "x86_64", reason="the sample image is x86-64")

CLASSES = {
    images.PSTREE: files_pb2.PsTree, images.FILES: files_pb2.Files, images.IPC: ipc_pb2.Ipc,
    images.core(PID): core_pb2.Task, images.mm(PID): mm_pb2.Mm, images.pagemap(PID): mm_pb2.PageMap,
    images.fds(PID): files_pb2.FdTable, images.INVENTORY: inventory_pb2.Inventory,
}


def resign(folder):
    manifest = inventory_pb2.Manifest()
    for name in sorted(os.listdir(folder)):
        if name.endswith(".img") and name != images.MANIFEST:
            with open(os.path.join(folder, name), "rb") as f:
                data = f.read()
            manifest.entries.add(name=name, size=len(data), sha256=hashlib.sha256(data).digest())
    with open(os.path.join(folder, images.MANIFEST), "wb") as f:
        f.write(manifest.SerializeToString())


def damaged(tmp_path, name, change):
    os.makedirs(tmp_path, exist_ok=True)
    folder = write_tiny_image(str(tmp_path / "img"))
    path = os.path.join(folder, name)
    msg = CLASSES[name]()
    if os.path.exists(path):
        with open(path, "rb") as f:
            msg.ParseFromString(f.read())
    change(msg)
    with open(path, "wb") as f:
        f.write(msg.SerializeToString())
    resign(folder)
    return folder


def refused(folder, *words):
    with pytest.raises(ImageError) as info:
        Image(folder)
    text = str(info.value)
    assert "\n" not in text
    for word in words:
        assert word in text, f"{word!r} not in {text!r}"
    return text


def test_sample_image_passes(tmp_path):
    Image(write_tiny_image(str(tmp_path / "img")))


def test_fd_of_unknown_file(tmp_path):       # was KeyError: 0 in restore_fds
    folder = damaged(tmp_path, images.fds(PID), lambda m: m.fds.add(fd=3, file_id=0))
    refused(folder, images.fds(PID), "fds[3].file_id", "no such open file")


def test_fd_twice_and_above_nofile(tmp_path):
    refused(damaged(tmp_path, images.fds(PID), lambda m: m.fds.add(fd=1, file_id=1)), "fds[3].fd", "twice")

    def high_fd(task):
        task.rlimits.add(resource=7, cur=64, max=64)
    folder = damaged(tmp_path / "b", images.core(PID), high_fd)
    path = os.path.join(folder, images.fds(PID))
    table = files_pb2.FdTable()
    table.ParseFromString(open(path, "rb").read())
    table.fds.add(fd=64, file_id=1)
    open(path, "wb").write(table.SerializeToString())
    resign(folder)
    refused(folder, "fds[3].fd", "RLIMIT_NOFILE 64")
    refused(damaged(tmp_path / "c", images.fds(PID), lambda m: m.fds.add(fd=1 << 20, file_id=1)), "not an fd")


def test_page_runs_past_page_file_outside_mappings_overlapping(tmp_path):
    def longer(m):
        m.runs[0].nr_pages = 65537      # was "short read from the pages image" without a file name
    refused(damaged(tmp_path / "a", images.pagemap(PID), longer), images.pagemap(PID), "runs[0]")

    def elsewhere(m):
        m.runs[0].vaddr = 0x100000000    # was preadv EFAULT in the target, after the process existed
    refused(damaged(tmp_path / "b", images.pagemap(PID), elsewhere), "runs[0]", "not inside the mappings")

    def overlapping(m):
        m.runs[0].nr_pages = 1
        m.runs.add(vaddr=0x600000, nr_pages=1)
    refused(damaged(tmp_path / "c", images.pagemap(PID), overlapping), "runs[1].vaddr", "overlaps")

    def unaligned(m):
        m.runs[0].vaddr += 1
    refused(damaged(tmp_path / "d", images.pagemap(PID), unaligned), "runs[0].vaddr", "page-aligned")


def test_mappings(tmp_path):
    def prot(m):
        m.vmas[1].prot = 31             # was mprotect EINVAL in the target
    refused(damaged(tmp_path / "a", images.mm(PID), prot), images.mm(PID), "vmas[1].prot", "unknown bits")

    def kernel_address(m):
        m.vmas[2].end = 0xffff800000000000
    refused(damaged(tmp_path / "b", images.mm(PID), kernel_address), "vmas[2].end", "user-space")

    def overlap(m):
        m.vmas[1].start = 0x401000
    refused(damaged(tmp_path / "c", images.mm(PID), overlap), "vmas[1].start", "overlaps")

    def kind(m):
        m.vmas[0].kind = 99
    refused(damaged(tmp_path / "d", images.mm(PID), kind), "vmas[0].kind = 99", "not a Kind value")


def test_process_tree(tmp_path):
    refused(damaged(tmp_path / "a", images.PSTREE, lambda m: m.processes.add().CopyFrom(m.processes[0])),
            images.PSTREE, "listed twice")

    def zombie_root(m):                 # was AttributeError on the missing core image
        m.processes[0].zombie = True
    refused(damaged(tmp_path / "b", images.PSTREE, zombie_root), "processes[0].zombie")

    def other_session(m):               # was setpgid EPERM in the target
        m.processes[0].sid = 31
    refused(damaged(tmp_path / "c", images.PSTREE, other_session), images.core(PID), "sid", "pstree.img says 31")

    def orphan(m):
        m.processes.add(pid=PID + 1, ppid=PID + 2, pgid=PID, sid=PID, zombie=True)
    refused(damaged(tmp_path / "d", images.PSTREE, orphan), "processes[1].ppid", "parent not listed")


def test_registers_and_signals(tmp_path):
    def mips(m):                        # was a ptrace EIO traceback
        m.threads[0].regs.mips64.r1 = 1
    refused(damaged(tmp_path / "a", images.core(PID), mips), "threads[0].regs", "not x86_64 registers")

    def regset(m):                      # was refused by PTRACE_SETREGSET after the tree existed
        m.threads[0].regs.extra[0].note_type = 65538
    refused(damaged(tmp_path / "b", images.core(PID), regset), "regs.extra[0].note_type")

    def sigkill(m):
        m.sigactions[0].signo = 9
    refused(damaged(tmp_path / "c", images.core(PID), sigkill), "sigactions[0].signo", "SIGKILL")

    def signal_65(m):
        m.pdeathsig = 65
    refused(damaged(tmp_path / "d", images.core(PID), signal_65), "pdeathsig", "not a signal")


def test_files_and_ipc(tmp_path):
    def truncating(m):
        m.files[0].flags |= os.O_TRUNC | os.O_CREAT
    refused(damaged(tmp_path / "a", images.FILES, truncating), images.FILES, "files[0].flags", "O_TRUNC")

    def escaping_ghost(m):
        m.files[0].ghost = "../../etc/passwd.img"
    refused(damaged(tmp_path / "b", images.FILES, escaping_ghost), "files[0].ghost", "not a file name")

    def unmapped_memfd(m):              # was TypeError: open(None)
        m.memfds.add(id=5)
    refused(damaged(tmp_path / "c", images.IPC, unmapped_memfd), images.IPC, "memfds[0].id")

    def empty_sem(m):                   # was semget EINVAL with a warning line
        m.sem.add(id=0)
    refused(damaged(tmp_path / "d", images.IPC, empty_sem), "sem[0].values")


def test_inventory_named(tmp_path):
    def pages(m):
        m.page_size = 65535
    refused(damaged(tmp_path, images.INVENTORY, pages), images.INVENTORY, "65535-byte pages")


def test_image_folder_private(tmp_path):
    folder = write_tiny_image(str(tmp_path / "img"))
    assert os.stat(folder).st_mode & 0o777 == 0o700
    for name in os.listdir(folder):
        assert os.stat(os.path.join(folder, name)).st_mode & 0o077 == 0, name


def test_restore_rights_rule(tmp_path):
    from pyckpt.errors import AccessDenied
    from pyckpt.restorer.creds import check_caller_may_restore
    image = Image(write_tiny_image(str(tmp_path / "img")))      # its process: uid 1000, no capabilities
    full = (1 << 41) - 1
    check_caller_may_restore(image, ([0] * 4, [0] * 4, full, full))            # root
    check_caller_may_restore(image, ([1000] * 4, [0] * 4, 1 << 40, 1 << 40))   # the same user, with the cap
    with pytest.raises(AccessDenied, match="CAP_CHECKPOINT_RESTORE"):
        check_caller_may_restore(image, ([1000] * 4, [0] * 4, 0, 0))
    with pytest.raises(AccessDenied, match="uid 1000"):
        check_caller_may_restore(image, ([1001] * 4, [0] * 4, 1 << 40, 1 << 40))
    image.tasks[PID].creds.cap_eff = 1 << 21
    with pytest.raises(AccessDenied, match="capabilities 0x200000"):
        check_caller_may_restore(image, ([1000] * 4, [0] * 4, 1 << 40, 1 << 40))


def test_rlimits_pyckpt_cannot_raise(tmp_path):
    import resource
    from pyckpt.errors import RestoreConflict
    from pyckpt.restorer.creds import check_rlimits
    image = Image(write_tiny_image(str(tmp_path / "img")))
    own = resource.getrlimit(resource.RLIMIT_NPROC)[1]
    limit = image.tasks[PID].rlimits.add(resource=resource.RLIMIT_NPROC, cur=1, max=own)
    no_sys_resource = ([0] * 4, [0] * 4, 0, 0)
    check_rlimits(image, no_sys_resource)
    if own != resource.RLIM_INFINITY:
        limit.max = own + 1
        with pytest.raises(RestoreConflict, match="CAP_SYS_RESOURCE"):
            check_rlimits(image, no_sys_resource)
        check_rlimits(image, ([0] * 4, [0] * 4, 1 << 24, 1 << 24))
    limit.resource, limit.max = resource.RLIMIT_NOFILE, 1 << 40
    with pytest.raises(RestoreConflict, match="nr_open"):
        check_rlimits(image, ([0] * 4, [0] * 4, 1 << 24, 1 << 24))


def test_owner_outside_image(tmp_path):      # was fcntl ESRCH in the target
    def owner(m):
        m.files[0].owner, m.files[0].owner_type = PID + 7, 1
    refused(damaged(tmp_path, images.FILES, owner), images.FILES, "files[0].owner", "not a process")


def test_mm_map_fields(tmp_path):            # was PR_SET_MM_MAP EINVAL in the target
    def data_end(m):
        m.end_data = m.start_data - 4096
    refused(damaged(tmp_path / "a", images.mm(PID), data_end), images.mm(PID), "end_data", "below start_data")

    def low(m):
        m.arg_start = 1024
    refused(damaged(tmp_path / "b", images.mm(PID), low), "arg_start", "outside user space")


def test_capability_sets(tmp_path):          # was prctl(PR_CAP_AMBIENT_RAISE) EPERM in the target
    def ambient(m):
        m.creds.cap_amb = 1 << 16
    refused(damaged(tmp_path / "a", images.core(PID), ambient), images.core(PID), "creds.cap_amb")

    def no_user(m):
        m.creds.euid = 0xFFFFFFFF
    refused(damaged(tmp_path / "b", images.core(PID), no_user), "creds.euid")


def test_shmem_run_table(tmp_path):          # a flipped run count would read (allocate) terabytes
    import struct
    from pyckpt import shmem
    path = tmp_path / "shmem-1.img"
    path.write_bytes(shmem.MAGIC + struct.pack("=Q", 1 << 40) + struct.pack("=QQ", 0, 4096) + bytes(4096))
    with pytest.raises(ImageError, match="run count"):
        shmem.read_runs(str(path))
    path.write_bytes(shmem.MAGIC + struct.pack("=Q", 1) + struct.pack("=QQ", 0, 8192) + bytes(4096))
    with pytest.raises(ImageError, match="8192 bytes of data"):
        shmem.read_runs(str(path))
    path.write_bytes(shmem.MAGIC + struct.pack("=Q", 1) + struct.pack("=QQ", 0, 4096) + bytes(4096))
    assert shmem.read_runs(str(path)) == [(0, 4096, 32)]
