"""Dump orchestration: freeze, describe, refuse what we cannot restore, write, thaw or kill.

Backend-free: the source (ptrace or kmod) answers what only a frozen target
can tell; everything else comes from /proc here, so both sources produce the
same image. Nothing is written under the final name until the image is whole,
and on any error the targets are thawed as they were.
"""

import logging
import os
import platform
import struct
import time
from stat import S_ISREG

from . import __version__, clone_shares, images, incremental, linux, pagemap, proc, shmem, sysvipc, tracking, vdso
from . import arch as archmod
from .errors import NoSuchProcess, UnsupportedState
from .files import FileTable
from .files import ghost, memfd, reopenable
from .files import regular as regular_files
from .images.proto import core_pb2, files_pb2, inventory_pb2, ipc_pb2, mm_pb2
from .images.store import ImageWriter
from .oplog import log_to
from .options import DumpOptions
from .ranges import Range, intersect, subtract
from .restorer import vmflags as restore_vmflags
from .sources import open_source

log = logging.getLogger(__name__)

ANON_NAMES = ("", "[heap]", "[stack]")
AIO_RING_PATH = "/[aio] (deleted)"   # how /proc shows an io_setup() context's ring


def dump(pid, images_dir, options=None):
    """Checkpoint the process tree rooted at `pid` into `images_dir`. Returns a summary dict."""
    options = options or DumpOptions()
    writer = ImageWriter(images_dir)
    try:
        with log_to(writer.path(options.log_file)):
            return _dump(pid, writer, options)
    except ProcessLookupError as err:
        writer.abort()
        # killed while frozen (SIGKILL ends even a traced process): nothing to save any more
        raise NoSuchProcess(f"a process of the tree died during the dump ({err.strerror}: {err})") from err
    except BaseException:
        writer.abort()
        raise


