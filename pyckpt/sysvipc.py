"""System V IPC: shared memory segments, semaphore sets, message queues.

The dumped tree shares the host's IPC namespace, so these objects are not
the tree's by construction. Which ones belong to a dump:
  - a shared memory segment: every segment a dumped process has attached
    (refused if a process outside the tree has it attached too); one that
    is not attached stays on the host, whoever created it;
  - a semaphore set or message queue: every one named with --ipc-sem ID /
    --ipc-msg ID, and every one a dumped process was the last to operate on
    (a semaphore's sempid, a queue's lspid or lrpid). The kernel records no
    other link between a process and these objects: one a process only
    created, or used before some other process did, must be named.
A dump that ends the tree (no -R) also removes its objects from the host:
they went into the image with their processes. Restore recreates each one
with its id and key (through /proc/sys/kernel/*_next_id, which the
kernel resets to -1 once used) and refuses,
before creating anything, if the id or key is taken.

Kept: id, key, owner and creator uid/gid, mode, size and contents, SHM_LOCK,
a segment's removal mark (IPC_RMID while attached: marked again after the
last restored attach), semaphore values, queued messages (type, order,
bytes) and msg_qbytes. Not kept (the kernel cannot set them): times, the
creator and last-operation pids. SEM_UNDO adjustments cannot be read from
user space (no interface shows them): when the dump includes semaphore
sets, a process that holds a semaphore undo list (seen with kcmp
KCMP_SYSVSEM) is refused, with either source.

Everything here runs in pyckpt itself through libc; segments are attached
in the targets by injected shmat (restore/memory.py).
"""

import ctypes
import errno
import logging
import os
import struct

from . import images, linux, shmem
from .errors import PyckptError, RestoreConflict, UnsupportedState
from .images.proto import ipc_pb2, mm_pb2
from .pagemap import PAGE_SIZE

log = logging.getLogger(__name__)

IPC_CREAT, IPC_EXCL, IPC_NOWAIT = 0o1000, 0o2000, 0o4000
IPC_RMID, IPC_SET = 0, 1
SHM_LOCK = 11
SHM_DEST, SHM_LOCKED = 0o1000, 0o2000     # in a segment's mode
SHM_RDONLY, SHM_EXEC = 0o10000, 0o100000
GETPID, GETALL, SETALL = 11, 13, 17
MSG_COPY = 0o40000
IPCMNI = 1 << 15                        # ids are seq * IPCMNI + index (without ipcmni_extend)
PERM_MASK = 0o777

_libc = ctypes.CDLL(None, use_errno=True)
for _name, _res in (("shmget", ctypes.c_int), ("shmat", ctypes.c_void_p), ("shmdt", ctypes.c_int),
                    ("shmctl", ctypes.c_int), ("semget", ctypes.c_int), ("semctl", ctypes.c_int),
                    ("msgget", ctypes.c_int), ("msgctl", ctypes.c_int), ("msgsnd", ctypes.c_int),
                    ("msgrcv", ctypes.c_ssize_t)):
    getattr(_libc, _name).restype = _res


def _check(result, what):
    if result == -1 or result is None or result == (1 << 64) - 1:   # shmat: (void *)-1
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return result


# -- what /proc/sysvipc shows ---------------------------------------------------


def read_table(kind):
    """{id: {column: int}} from /proc/sysvipc/<kind> (shm, sem, msg)."""
    with open(f"/proc/sysvipc/{kind}") as f:
        return parse_table(f.read())


def parse_table(text):
    """Rows of a /proc/sysvipc table by id (its second column); perms are octal there."""
    lines = text.splitlines()
    header = lines[0].split()
    rows = {}
    for line in lines[1:]:
        row = {name: int(value, 8 if name == "perms" else 10) for name, value in zip(header, line.split())}
        rows[row[header[1]]] = row
    return rows


def is_shm_mapping(vma):
    """A shmat() mapping: the kernel names its file SYSV<key in hex> and unlinks it at once."""
    return vma.shared and vma.path.startswith("/SYSV") and vma.deleted


