"""pyckpt.proc: the /proc parsers on recorded text, then on this process's own files."""

import mmap
import os
import resource
import signal

import pytest

from pyckpt import proc
from pyckpt.errors import NoSuchProcess

UNLIMITED = (1 << 64) - 1

# Recorded from Linux 6.x (x86-64), with a few names made awkward on purpose.
MAPS = """\
55d0c8a00000-55d0c8a02000 r--p 00000000 fe:00 1311                       /usr/bin/cat
55d0c8a02000-55d0c8a07000 r-xp 00002000 fe:00 1311                       /usr/bin/cat
55d0c9b8e000-55d0c9baf000 rw-p 00000000 00:00 0                          [heap]
7f1c2a000000-7f1c2a021000 rw-p 00000000 00:00 0 
7f1c2a400000-7f1c2a401000 rw-s 00000000 00:01 4096                       /dev/zero (deleted)
7f1c2a500000-7f1c2a502000 rw-s 00001000 fe:00 77                         /tmp/my data  file.bin
7f1c2a600000-7f1c2a601000 r--p 00000000 fe:00 78                         /tmp/gone (deleted)
7f1c2a700000-7f1c2a710000 rw-p 00000000 00:00 0                          [anon:glibc malloc]
7f1c2a7f0000-7f1c2a7f4000 r--p 00000000 00:00 0                          [vvar]
7f1c2a7f4000-7f1c2a7f6000 r--p 00000000 00:00 0                          [vvar_vclock]
7f1c2a7f6000-7f1c2a7f8000 r-xp 00000000 00:00 0                          [vdso]
7ffd5c2e1000-7ffd5c302000 rw-p 00000000 00:00 0                          [stack]
ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  [vsyscall]
"""

# (start, end, perms, pgoff, dev, inode, path, shared, prot, deleted, special)
MAPS_EXPECTED = [
    (0x55D0C8A00000, 0x55D0C8A02000, "r--p", 0, "fe:00", 1311, "/usr/bin/cat", False, 1, False, False),
    (0x55D0C8A02000, 0x55D0C8A07000, "r-xp", 0x2000, "fe:00", 1311, "/usr/bin/cat", False, 5, False, False),
    (0x55D0C9B8E000, 0x55D0C9BAF000, "rw-p", 0, "00:00", 0, "[heap]", False, 3, False, True),
    (0x7F1C2A000000, 0x7F1C2A021000, "rw-p", 0, "00:00", 0, "", False, 3, False, False),
    (0x7F1C2A400000, 0x7F1C2A401000, "rw-s", 0, "00:01", 4096, "/dev/zero (deleted)", True, 3, True, False),
    (0x7F1C2A500000, 0x7F1C2A502000, "rw-s", 0x1000, "fe:00", 77, "/tmp/my data  file.bin", True, 3, False, False),
    (0x7F1C2A600000, 0x7F1C2A601000, "r--p", 0, "fe:00", 78, "/tmp/gone (deleted)", False, 1, True, False),
    (0x7F1C2A700000, 0x7F1C2A710000, "rw-p", 0, "00:00", 0, "[anon:glibc malloc]", False, 3, False, True),
    (0x7F1C2A7F0000, 0x7F1C2A7F4000, "r--p", 0, "00:00", 0, "[vvar]", False, 1, False, True),
    (0x7F1C2A7F4000, 0x7F1C2A7F6000, "r--p", 0, "00:00", 0, "[vvar_vclock]", False, 1, False, True),
    (0x7F1C2A7F6000, 0x7F1C2A7F8000, "r-xp", 0, "00:00", 0, "[vdso]", False, 5, False, True),
    (0x7FFD5C2E1000, 0x7FFD5C302000, "rw-p", 0, "00:00", 0, "[stack]", False, 3, False, True),
    (0xFFFFFFFFFF600000, 0xFFFFFFFFFF601000, "--xp", 0, "00:00", 0, "[vsyscall]", False, 4, False, True),
]


@pytest.mark.parametrize("line,expected", list(zip(MAPS.splitlines(), MAPS_EXPECTED)),
                         ids=[e[6] or "anonymous" for e in MAPS_EXPECTED])
def test_maps_line(line, expected):
    (vma,) = proc.parse_maps(line)
    start, end, perms, pgoff, dev, inode, path, shared, prot, deleted, special = expected
    assert (vma.start, vma.end, vma.perms, vma.pgoff, vma.dev, vma.inode, vma.path) == (
        start, end, perms, pgoff, dev, inode, path)
    assert (vma.shared, vma.prot, vma.deleted, vma.special, vma.length) == (
        shared, prot, deleted, special, end - start)


def test_maps_whole_file_keeps_order():
    vmas = proc.parse_maps(MAPS)
    assert [v.start for v in vmas] == [e[0] for e in MAPS_EXPECTED]


@pytest.mark.parametrize("line", ["garbage", "7f00-7f01 rw-p 0 fe:00", "7f00 rw-p 00000000 fe:00 1 /x"])
def test_maps_refuses_what_is_not_a_maps_line(line):
    with pytest.raises(ValueError, match="unparsable maps line"):
        proc.parse_maps(line)