def _dump(pid, writer, options):
    arch = archmod.host()
    started = time.monotonic()
    source = open_source(options.backend, pid, options)
    # A missing or changed parent, or --track-mem without a way to track, refused before freezing.
    prev = incremental.Parent(writer.final_dir, options.prev_images_dir) if options.prev_images_dir else None
    track = tracking.refuse_without(options.track_method, source.name) if options.track_mem else None
    log.info("dumping %d with the %s source into %s", pid, source.name, writer.final_dir)
    # io_uring worker threads can be neither stopped nor injected into: refuse before freezing.
    _refuse_io_uring(proc.process_tree(pid))
    with source:
        pids = source.freeze()
        if pid not in pids:
            # it died while being frozen (then the walk takes it for a zombie): no image of nothing
            raise NoSuchProcess(f"process {pid} exited while it was being frozen")
        _refuse_io_uring(pids)
        frozen_at = time.monotonic()
        # Describe everything first: a refusal must come before any image is written.
        file_table = FileTable(options, source)
        try:
            tasks, mms, vmas_by_pid, tracked_vmas = {}, {}, {}, {}
            tree = files_pb2.PsTree()
            tracked = [p for p in pids if tracking.parked(p)]
            if options.leave_running:
                tracking.check_closable(source, pids)
            for p in pids:
                state = source.collect(p)
                tracked_vmas[p] = source.vmas(p)
                vmas = tracking.untracked(tracked_vmas[p]) if tracked else tracked_vmas[p]
                tasks[p] = _task_message(p, state, arch)
                mms[p] = _mm_message(p, vmas, state)
                vmas_by_pid[p] = vmas
                file_table.add_process(p, skip=(tracking.PARKED_FD,) if p in tracked else ())
                file_table.add_mappings(p, vmas, mms[p])
            for p in proc.process_tree(pid):
                if p in tasks:
                    t = tasks[p]
                    tree.processes.add(pid=p, ppid=t.ppid, pgid=t.pgid, sid=t.sid, threads=[th.tid for th in t.threads])
                elif p in source.zombies:
                    z = proc.read_stat(p)
                    tree.processes.add(pid=p, ppid=z.ppid, pgid=z.pgid, sid=z.sid, zombie=True, exit_status=z.exit_code)
            # which processes restore creates with their parent's fd table or fs (or why it cannot)
            clone_shares.mark(tree, file_table.fd_tables)
            # Files first: a terminal leading outside names its fd (and --shell-job) before the session check.
            file_table.finish(pids)
            _check_tree(tree, options)
            _check_zombie_sessions(tree, tasks)
            _check_vdso(tree, mms)
            # Last check before writing: restore can reopen every fd and file mapping saved.
            reopenable.check(file_table.files, file_table.holders, mms)
            ipc = ipc_pb2.Ipc()
            memfds, memfd_sources = _mapped_memfds(vmas_by_pid, mms, file_table)
            ipc.memfds.extend(memfds)
            sysv = sysvipc.collect(vmas_by_pid, mms, pids, options)
            sysv.fill(ipc)

            stats = {"pages": 0, "inherited_pages": 0, "in_parent_pages": 0}
            shmem_windows = {}         # shmem id -> [(map_files path, start, end)] of its mappings
            private = {p: _private_ranges(vmas_by_pid[p], mms[p]) for p in pids}
            for p in pids:
                writer.write_message(images.core(p), tasks[p])
                writer.write_message(images.mm(p), mms[p])
                writer.write_message(images.fds(p), file_table.fd_tables[p])
                parent = tasks[p].ppid
                inherited = []
                if parent in tasks:
                    inherited = pagemap.cow_shared_runs(p, parent, intersect(private[p], private[parent]))
                ranges, in_parent = _subtract(private[p], inherited), []
                if prev is not None:
                    ranges, in_parent = prev.split(p, ranges, tracked_vmas[p], options.track_method)
                with writer.open_raw(images.pages(p)) as out:
                    runs = source.dump_pages(p, ranges, out)
                page_map = mm_pb2.PageMap(pages_file=images.pages(p), start_time=tracking.start_time(p))
                for vaddr, nr_pages in in_parent:
                    page_map.in_parent.add(vaddr=vaddr, nr_pages=nr_pages)
                stats["in_parent_pages"] += sum(n for _, n in in_parent)
                for run in runs:
                    page_map.runs.add(vaddr=run.vaddr, nr_pages=run.nr_pages)
                    stats["pages"] += run.nr_pages
                for vaddr, nr_pages in inherited:
                    page_map.inherited.add(vaddr=vaddr, nr_pages=nr_pages)
                stats["inherited_pages"] += sum(n for _, n in inherited)
                writer.write_message(images.pagemap(p), page_map)
                for vma, msg in zip(vmas_by_pid[p], mms[p].vmas):
                    if msg.kind == mm_pb2.Vma.SHMEM:
                        shmem_windows.setdefault(msg.shmem_id, []).append(
                            (f"/proc/{p}/map_files/{vma.start:x}-{vma.end:x}", vma.pgoff, vma.pgoff + vma.length))
            for shmem_id, windows in shmem_windows.items():
                shmem.save(windows, writer.path(shmem.image_name(shmem_id)))
            for file_id, (src_pid, src_fd) in file_table.ghosts.items():
                with writer.open_raw(images.ghost(file_id)) as out:
                    regular_files.save_ghost(src_pid, src_fd, out)
            for file_id, src_path in file_table.deleted_sources.items():
                entry = file_table.files.files[file_id - 1]  # ids count from 1
                with writer.open_raw(images.ghost(file_id)) as out:
                    ghost.save(entry, src_path, out)
            for pipe in file_table.files.pipes:
                if pipe.data:
                    with writer.open_raw(pipe.data) as out:
                        out.write(file_table.pipe_data[pipe.id])
            for name, queue in file_table.unix.queues.items():
                writer.write_message(name, queue)
            for obj in ipc.memfds:
                if obj.id in memfd_sources:
                    memfd.save_mapped(*memfd_sources[obj.id], obj.size, writer.path(obj.data))
            sysv.save(writer)
            # The target goes on: tracking restarted from this image, or pyckpt's userfaultfd taken away.
            track = tracking.restart(source, pids, track, private) if options.leave_running else None
            writer.write_message(images.IPC, ipc)
            if not options.leave_running:
                file_table.inet.leave_blocked(file_table.files, pid)
            writer.write_message(images.FILES, file_table.files)
            writer.write_message(images.PSTREE, tree)
            writer.write_message(images.INVENTORY, inventory_pb2.Inventory(
                format_version=images.FORMAT_VERSION, arch=arch.NAME, byteorder=arch.BYTEORDER,
                kernel_release=platform.release(), backend=source.name, created=time.time(),
                root_pid=pid, pyckpt_version=__version__, page_size=pagemap.PAGE_SIZE,
                parent=prev.relative if prev else "", parent_manifest=prev.manifest_sha if prev else b"",
                tracking=track or "",
            ))
            dumped_at = time.monotonic()
            if options.leave_running:
                # Every byte of the image is written (in the page cache): connections out of repair
                # mode and unblocked, thaw, then checksum, sync and rename it into place - the target
                # need not wait for the disk.
                file_table.inet.abort()     # the connections go on where they are
                source.release(kill=False)
                thawed_at = time.monotonic()
                writer.commit()
            else:
                # Killing must wait until the image is whole on disk: a failed commit leaves it running.
                writer.commit()
                source.release(kill=True)
                thawed_at = time.monotonic()
                file_table.inet.done()      # killed in repair mode: they said nothing to their peers
                sysvipc.remove(ipc)
            incremental.remember(writer.final_dir, pids, track)
        except BaseException:
            # connections out of repair mode and unblocked before the targets run again
            file_table.inet.abort()
            raise
    done = time.monotonic()
    summary = {
        "pid": pid, "pids": pids, "backend": source.name, "images": writer.final_dir,
        "pages": stats["pages"], "inherited_pages": stats["inherited_pages"],
        "in_parent_pages": stats["in_parent_pages"], "freeze_s": frozen_at - started,
        "dump_s": dumped_at - frozen_at, "frozen_s": thawed_at - frozen_at, "total_s": done - started,
    }
    log.info("dump complete: %s", summary)
    return summary