def _perm(row):
    return ipc_pb2.IpcPerm(key=row["key"], uid=row["uid"], gid=row["gid"], cuid=row["cuid"],
                           cgid=row["cgid"], mode=row["perms"] & PERM_MASK)


# -- dump -----------------------------------------------------------------------


class Collected:
    """The SysV objects of one dump, described; contents saved by `save`."""

    def __init__(self):
        self.shm = []          # ShmSegment
        self.shm_source = {}   # shmid -> map_files path of an attach, to copy the contents from
        self.sem = []
        self.msg = []

    def fill(self, ipc):
        ipc.shm.extend(self.shm)
        ipc.sem.extend(self.sem)
        ipc.msg.extend(self.msg)

    def save(self, writer):
        for seg in self.shm:
            shmem.save_object(self.shm_source[seg.id], 0, seg.size, writer.path(seg.data))


def collect(vmas_by_pid, mms, pids, options):
    """Describe the SysV objects that belong to this dump (see the module doc); refuse what cannot be."""
    out = Collected()
    _collect_shm(out, vmas_by_pid, mms, set(pids))
    _collect_sem(out, set(pids), set(options.ipc_sems))
    _collect_msg(out, set(pids), set(options.ipc_msgs))
    if out.sem:
        _refuse_undo_lists(pids, out.sem)
    return out


def _refuse_undo_lists(pids, sems):
    """SEM_UNDO adjustments are invisible from user space; refuse a process that may hold some.

    kcmp(KCMP_SYSVSEM) against pyckpt (which never used SEM_UNDO) tells whether
    a process has an undo list at all. Every process that ever created a
    thread has one too (CLONE_SYSVSEM shares it), so only a dump that
    includes semaphore sets is refused for it.
    """
    for pid in pids:
        if linux.kcmp_sysvsem(pid, os.getpid()) != 0:
            raise UnsupportedState(
                f"process {pid} holds a System V semaphore undo list (SEM_UNDO, or threads) and the dump "
                f"includes semaphore set(s) {', '.join(str(s.id) for s in sems)}: its SEM_UNDO adjustments "
                "cannot be read, so they cannot be restored")


def _collect_shm(out, vmas_by_pid, mms, pids):
    attaches = {}   # shmid -> {pid: [vma]}
    for pid, vmas in vmas_by_pid.items():
        for vma, msg in zip(vmas, mms[pid].vmas):
            if msg.kind == mm_pb2.Vma.SYSV_SHM:
                attaches.setdefault(vma.inode, {}).setdefault(pid, []).append(vma)
    if not attaches:
        return
    table = read_table("shm")
    for shmid, by_pid in sorted(attaches.items()):
        row = table.get(shmid)
        first_pid, first = next(iter(by_pid.items()))
        if row is None:
            raise UnsupportedState(f"process {first_pid} maps System V shared memory {first[0].path} "
                                   f"(shmid {shmid}) that /proc/sysvipc/shm does not list")
        if row["perms"] & ~(PERM_MASK | SHM_DEST | SHM_LOCKED):
            raise UnsupportedState(f"System V shared memory segment {shmid}: unsupported mode {row['perms']:#o}")
        mapped = sum(len(v) for v in by_pid.values())
        if row["nattch"] > mapped:   # the kernel counts one attach per VMA
            outside = _shm_holders_outside(shmid, pids)
            raise UnsupportedState(
                f"System V shared memory segment {shmid} (key {row['key']:#x}) is also attached outside the "
                f"dumped tree (by {', '.join(map(str, outside)) or 'a process pyckpt cannot see'}); "
                "restoring it would split it in two")
        for pid, vmas in by_pid.items():
            _check_whole_attaches(pid, shmid, vmas, row["size"])
        removed = bool(row["perms"] & SHM_DEST)
        perm = _perm(row)
        out.shm.append(ipc_pb2.ShmSegment(id=shmid, perm=perm, size=row["size"], removed=removed,
                                          locked=bool(row["perms"] & SHM_LOCKED),
                                          data=images.sysv_shm(shmid)))
        out.shm_source[shmid] = f"/proc/{first_pid}/map_files/{first[0].start:x}-{first[0].end:x}"