SMAPS = """\
55d0c8a00000-55d0c8a02000 r--p 00000000 fe:00 1311                       /usr/bin/cat
Size:                  8 kB
KernelPageSize:        4 kB
Rss:                   8 kB
THPeligible:           0
VmFlags: rd mr mw me dw sd 
7f1c2a400000-7f1c2a401000 rw-s 00000000 00:01 4096                       /dev/zero (deleted)
Size:                  4 kB
VmFlags: rd wr sh mr mw me ms sd 
7ffd5c2e1000-7ffd5c302000 rw-p 00000000 00:00 0                          [stack]
Size:                132 kB
Rss:                  16 kB
VmFlags: rd wr mr mw me gd ac 
"""


def test_smaps_vmflags_per_vma():
    assert proc.parse_smaps_vmflags(SMAPS) == {
        0x55D0C8A00000: frozenset({"rd", "mr", "mw", "me", "dw", "sd"}),
        0x7F1C2A400000: frozenset({"rd", "wr", "sh", "mr", "mw", "me", "ms", "sd"}),
        0x7FFD5C2E1000: frozenset({"rd", "wr", "mr", "mw", "me", "gd", "ac"}),
    }


# Fields 1-52 of proc(5); comm "a) (b c)" has spaces and ')' (the kernel allows any 15 bytes).
STAT = ("4242 (a) (b c)) S 4200 4242 4100 34817 4242 4194560 120 0 0 0 3 1 0 0 20 0 3 0 1234567 "
        "10485760 300 18446744073709551615 94000000000000 94000000004096 140720000000000 0 0 0 "
        "0 4096 0 0 0 0 17 1 0 0 0 0 0 94000000012288 94000000016384 94000001000000 "
        "140720000001000 140720000001020 140720000001020 140720000002000 0\n")


def test_stat_with_awkward_comm():
    st = proc.parse_stat(STAT)
    assert (st.pid, st.comm, st.state) == (4242, "a) (b c)", "S")
    assert (st.ppid, st.pgid, st.sid, st.tty_nr, st.flags) == (4200, 4242, 4100, 34817, 4194560)
    assert st.tpgid == 4242
    assert (st.nice, st.num_threads) == (0, 3)
    assert (st.start_code, st.end_code, st.start_stack) == (94000000000000, 94000000004096, 140720000000000)
    assert st.exit_signal == 17
    assert (st.start_data, st.end_data, st.start_brk) == (94000000012288, 94000000016384, 94000001000000)
    assert (st.arg_start, st.arg_end, st.env_start, st.env_end) == (
        140720000001000, 140720000001020, 140720000001020, 140720000002000)
    assert st.exit_code == 0


STATUS = """\
Name:\tweird: name
Umask:\t0022
State:\tS (sleeping)
Tgid:\t4242
Pid:\t4242
PPid:\t4200
Uid:\t1000\t1000\t1000\t1000
Groups:\t4 24 27 
SigBlk:\t0000000000010000
SigIgn:\t0000000000001000
CapEff:\t000001ffffffffff
NoNewPrivs:\t1
"""


def test_status_keys_and_raw_values():
    st = proc.parse_status(STATUS)
    assert st["Name"] == "weird: name"
    assert st["Uid"].split() == ["1000"] * 4
    assert st["Groups"] == "4 24 27"
    assert proc.sig_mask_from_hex(st["SigBlk"]) == 1 << (signal.SIGCHLD - 1)
    assert int(st["Umask"], 8) == 0o22
    assert st["NoNewPrivs"] == "1"


FDINFO_CASES = [
    ("pos:\t0\nflags:\t0100000\nmnt_id:\t24\nino:\t3\n", {"pos": 0, "flags": 0o100000, "mnt_id": 24, "ino": 3}),
    # O_CLOEXEC | O_LARGEFILE (0100000 on x86-64) | O_NONBLOCK | O_RDWR
    ("pos:\t4096\nflags:\t02104002\nmnt_id:\t31\nino:\t1234\n",
     {"pos": 4096, "flags": os.O_CLOEXEC | 0o100000 | os.O_NONBLOCK | os.O_RDWR, "mnt_id": 31, "ino": 1234}),
    ("pos:\t0\nflags:\t02\nmnt_id:\t15\nino:\t99\neventfd-count:\t5\neventfd-id: 3\n",
     {"pos": 0, "flags": 2, "mnt_id": 15, "ino": 99, "extra": ["eventfd-count:\t5", "eventfd-id: 3"]}),
]


@pytest.mark.parametrize("text,expected", FDINFO_CASES)
def test_fdinfo_flags_are_octal(text, expected):
    assert proc.parse_fdinfo(text) == expected


LIMITS = """\
Limit                     Soft Limit           Hard Limit           Units     
Max cpu time              unlimited            unlimited            seconds   
Max file size             unlimited            unlimited            bytes     
Max data size             unlimited            unlimited            bytes     
Max stack size            8388608              unlimited            bytes     
Max core file size        0                    unlimited            bytes     
Max resident set          unlimited            unlimited            bytes     
Max processes             96343                96343                processes 
Max open files            1024                 1048576              files     
Max locked memory         8388608              8388608              bytes     
Max address space         unlimited            unlimited            bytes     
Max file locks            unlimited            unlimited            locks     
Max pending signals       96343                96343                signals   
Max msgqueue size         819200               819200               bytes     
Max nice priority         0                    0                    
Max realtime priority     0                    0                    
Max realtime timeout      unlimited            unlimited            us        
"""