IO_URING_LINK = "anon_inode:[io_uring]"
_IO_URING_THREADS = ("iou-wrk-", "iou-sqp-")   # io-wq workers, the SQPOLL thread


def _refuse_io_uring(pids):
    """A process with an io_uring instance or its kernel threads, named with both."""
    for p in pids:
        try:
            rings = [fd for fd in proc.list_fds(p) if _readlink_or_none(p, f"fd/{fd}") == IO_URING_LINK]
            workers = [f"{tid} ({comm})" for tid in proc.thread_ids(p)
                       if (comm := _comm_or_none(p, tid)) and comm.startswith(_IO_URING_THREADS)]
        except NoSuchProcess:
            continue
        if rings or workers:
            fds = f"fd {', '.join(map(str, rings))} ({IO_URING_LINK})" if rings else "no io_uring fd"
            threads = f"worker threads {', '.join(workers)}" if workers else "no worker threads"
            raise UnsupportedState(f"process {p} uses io_uring: {fds}, {threads}; pyckpt cannot checkpoint "
                                   "io_uring (its workers cannot be stopped and its rings cannot be rebuilt)")


def _readlink_or_none(pid, name):
    try:
        return proc.readlink(pid, name)
    except NoSuchProcess:
        return None     # an fd closed meanwhile


def _comm_or_none(pid, tid):
    try:
        return proc.read_comm(pid, tid)
    except NoSuchProcess:
        return None     # a thread gone meanwhile