def _check_whole_attaches(pid, shmid, vmas, size):
    """Each attach must still map the whole segment (maybe split in pieces by mprotect)."""
    whole = -(-size // PAGE_SIZE) * PAGE_SIZE
    base = expected = None
    for vma in sorted(vmas, key=lambda v: v.start):
        if vma.pgoff == 0:
            if base is not None and expected - base != whole:
                break
            base, expected = vma.start, vma.end
        elif base is not None and vma.start == expected and vma.pgoff == vma.start - base:
            expected = vma.end
        else:
            base = None
            break
    if base is None or expected - base != whole:
        raise UnsupportedState(f"process {pid} has part of System V shared memory segment {shmid} "
                               "unmapped (munmap inside an attach); not supported")


def _shm_holders_outside(shmid, pids):
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) in pids:
            continue
        try:
            with open(f"/proc/{name}/maps") as f:
                for line in f:
                    fields = line.split(None, 5)
                    if len(fields) == 6 and fields[5].startswith("/SYSV") and int(fields[4]) == shmid:
                        found.append(int(name))
                        break
        except OSError:
            continue
    return found


def _sem_values(semid, nsems):
    values = (ctypes.c_ushort * max(nsems, 1))()
    _check(_libc.semctl(semid, 0, GETALL, values), f"semctl({semid}, GETALL)")
    return list(values[:nsems])


def _collect_sem(out, pids, named):
    table = read_table("sem")
    for semid in sorted(named - set(table)):
        raise PyckptError(f"--ipc-sem {semid}: there is no semaphore set with that id")
    for semid, row in sorted(table.items()):
        last = {_check(_libc.semctl(semid, i, GETPID), f"semctl({semid}, GETPID)") for i in range(row["nsems"])}
        if semid not in named and not last & pids:
            continue
        out.sem.append(ipc_pb2.SemSet(id=semid, perm=_perm(row), values=_sem_values(semid, row["nsems"])))


def _collect_msg(out, pids, named):
    table = read_table("msg")
    for msqid in sorted(named - set(table)):
        raise PyckptError(f"--ipc-msg {msqid}: there is no message queue with that id")
    for msqid, row in sorted(table.items()):
        if msqid not in named and not {row["lspid"], row["lrpid"]} & pids:
            continue
        queue = ipc_pb2.MsgQueue(id=msqid, perm=_perm(row), qbytes=_msg_qbytes(msqid))
        size = max(row["cbytes"], 1)
        buf = ctypes.create_string_buffer(8 + size)
        for index in range(row["qnum"]):
            # MSG_COPY: a copy of the index-th message, the queue left as it is.
            n = _check(_libc.msgrcv(msqid, buf, size, index, IPC_NOWAIT | MSG_COPY),
                       f"msgrcv({msqid}, MSG_COPY {index})")
            mtype = int.from_bytes(buf.raw[:8], linux.ARCH.BYTEORDER, signed=True)
            queue.messages.add(type=mtype, data=buf.raw[8:8 + n])
        out.msg.append(queue)


# struct ipc64_perm and the *id64_ds around it, as IPC_STAT/IPC_SET see them on
# 64-bit Linux (x86-64, arm64 and mips64 lay them out alike).
_PERM = "=i5IHH4xQQ"
_MSQID_DS = _PERM + "qqqQQQiiQQ"


def _pack_perm(perm, uid, gid):
    return struct.pack(_PERM, perm.key, uid, gid, perm.cuid, perm.cgid, perm.mode, 0, 0, 0, 0)


def _msg_qbytes(msqid):
    buf = ctypes.create_string_buffer(128)
    _check(_libc.msgctl(msqid, 2, buf), f"msgctl({msqid}, IPC_STAT)")   # 2: IPC_STAT
    return struct.unpack_from(_MSQID_DS, buf.raw)[15]


