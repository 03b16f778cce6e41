"""A small but complete image, written the way dump writes one (for show, store and CLI tests)."""

from pyckpt import images
from pyckpt.images.proto import core_pb2, files_pb2, inventory_pb2, mm_pb2, regs_pb2
from pyckpt.images.store import ImageWriter

PID = 4242
PAGE = 4096
RIP = 0x401000
RSP = 0x7FFC0000FF00


def write_tiny_image(final_dir):
    """One x86-64 process, one thread, three VMAs, two pages of data, stdin/out/err on one tty-less file."""
    writer = ImageWriter(final_dir)
    writer.write_message(images.INVENTORY, inventory_pb2.Inventory(
        format_version=images.FORMAT_VERSION, arch="x86_64", byteorder="little", kernel_release="6.1.0-test",
        backend="ptrace", created=1700000000.0, root_pid=PID, pyckpt_version="0.1.0", page_size=PAGE))
    writer.write_message(images.PSTREE, files_pb2.PsTree(processes=[
        files_pb2.ProcessEntry(pid=PID, ppid=1, pgid=PID, sid=PID, threads=[PID])]))
    regs = regs_pb2.Regs(x86_64=regs_pb2.X86_64Regs(rip=RIP, rsp=RSP, rax=(1 << 64) - 4, orig_rax=35, cs=0x33, ss=0x2b))
    regs.extra.add(note_type=2, name="fpregs", data=bytes(512))
    writer.write_message(images.core(PID), core_pb2.Task(
        pid=PID, ppid=1, pgid=PID, sid=PID, comm="tiny", cwd="/", umask=0o22,
        creds=core_pb2.Creds(uid=1000, euid=1000, suid=1000, fsuid=1000, cap_bnd=0x1FFFFFFFFFF),
        sigactions=[core_pb2.SigAction(signo=10, handler=0x401200, flags=0x04000000, restorer=0x401300)],
        threads=[core_pb2.Thread(tid=PID, comm="tiny", sigmask=1 << 9, regs=regs)]))
    exe = mm_pb2.FileRef(path="/usr/bin/tiny", dev=0xFE00, ino=77, size=8192, mtime_ns=1, mode=0o100755)
    writer.write_message(images.mm(PID), mm_pb2.Mm(
        vmas=[
            mm_pb2.Vma(start=0x400000, end=0x402000, prot=5, kind=mm_pb2.Vma.FILE_PRIVATE, file=exe, pgoff=0),
            mm_pb2.Vma(start=0x600000, end=0x602000, prot=3, kind=mm_pb2.Vma.ANON, name="[heap]"),
            mm_pb2.Vma(start=0x7FFC00000000, end=0x7FFC00010000, prot=3, kind=mm_pb2.Vma.ANON, name="[stack]",
                       growsdown=True),
        ],
        start_code=0x400000, end_code=0x402000, start_data=0x600000, end_data=0x600000, start_brk=0x600000,
        brk=0x602000, start_stack=0x7FFC0000FF00, arg_start=0x7FFC0000FF10, arg_end=0x7FFC0000FF20,
        env_start=0x7FFC0000FF20, env_end=0x7FFC0000FF40, exe=exe))
    writer.write_message(images.pagemap(PID), mm_pb2.PageMap(
        pages_file=images.pages(PID), runs=[mm_pb2.PageRun(vaddr=0x600000, nr_pages=2)]))
    with writer.open_raw(images.pages(PID)) as f:
        f.write(b"\xAB" * PAGE + b"\xCD" * PAGE)
    writer.write_message(images.fds(PID), files_pb2.FdTable(fds=[
        files_pb2.Fd(fd=fd, file_id=1) for fd in (0, 1, 2)]))
    writer.write_message(images.FILES, files_pb2.Files(files=[
        files_pb2.OpenFile(id=1, kind=files_pb2.OpenFile.CHARDEV, flags=2,
                           file=mm_pb2.FileRef(path="/dev/null"), rdev=0x103)]))
    writer.commit()
    return writer.final_dir