def _check_tree(tree, options):
    """Sessions and groups must be recreatable from inside the tree (or be the shell's, with --shell-job)."""
    pids = {e.pid for e in tree.processes}
    root = tree.processes[0]
    for entry in tree.processes:
        if entry.sid not in pids and entry.sid != root.sid:
            raise UnsupportedState(f"process {entry.pid} is in session {entry.sid}, led from outside the dump "
                                   "and not the dumped root's")
        if entry.pgid not in pids and entry.pgid != root.pgid:
            raise UnsupportedState(f"process {entry.pid} is in process group {entry.pgid}, led from outside "
                                   "the dump and not the dumped root's")
    if root.sid not in pids and not options.shell_job:
        raise UnsupportedState(
            f"process {root.pid} belongs to session {root.sid} of a process outside the dump (a shell?); "
            "dump with --shell-job to restore it into the restoring shell's session")


def _check_zombie_sessions(tree, tasks):
    """A process in a session its parent is not in was forked by the session's leader and
    reparented to its child-subreaper parent when the leader exited: restore does the same
    (restore/tree.py), from a zombie leader created before it as that parent's child."""
    entries = {e.pid: e for e in tree.processes}
    order = [e.pid for e in tree.processes]
    for entry in tree.processes[1:]:
        parent = entries[entry.ppid]
        if entry.sid in (entry.pid, parent.sid):
            continue
        leader = entries.get(entry.sid)
        what = f"process {entry.pid} is in session {entry.sid}, which its parent {entry.ppid} is not in"
        if leader is None or not leader.zombie or leader.ppid != entry.ppid:
            raise UnsupportedState(f"{what}, and that session's leader is not a zombie child of {entry.ppid}; "
                                   "not supported")
        if not tasks[entry.ppid].child_subreaper:
            raise UnsupportedState(f"{what}, and {entry.ppid} is not a child subreaper (a pid namespace's "
                                   "init?); not supported")
        if order.index(leader.pid) > order.index(entry.pid):
            raise UnsupportedState(f"{what}: its zombie leader has a higher PID (PIDs wrapped); not supported")


def _check_vdso(tree, mms):
    """Restore forks a child from its restored parent: a parent without a vDSO cannot give one."""
    for entry in tree.processes:
        parent = mms.get(entry.ppid)
        if entry.pid in mms and parent is not None and mms[entry.pid].vdso and not parent.vdso:
            raise UnsupportedState(f"process {entry.pid} has a vDSO but its parent {entry.ppid} unmapped its own: "
                                   "a restored child is forked from its parent and cannot get one back")


def _has_private_data(vma):
    return vma.kind in (mm_pb2.Vma.ANON, mm_pb2.Vma.FILE_PRIVATE, mm_pb2.Vma.MEMFD_PRIVATE)


def _mapped_memfds(vmas_by_pid, mms, file_table):
    """MemfdObjects of every mapped memfd, with where to copy each one's contents from.

    The contents are stored once: in the ghost of an fd on the same object
    when a dumped process holds one, else in memfd-<ino>.img.
    """
    ghosts = {f.file.ino: f.ghost for f in file_table.files.files if f.kind == files_pb2.OpenFile.MEMFD}
    objects, sources = {}, {}
    for p, vmas in vmas_by_pid.items():
        for vma, msg in zip(vmas, mms[p].vmas):
            if msg.kind in (mm_pb2.Vma.MEMFD_SHARED, mm_pb2.Vma.MEMFD_PRIVATE) and vma.inode not in objects:
                data = ghosts.get(vma.inode) or images.memfd(vma.inode)
                objects[vma.inode] = memfd.describe_mapped(p, vma, data)
                if vma.inode not in ghosts:
                    sources[vma.inode] = (p, vma)
    return list(objects.values()), sources


def _private_ranges(vmas, mm):
    """The address ranges whose pages belong in the process's own pages image."""
    return [Range(v.start, v.end) for v, m in zip(vmas, mm.vmas) if _has_private_data(m)]


def _subtract(ranges, runs):
    """`ranges` minus the page runs [(vaddr, nr_pages)], both sorted by address."""
    return subtract(ranges, [Range(vaddr, vaddr + nr * pagemap.PAGE_SIZE) for vaddr, nr in runs])


# -- process ------------------------------------------------------------------