def remove(ipc):
    """After a dump that ended the tree: its objects left the host with it."""
    for kind, objects, ctl in (("shm", ipc.shm, _libc.shmctl), ("sem", ipc.sem, _libc.semctl),
                               ("msg", ipc.msg, _libc.msgctl)):
        for obj in objects:
            args = (obj.id, 0, IPC_RMID) if kind == "sem" else (obj.id, IPC_RMID, None)
            if ctl(*args) == -1 and ctypes.get_errno() not in (errno.EINVAL, errno.EIDRM):  # gone already
                log.warning("could not remove System V %s %d after the dump: %s", kind, obj.id,
                            os.strerror(ctypes.get_errno()))


# -- restore --------------------------------------------------------------------


_KINDS = (("shm", "shared memory segment"), ("sem", "semaphore set"), ("msg", "message queue"))


def check_free(ipc):
    """RestoreConflict if an id (or its slot) or a key of the image is taken on this machine."""
    for kind, what in _KINDS:
        objects = getattr(ipc, kind)
        if not objects:
            continue
        table = read_table(kind)
        keys = {row["key"]: i for i, row in table.items() if row["key"]}
        slots = {i % IPCMNI: i for i in table}
        for obj in objects:
            if obj.id in table:
                raise RestoreConflict(f"System V {what} id {obj.id} is in use on this machine")
            if obj.id % IPCMNI in slots:
                raise RestoreConflict(f"System V {what} id {obj.id} cannot be had: its slot is taken by "
                                      f"id {slots[obj.id % IPCMNI]}")
            if obj.perm.key and obj.perm.key in keys:
                raise RestoreConflict(f"System V {what} key {obj.perm.key:#x} (id {obj.id}) is in use on "
                                      f"this machine by id {keys[obj.perm.key]}")