def test_limits_rows_are_resources_in_kernel_order():
    limits = proc.parse_limits(LIMITS)
    assert len(limits) == 16
    assert limits[resource.RLIMIT_CPU] == (UNLIMITED, UNLIMITED)
    assert limits[resource.RLIMIT_STACK] == (8388608, UNLIMITED)
    assert limits[resource.RLIMIT_CORE] == (0, UNLIMITED)
    assert limits[resource.RLIMIT_NOFILE] == (1024, 1048576)
    assert limits[resource.RLIMIT_NICE] == (0, 0)        # a row without units
    assert limits[resource.RLIMIT_RTTIME] == (UNLIMITED, UNLIMITED)


# -- the live files of this very process -------------------------------------------


def test_live_maps_and_smaps(tmp_path):
    page = mmap.PAGESIZE
    odd = tmp_path / "a file (with) spaces"
    odd.write_bytes(b"x" * page)
    gone = tmp_path / "soon deleted"
    gone.write_bytes(b"y" * page)
    with open(odd, "rb") as f1, open(gone, "rb") as f2:
        m_odd = mmap.mmap(f1.fileno(), page, prot=mmap.PROT_READ)
        m_gone = mmap.mmap(f2.fileno(), page, prot=mmap.PROT_READ)
    os.unlink(gone)
    m_shared = mmap.mmap(-1, page, flags=mmap.MAP_SHARED)
    try:
        vmas = proc.read_vmas(os.getpid())
        by_path = {v.path: v for v in vmas}
        assert by_path[str(odd)].perms == "r--s" and not by_path[str(odd)].deleted
        assert by_path[f"{gone} (deleted)"].deleted
        shared_anon = [v for v in vmas if v.path.startswith("/dev/zero") and v.shared]
        assert shared_anon and all(v.perms.startswith("rw") for v in shared_anon)
        assert "[stack]" in by_path and by_path["[vdso]"].prot == 5
        assert all(a.end <= b.start for a, b in zip(vmas, vmas[1:])), "maps is sorted and disjoint"
        assert all(v.vmflags for v in vmas if v.path != "[vsyscall]"), "every VMA got its smaps VmFlags"
        assert "gd" in by_path["[stack]"].vmflags
    finally:
        for m in (m_odd, m_gone, m_shared):
            m.close()


def test_live_stat_status_comm():
    pid = os.getpid()
    st = proc.read_stat(pid)
    assert (st.pid, st.ppid, st.pgid, st.sid) == (pid, os.getppid(), os.getpgid(0), os.getsid(0))
    assert st.state == "R" and st.start_code < st.end_code and st.arg_start < st.arg_end
    assert st.comm == proc.read_comm(pid)
    status = proc.read_status(pid)
    assert int(status["Pid"]) == pid and int(status["Umask"], 8) == _umask()
    assert proc.read_stat(pid, tid=pid).pid == pid
    assert pid in proc.thread_ids(pid)


def _umask():
    old = os.umask(0)
    os.umask(old)
    return old


def test_live_fdinfo_and_fds(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"0123456789")
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CLOEXEC)
    try:
        os.lseek(fd, 3, os.SEEK_SET)
        info = proc.read_fdinfo(os.getpid(), fd)
        assert info["pos"] == 3
        assert info["flags"] & 0o3 == os.O_RDWR
        assert info["flags"] & os.O_APPEND and info["flags"] & os.O_CLOEXEC
        assert info["ino"] == os.stat(path).st_ino
        assert fd in proc.list_fds(os.getpid())
        assert proc.readlink(os.getpid(), f"fd/{fd}") == str(path)
    finally:
        os.close(fd)


def test_live_limits_row_i_is_resource_i():
    limits = proc.read_limits(os.getpid())
    for index, (soft, hard) in enumerate(limits):
        expected = tuple(UNLIMITED if v == resource.RLIM_INFINITY else v for v in resource.getrlimit(index))
        assert (soft, hard) == expected, f"row {index}"


def test_live_personality_and_auxv():
    assert proc.read_personality(os.getpid()) & 0xFF == 0   # PER_LINUX
    auxv = proc.read_auxv(os.getpid())
    assert len(auxv) % 16 == 0 and auxv.endswith(b"\0" * 16)   # AT_NULL ends it


def test_a_missing_process_is_no_such_process():
    with open("/proc/sys/kernel/pid_max") as f:
        beyond = int(f.read()) + 1
    assert not proc.exists(beyond)
    for read in (proc.read_stat, proc.read_status, proc.read_vmas, proc.read_limits, proc.thread_ids, proc.list_fds):
        with pytest.raises(NoSuchProcess, match=str(beyond)):
            read(beyond)
    assert proc.holder_description(beyond) == str(beyond)