def _task_message(pid, state, arch):
    stat = proc.read_stat(pid)
    status = proc.read_status(pid)
    task = core_pb2.Task(
        pid=pid, ppid=stat.ppid, pgid=stat.pgid, sid=stat.sid, comm=stat.comm,
        cwd=proc.readlink(pid, "cwd"), umask=int(status.get("Umask", "022"), 8),
        personality=proc.read_personality(pid), pdeathsig=state.pdeathsig, dumpable=state.dumpable, stopped=state.stopped,
        exit_signal=stat.exit_signal, has_tty=stat.tty_nr != 0,
        membarrier=state.membarrier, child_subreaper=state.child_subreaper,
    )
    if task.cwd.endswith(proc.DELETED_SUFFIX):
        st = os.stat(f"/proc/{pid}/cwd")
        task.cwd_removed.dev, task.cwd_removed.ino = st.st_dev, st.st_ino
        task.cwd_removed.mode, task.cwd_removed.uid, task.cwd_removed.gid = st.st_mode, st.st_uid, st.st_gid
    task.oom_score_adj = proc.read_oom_score_adj(pid)
    loginuid = proc.read_loginuid(pid)
    if loginuid is not None:
        task.loginuid = loginuid
    if state.stopped:
        task.stop_signal = state.stop_signal
        task.stop_collected = state.stop_collected
    _refuse_unsupported(pid, status)
    _fill_creds(task.creds, status)
    task.creds.securebits = state.securebits
    for which, value_us, interval_us in state.itimers:
        task.itimers.add(which=which, value_us=value_us, interval_us=interval_us)
    for resource, (cur, hard) in enumerate(proc.read_limits(pid)):
        task.rlimits.add(resource=resource, cur=cur, max=hard)
    for signo, handler, flags, restorer, mask in state.sigactions:
        task.sigactions.add(signo=signo, handler=handler, flags=flags, restorer=restorer,
                            mask=mask & 0xFFFFFFFFFFFFFFFF, mask_hi=mask >> 64)
    for raw in state.shared_pending:
        task.shared_pending.add(signo=int.from_bytes(raw[:4], arch.BYTEORDER), raw=raw)
    for thread in state.threads:
        _thread_message(task.threads.add(), pid, thread, arch)
    _posix_timer_messages(task, pid, state)
    _seccomp_messages(task, pid, state)
    return task


_NAMESPACES = ("ipc", "mnt", "net", "pid", "user", "uts", "cgroup", "time")


def _refuse_unsupported(pid, status):
    """Process state pyckpt would otherwise silently lose."""
    what = f"process {pid} ({status.get('Name', '?')})"
    for ns in _NAMESPACES:
        try:
            theirs, ours = os.readlink(f"/proc/{pid}/ns/{ns}"), os.readlink(f"/proc/self/ns/{ns}")
        except FileNotFoundError:
            continue
        if theirs != ours:
            raise UnsupportedState(f"{what} is in another {ns} namespace ({theirs}, pyckpt is in {ours}); "
                                   "namespaces are not supported yet")


CPUCLOCK_PERTHREAD = 4
CPUCLOCK_FD = 3


def _posix_timer_messages(task, pid, state):
    """Every timer as it is; refused: CPU clocks that cannot be named again after restore."""
    tids = {th.tid for th in state.threads}
    for t in state.posix_timers:
        where = f"process {pid}: POSIX timer {t.id} (clock {t.clock})"
        if t.clock < 0:
            clock_pid = ~(t.clock >> 3)
            if t.clock & 3 == CPUCLOCK_FD:
                raise UnsupportedState(f"{where} runs on a dynamic (fd) clock; not supported")
            if t.clock & CPUCLOCK_PERTHREAD and clock_pid == 0 and len(tids) > 1:
                # The clock is the CPU time of the thread that created the timer,
                # which neither /proc nor timer_gettime tells.
                raise UnsupportedState(f"{where} measures the CPU time of the thread that created it "
                                       "(CLOCK_THREAD_CPUTIME_ID) in a multi-threaded process; not supported")
            if clock_pid and clock_pid != pid and clock_pid not in tids:
                raise UnsupportedState(f"{where} measures the CPU time of {clock_pid}, outside the process; "
                                       "not supported")
        task.posix_timers.add(id=t.id, clock=t.clock, notify=t.notify, signo=t.signo, sigval=t.sigval,
                              target_tid=t.target if t.notify & proc.SIGEV_THREAD_ID else 0,
                              value_ns=t.value_ns, interval_ns=t.interval_ns, overrun=t.overrun)