class Restorer:
    """Creates the image's SysV objects (before any process), marks removals (after every attach)."""

    def __init__(self, image):
        self.image = image
        self.ipc = image.ipc
        self.created = []      # (kind, id), to undo a failed restore

    def create_all(self):
        for seg in self.ipc.shm:
            key = 0 if seg.removed else seg.perm.key
            self._create("shm", seg, lambda: _libc.shmget(key, seg.size, IPC_CREAT | IPC_EXCL | seg.perm.mode))
            self._set_owner("shm", seg)
            self._fill_shm(seg)
            if seg.locked:
                _check(_libc.shmctl(seg.id, SHM_LOCK, None), f"shmctl({seg.id}, SHM_LOCK)")
        for sem in self.ipc.sem:
            self._create("sem", sem, lambda: _libc.semget(sem.perm.key, len(sem.values),
                                                          IPC_CREAT | IPC_EXCL | sem.perm.mode))
            values = (ctypes.c_ushort * max(len(sem.values), 1))(*sem.values)
            _check(_libc.semctl(sem.id, 0, SETALL, values), f"semctl({sem.id}, SETALL)")
            self._set_owner("sem", sem)
        for queue in self.ipc.msg:
            self._create("msg", queue, lambda: _libc.msgget(queue.perm.key, IPC_CREAT | IPC_EXCL | queue.perm.mode))
            total = sum(len(m.data) for m in queue.messages)
            self._set_owner("msg", queue, qbytes=max(queue.qbytes, total))
            for m in queue.messages:
                buf = ctypes.create_string_buffer(m.type.to_bytes(8, linux.ARCH.BYTEORDER, signed=True) + m.data)
                _check(_libc.msgsnd(queue.id, buf, len(m.data), IPC_NOWAIT), f"msgsnd({queue.id})")
            self._set_owner("msg", queue, qbytes=queue.qbytes)

    def _create(self, kind, obj, make):
        """Create with the image's id (next_id) as its creator (cuid/cgid as euid/egid)."""
        what = dict(_KINDS)[kind]
        next_id = f"/proc/sys/kernel/{kind}_next_id"
        try:
            with open(next_id, "w") as f:
                f.write(str(obj.id))
        except OSError as err:
            # Writable with CAP_CHECKPOINT_RESTORE (or CAP_SYS_ADMIN) over the IPC namespace, on kernels
            # with CONFIG_CHECKPOINT_RESTORE; without it no other way gives an object its id.
            raise RestoreConflict(f"cannot give System V {what} {obj.id} its id: writing {next_id} failed "
                                  f"({err.strerror}); restore needs CAP_CHECKPOINT_RESTORE and a kernel "
                                  "with CONFIG_CHECKPOINT_RESTORE") from err
        euid, egid = os.geteuid(), os.getegid()
        os.setegid(obj.perm.cgid)
        os.seteuid(obj.perm.cuid)
        try:
            got = make()
            err = ctypes.get_errno()
        finally:
            os.seteuid(euid)
            os.setegid(egid)
        if got == -1:
            # The kernel sets next_id back to -1 only when it hands out an id
            # (the sysctl itself refuses -1): say so, the next object made here would get it.
            log.warning("%s still holds %d after a failed create", next_id, obj.id)
            if err == errno.EEXIST:
                raise RestoreConflict(f"System V {what} key {obj.perm.key:#x} is in use on this machine")
            raise RestoreConflict(f"cannot create System V {what} {obj.id}: {os.strerror(err)}")
        self.created.append((kind, got))
        if got != obj.id:
            raise RestoreConflict(f"System V {what} {obj.id} came out as id {got} (taken meanwhile?)")

    def _set_owner(self, kind, obj, qbytes=None):
        """IPC_SET: owner uid/gid when not the creator's, a queue's msg_qbytes."""
        if qbytes is None and (obj.perm.uid, obj.perm.gid) == (obj.perm.cuid, obj.perm.cgid):
            return
        perm = _pack_perm(obj.perm, obj.perm.uid, obj.perm.gid)
        if kind == "msg":
            ds = perm + struct.pack("=qqqQQQiiQQ", 0, 0, 0, 0, 0, qbytes, 0, 0, 0, 0)
        else:
            ds = perm + bytes(72)       # shmid64_ds / semid64_ds: only the perm part is read
        buf = ctypes.create_string_buffer(ds, 128)
        if kind == "shm":
            result = _libc.shmctl(obj.id, IPC_SET, buf)
        elif kind == "sem":
            result = _libc.semctl(obj.id, 0, IPC_SET, buf)
        else:
            result = _libc.msgctl(obj.id, IPC_SET, buf)
        _check(result, f"IPC_SET on System V {dict(_KINDS)[kind]} {obj.id}")

    def _fill_shm(self, seg):
        """Copy the contents in through an attach of pyckpt's own, holes left as holes."""
        if not seg.size:
            return
        addr = _check(_libc.shmat(seg.id, None, 0), f"shmat({seg.id})")
        try:
            src = os.open(self.image.path(seg.data), os.O_RDONLY)
            try:
                for offset, length in shmem.data_ranges(src, 0, seg.size):
                    view = (ctypes.c_char * length).from_address(addr + offset)
                    done = 0
                    while done < length:
                        n = os.preadv(src, [memoryview(view).cast("B")[done:]], offset + done)
                        if n <= 0:
                            raise PyckptError(f"{seg.data}: short read at {offset + done}")
                        done += n
            finally:
                os.close(src)
        finally:
            _libc.shmdt(ctypes.c_void_p(addr))

    def mark_removed(self):
        """Segments marked for removal at the dump: marked again, now that every process has attached."""
        for seg in self.ipc.shm:
            if seg.removed:
                _check(_libc.shmctl(seg.id, IPC_RMID, None), f"shmctl({seg.id}, IPC_RMID)")

    def undo(self):
        for kind, ident in reversed(self.created):
            if kind == "shm":
                _libc.shmctl(ident, IPC_RMID, None)
            elif kind == "sem":
                _libc.semctl(ident, 0, IPC_RMID)
            else:
                _libc.msgctl(ident, IPC_RMID, None)
        self.created = []


def attach_flags(vma):
    """shmat flags that give a restored attach the kernel's view of the original."""
    flags = 0 if vma.may_write else SHM_RDONLY
    if vma.prot & 4:
        flags |= SHM_EXEC
    return flags
