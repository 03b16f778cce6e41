"""SysV IPC: /proc/sysvipc parsing and the whole-attach rule, on recorded text."""

import pytest

from pyckpt import proc, sysvipc
from pyckpt.errors import UnsupportedState
from pyckpt.pagemap import PAGE_SIZE

SHM = """\
       key      shmid perms                  size  cpid  lpid nattch   uid   gid  cuid  cgid      atime      dtime      ctime                   rss                  swap
1509976486          0   640                 12411 27046 27048      7  1000   100     0     0 1795251772          0 1795251772                 16384                     0
         0          1  1600                  4096 27046 27046      2     0     0     0     0 1795251772          0 1795251772                  4096                     0
"""
MSG = """\
       key      msqid perms      cbytes       qnum lspid lrpid   uid   gid  cuid  cgid      stime      rtime      ctime
-559038737      32768   620          19          4   812     0     0     0     0     0 1795251772          0 1795251772
"""


def test_shm_table():
    rows = sysvipc.parse_table(SHM)
    assert sorted(rows) == [0, 1]
    assert rows[0]["key"] == 0x5A0069A6 and rows[0]["perms"] == 0o640 and rows[0]["size"] == 12411
    assert rows[0]["uid"] == 1000 and rows[0]["nattch"] == 7
    assert rows[1]["perms"] & sysvipc.SHM_DEST and not rows[1]["key"]
    perm = sysvipc._perm(rows[0])
    assert (perm.key, perm.uid, perm.gid, perm.mode) == (0x5A0069A6, 1000, 100, 0o640)


def test_msg_table_negative_key():
    rows = sysvipc.parse_table(MSG)
    assert rows[32768]["key"] == -559038737 and rows[32768]["qnum"] == 4 and rows[32768]["lspid"] == 812


def vma(start, pages, pgoff_pages, perms="rw-s"):
    return proc.Vma(start, start + pages * PAGE_SIZE, perms, pgoff_pages * PAGE_SIZE, "00:01", 0,
                    "/SYSV5a0069a6 (deleted)")


def test_attach_split_by_mprotect_is_whole():
    base = 0x7F0000000000
    pieces = [vma(base, 2, 0), vma(base + 2 * PAGE_SIZE, 1, 2, "r--s"), vma(base + 3 * PAGE_SIZE, 1, 3)]
    sysvipc._check_whole_attaches(1, 0, pieces, 3 * PAGE_SIZE + 123)
    assert sysvipc.is_shm_mapping(pieces[0])


def test_two_whole_attaches():
    sysvipc._check_whole_attaches(1, 0, [vma(0x10000, 1, 0), vma(0x40000, 1, 0)], PAGE_SIZE)


@pytest.mark.parametrize("pieces", [
    [vma(0x10000, 1, 0)],                          # tail unmapped
    [vma(0x11000, 1, 1)],                          # head unmapped
    [vma(0x10000, 1, 0), vma(0x12000, 1, 2)],      # hole in the middle
], ids=["tail", "head", "middle"])
def test_partly_unmapped_attach_refused(pieces):
    with pytest.raises(UnsupportedState, match="part of System V shared memory segment 5"):
        sysvipc._check_whole_attaches(1, 5, pieces, 3 * PAGE_SIZE)