BPF_RET_K = 0x06          # BPF_RET | BPF_K


def _seccomp_messages(task, pid, state):
    """The filter tree: a filter shared by threads (TSYNC, inherited) is stored once.

    Two chains with the same programs (and flags) up to a filter are taken as
    sharing it: nothing a program can observe tells them apart."""
    nodes = {}
    for thread_msg, thread in zip(task.threads, state.threads):
        thread_msg.seccomp_mode = thread.seccomp_mode
        parent = 0
        for depth, flt in enumerate(thread.seccomp_filters):
            _refuse_user_notif(pid, thread.tid, flt.program)
            key = tuple(thread.seccomp_filters[:depth + 1])
            if key not in nodes:
                task.seccomp_filters.add(program=flt.program, flags=linux.SECCOMP_FILTER_FLAG_LOG if flt.log else 0,
                                         parent=parent)
                nodes[key] = len(task.seccomp_filters)
            parent = nodes[key]
        thread_msg.seccomp_filter = parent


def _refuse_user_notif(pid, tid, program):
    """A filter that hands syscalls to a user-space supervisor (a listener fd elsewhere) cannot
    be rebuilt: the supervisor's side of it is not in the image."""
    for offset in range(0, len(program), linux.SOCK_FILTER_SIZE):
        code, _jt, _jf, k = struct.unpack_from("=HBBI", program, offset)
        if code == BPF_RET_K and k & linux.SECCOMP_RET_ACTION_FULL == linux.SECCOMP_RET_USER_NOTIF:
            raise UnsupportedState(f"process {pid} thread {tid}: a seccomp filter returns SECCOMP_RET_USER_NOTIF "
                                   "(syscalls handed to a supervisor's listener); not supported")


def _sched_message(msg, pid, tid):
    msg.policy = os.sched_getscheduler(tid)
    msg.priority = os.sched_getparam(tid).sched_priority
    msg.nice = os.getpriority(os.PRIO_PROCESS, tid)
    msg.cpus.extend(sorted(os.sched_getaffinity(tid)))
    # per thread (prctl(PR_SET_TIMERSLACK) sets the caller's own); /proc/TID works for any thread
    with open(f"/proc/{tid}/timerslack_ns") as f:
        msg.timerslack_ns = int(f.read())
    msg.ioprio = linux.syscall("ioprio_get", linux.IOPRIO_WHO_PROCESS, tid)
    attr = linux.sched_getattr(tid)
    msg.util_min, msg.util_max = attr["util_min"], attr["util_max"]
    if attr["policy"] == linux.SCHED_DEADLINE:
        msg.dl_runtime, msg.dl_deadline, msg.dl_period = attr["runtime"], attr["deadline"], attr["period"]


def _fill_creds(creds, status):
    uids = [int(x) for x in status["Uid"].split()]
    gids = [int(x) for x in status["Gid"].split()]
    creds.uid, creds.euid, creds.suid, creds.fsuid = uids
    creds.gid, creds.egid, creds.sgid, creds.fsgid = gids
    creds.groups.extend(int(g) for g in status.get("Groups", "").split())
    creds.cap_inh = int(status["CapInh"], 16)
    creds.cap_prm = int(status["CapPrm"], 16)
    creds.cap_eff = int(status["CapEff"], 16)
    creds.cap_bnd = int(status["CapBnd"], 16)
    creds.cap_amb = int(status.get("CapAmb", "0"), 16)
    creds.no_new_privs = status.get("NoNewPrivs", "0") == "1"


def _thread_message(msg, pid, thread, arch):
    msg.tid = thread.tid
    msg.comm = proc.read_comm(pid, thread.tid)
    msg.sigmask = thread.sigmask & 0xFFFFFFFFFFFFFFFF
    msg.sigmask_hi = thread.sigmask >> 64
    gp = archmod.unpack_gpregs(arch, thread.regsets["prstatus"])
    gp_msg = getattr(msg.regs, arch.NAME)
    for name, value in gp.items():
        if not name.startswith("pad"):
            setattr(gp_msg, name, value)
    for note_type, name in arch.EXTRA_REGSETS:
        if name in thread.regsets:
            msg.regs.extra.add(note_type=note_type, name=name, data=thread.regsets[name])
    for raw in thread.pending:
        msg.pending.add(signo=int.from_bytes(raw[:4], arch.BYTEORDER), raw=raw)
    if thread.rseq:
        msg.rseq.pointer, msg.rseq.size, msg.rseq.signature = thread.rseq
    msg.altstack.sp, msg.altstack.flags, msg.altstack.size = thread.altstack
    msg.clear_child_tid = thread.clear_child_tid
    msg.robust_list, msg.robust_list_len = thread.robust_list
    _sched_message(msg.sched, pid, thread.tid)


# -- memory -------------------------------------------------------------------


def _mm_message(pid, vmas, state):
    stat = proc.read_stat(pid)
    mm = mm_pb2.Mm(
        start_code=stat.start_code, end_code=stat.end_code, start_data=stat.start_data,
        end_data=stat.end_data, start_brk=stat.start_brk, brk=state.brk,
        start_stack=stat.start_stack, arg_start=stat.arg_start, arg_end=stat.arg_end,
        env_start=stat.env_start, env_end=stat.env_end, auxv=proc.read_auxv(pid),
        vdso=vdso.identity(pid), thp_disable=state.thp_disable, ksm_merge_any=proc.read_ksm_merge_any(pid),
        mlock_future=state.mlock_future,
    )
    exe = proc.readlink(pid, "exe")
    try:
        regular_files.file_ref(mm.exe, exe, os.stat(f"/proc/{pid}/exe"))
    except OSError as err:
        raise UnsupportedState(f"process {pid}: cannot stat its executable {exe}: {err.strerror}") from err
    guards = pagemap.guard_runs(pid, [(v.start, v.end) for v in vmas if v.path not in vdso.KERNEL_MAPPINGS])
    for vma in vmas:
        msg = mm.vmas.add()
        where = f"process {pid} mapping {vma.start:#x}-{vma.end:#x} {vma.perms} {vma.path or '(anonymous)'}"
        _vma_message(msg, pid, vma, where)
        if msg.kind not in (mm_pb2.Vma.VDSO, mm_pb2.Vma.VSYSCALL):
            _vma_flags(msg, vma, where, [g for g in guards if vma.start <= g[0] < vma.end])
    return mm


# Why a VmFlags mnemonic restore cannot give back (restore.vmflags has those it can).
_VMFLAGS_REFUSED = {
    "um": "is registered with userfaultfd (missing pages)",
    "uw": "is registered with userfaultfd (write-protect)",
    "ui": "is registered with userfaultfd (minor faults)",
    "sl": "is sealed (mseal)",
    "ss": "is a shadow stack",
    "sf": "is a synchronous-fault DAX mapping (MAP_SYNC)",
    "ht": "is a hugetlb mapping",
    "mt": "has memory tagging on (PROT_MTE)",
    "pf": "is a device (PFN) mapping", "io": "is a device (I/O) mapping", "mm": "is a device (mixed) mapping",
    "de": "cannot be expanded (a driver's mapping)", "ar": "has an architecture-specific flag",
}


def _vma_flags(msg, vma, where, guards):
    """The mapping's VmFlags and guard regions, or a refusal naming the flag restore cannot set."""
    for flag in sorted(vma.vmflags):
        if flag in restore_vmflags.RESTORED and not (flag == restore_vmflags.BTI and not archmod.host().PROT_BTI):
            continue
        why = _VMFLAGS_REFUSED.get(flag, "has a flag pyckpt does not know")
        raise UnsupportedState(f"{where} {why} (VmFlags \"{flag}\"); not supported")
    if "dp" in vma.vmflags and msg.kind != mm_pb2.Vma.ANON:
        raise UnsupportedState(f"{where} is MAP_DROPPABLE but not anonymous memory; not supported")
    if "nr" in vma.vmflags and msg.kind not in (mm_pb2.Vma.ANON, mm_pb2.Vma.FILE_PRIVATE, mm_pb2.Vma.FILE_SHARED):
        raise UnsupportedState(f"{where} is shared memory mapped with MAP_NORESERVE (VmFlags \"nr\"); not supported")
    msg.vmflags.extend(sorted(vma.vmflags))
    for vaddr, nr_pages in guards:
        msg.guards.add(vaddr=vaddr, nr_pages=nr_pages)


def _vma_message(msg, pid, vma, where):
    msg.start, msg.end, msg.prot = vma.start, vma.end, vma.prot
    msg.growsdown = "gd" in vma.vmflags
    msg.may_write = "mw" in vma.vmflags
    msg.may_exec = "me" in vma.vmflags
    if vma.path in vdso.VDSO_NAMES:
        msg.kind, msg.name = mm_pb2.Vma.VDSO, vma.path
        return
    if vma.path == "[vsyscall]":
        msg.kind, msg.name = mm_pb2.Vma.VSYSCALL, vma.path
        return
    if vma.vmflags & {"io", "pf"}:
        raise UnsupportedState(f"{where} is a device (I/O or PFN) mapping; not supported")
    if vma.shared and vma.path == shmem.SHARED_ANON_PATH:
        msg.kind, msg.shmem_id, msg.pgoff = mm_pb2.Vma.SHMEM, vma.inode, vma.pgoff
        return
    anonymous = vma.inode == 0 and (vma.path in ANON_NAMES or vma.path.startswith("[anon:"))
    if anonymous:
        if vma.shared:
            raise UnsupportedState(f"{where} is shared anonymous memory; not supported yet")
        msg.kind = mm_pb2.Vma.ANON
        msg.name = vma.path
        return
    if vma.path.startswith("[") or not vma.path.startswith("/"):
        raise UnsupportedState(f"{where}: unsupported special mapping")
    if memfd.is_memfd(vma.path) or sysvipc.is_shm_mapping(vma):
        if "ht" in vma.vmflags:
            raise UnsupportedState(f"{where} is huge-page (hugetlbfs) shared memory; not supported")
        if memfd.is_memfd(vma.path):
            msg.kind = mm_pb2.Vma.MEMFD_SHARED if vma.shared else mm_pb2.Vma.MEMFD_PRIVATE
        else:
            msg.kind = mm_pb2.Vma.SYSV_SHM
        msg.shmem_id, msg.pgoff = vma.inode, vma.pgoff
        return
    try:
        st = os.stat(f"/proc/{pid}/map_files/{vma.start:x}-{vma.end:x}")
    except OSError as err:
        raise UnsupportedState(f"{where}: cannot stat the mapped file: {err.strerror}") from err
    path = vma.path
    if vma.path == AIO_RING_PATH:
        raise UnsupportedState(f"{where} is an AIO ring (io_setup); not supported yet: user space cannot tell "
                               "whether requests are in flight on it")
    if vma.deleted:
        # made again from its saved contents (FileTable.add_mappings names its description)
        if not ghost.is_deleted(vma.path, st) or not S_ISREG(st.st_mode):
            raise UnsupportedState(f"{where} maps a file whose name was removed but that has another link "
                                   f"({st.st_nlink}) or is not a regular file; not supported")
        path = vma.path[: -len(ghost.DELETED)]
    regular_files.file_ref(msg.file, path, st)
    msg.pgoff = vma.pgoff
    msg.kind = mm_pb2.Vma.FILE_SHARED if vma.shared else mm_pb2.Vma.FILE_PRIVATE
