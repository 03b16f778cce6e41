"""Which pages a process wrote since an image was taken (memory-change tracking).

Methods, best first; probed once, picked automatically, forceable:
  uffd-wp     a userfaultfd in write-protect async mode (Linux 6.7+): created
              inside the target by injected syscalls (the context belongs to
              the mm of its creator), parked at a high fd, registered and
              write-protected from here through pidfd_getfd. A write clears
              the page's uffd-wp bit; PAGEMAP_SCAN returns the runs of
              PAGE_IS_WRITTEN pages. Needs the ptrace source (only it
              injects syscalls).
  soft-dirty  /proc/PID/clear_refs "4" while the tree is frozen; a write sets
              pagemap bit 55. Works with either source (the kmod backend's
              tree is frozen while pyckpt clears them from user space).
  compare     no tracking: each page is compared with the parent image's copy.

Either way a page counts as changed when it is present and not an exclusive
page of the process (the shared zero page a read fault maps after
MADV_DONTNEED, or a page shared since fork: neither clears the tracking bit).
New mappings are unregistered (uffd-wp) or VM_SOFTDIRTY: always changed.

Whether a process's tracking bits are those started by a given image is
recorded in a small registry under /run (tmpfs: gone with a reboot, like the
bits): one file per process (pid + start time) naming the image and its
manifest checksum. It is removed before tracking is restarted and written
only once the new image is whole, so a failed or different dump in between
makes the next incremental dump compare contents instead of trusting stale
bits.
"""

import array
import ctypes
import dataclasses
import fcntl
import json
import logging
import mmap
import os
import struct
import sys

from . import linux, pagemap, proc
from .errors import PyckptError, UnsupportedState
from .ranges import merge, subtract

log = logging.getLogger(__name__)

UFFD_WP = "uffd-wp"
SOFT_DIRTY = "soft-dirty"
COMPARE = "compare"
METHODS = (UFFD_WP, SOFT_DIRTY, COMPARE)

REGISTRY = os.environ.get("PYCKPT_TRACK_DIR", "/run/pyckpt/track")

PM_SOFT_DIRTY = 1 << 55

# uapi/linux/userfaultfd.h
UFFD_USER_MODE_ONLY = 1
UFFD_FEATURE_WP_ASYNC = 1 << 15
UFFDIO_REGISTER_MODE_WP = 1 << 1
UFFDIO_WRITEPROTECT_MODE_WP = 1 << 0
UFFDIO_API = 0xC018AA3F
UFFDIO_REGISTER = 0xC020AA00
UFFDIO_WRITEPROTECT = 0xC018AA06
F_DUPFD_CLOEXEC = 1030
UFFD_LINK = "anon_inode:[userfaultfd]"
# Where the tracking userfaultfd is parked in the target: high, out of the way
# of the numbers the program gets from open(), within every usual fd limit.
PARKED_FD = 1000

_probed = None


def probe():
    """{method: (available, why)} for uffd-wp and soft-dirty, probed once."""
    global _probed
    if _probed is None:
        from . import kerndat
        _probed = {UFFD_WP: kerndat.probe_uffd_wp_async(), SOFT_DIRTY: kerndat.probe_soft_dirty_bits()}
    return _probed


def choose(requested, backend):
    """(method, why) for a dump: `requested` is auto, uffd-wp, soft-dirty or compare."""
    found = probe()
    if requested == COMPARE:
        return COMPARE, "page contents compared with the parent (--track-method compare)"
    order = (UFFD_WP, SOFT_DIRTY) if requested == "auto" else (requested,)
    reasons = []
    for method in order:
        ok, why = found[method]
        if ok and method == UFFD_WP and backend != "ptrace":
            ok, why = False, "needs the ptrace source (syscalls injected into the target)"
        if ok:
            return method, why
        reasons.append(f"{method}: {why}")
    return None, "; ".join(reasons)


# -- the registry -----------------------------------------------------------


def _identity(pid):
    return f"{pid}-{start_time(pid)}"


def start_time(pid):
    """/proc/PID/stat field 22: with the pid, names one process for the uptime of the machine."""
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rpartition(")")[2].split()[19])


def recorded(pid):
    """The registry record of `pid` ({"image", "manifest", "method"}) or None."""
    try:
        with open(os.path.join(REGISTRY, _identity(pid))) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def forget(pid):
    try:
        os.unlink(os.path.join(REGISTRY, _identity(pid)))
    except OSError:
        pass


def remember(pid, image_dir, manifest_sha, method):
    os.makedirs(REGISTRY, mode=0o700, exist_ok=True)
    _prune()
    path = os.path.join(REGISTRY, _identity(pid))
    with open(path + ".new", "w") as f:
        json.dump({"image": os.path.realpath(image_dir), "manifest": manifest_sha.hex(), "method": method}, f)
    os.replace(path + ".new", path)


def _prune():
    """Drop the records of processes that are gone."""
    for name in os.listdir(REGISTRY):
        pid, _, started = name.partition("-")
        try:
            alive = started.isdigit() and start_time(int(pid)) == int(started)
        except (OSError, ValueError):
            alive = False
        if not alive:
            try:
                os.unlink(os.path.join(REGISTRY, name))
            except OSError:
                pass


def usable_since(pid, parent_dir, parent_manifest_sha):
    """The method whose bits in `pid` count from the parent image, or None (compare contents)."""
    rec = recorded(pid)
    if not rec or rec.get("image") != os.path.realpath(parent_dir) or rec.get("manifest") != parent_manifest_sha.hex():
        return None
    if rec["method"] == UFFD_WP and not parked(pid):
        return None
    return rec["method"]


def parked(pid):
    """PARKED_FD if `pid` holds pyckpt's tracking userfaultfd there (its own or inherited
    through fork: a userfaultfd with async write-protect at that number), else 0."""
    try:
        if proc.readlink(pid, f"fd/{PARKED_FD}") != UFFD_LINK:
            return 0
        info = proc.read_fdinfo(pid, PARKED_FD)
    except (OSError, PyckptError):
        return 0
    api = next((line for line in info.get("extra", []) if line.startswith("API:")), "")
    parts = api.split(":")
    try:
        return PARKED_FD if len(parts) >= 3 and int(parts[2], 16) & UFFD_FEATURE_WP_ASYNC else 0
    except ValueError:
        return 0


# -- what changed -------------------------------------------------------------


def changed_runs(pid, ranges, method, vmas):
    """Sorted (start, end) ranges within `ranges` whose pages changed since tracking started."""
    out = pagemap.zero_page_runs(pid, ranges)
    if method == UFFD_WP:
        # PAGEMAP_SCAN gives the written runs whole; mappings made or moved since are not
        # registered (their pages show as written anyway): all of them changed
        out += pagemap.written_runs(pid, ranges)
        out += subtract(list(ranges), merge([(v.start, v.end) for v in vmas if "uw" in v.vmflags]))
        return merge(out)
    zero = _zero_pfn()
    fd = os.open(f"/proc/{pid}/pagemap", os.O_RDONLY)
    try:
        for start, end in ranges:
            entries = array.array("Q")
            entries.frombytes(os.pread(fd, (end - start) // pagemap.PAGE_SIZE * 8,
                                       start // pagemap.PAGE_SIZE * 8))
            for index, entry in enumerate(entries):
                if not entry & (pagemap.PM_PRESENT | pagemap.PM_SWAP):
                    continue
                if entry & PM_SOFT_DIRTY or _maybe_zero_page(entry, zero):
                    _append(out, start + index * pagemap.PAGE_SIZE)
        return merge(out)
    finally:
        os.close(fd)


def _maybe_zero_page(entry, zero_pfn):
    """The shared zero page (a read fault after MADV_DONTNEED maps it without setting any tracking
    bit): present, not the process's own page, and its frame the zero page's when frames show."""
    if not entry & pagemap.PM_PRESENT or entry & pagemap.PM_MMAP_EXCLUSIVE:
        return False
    return zero_pfn is None or entry & pagemap.PM_FRAME_MASK == zero_pfn


_zero = []


def _zero_pfn():
    """The zero page's frame number (None when the kernel hides frame numbers from us)."""
    if not _zero:
        buf = mmap.mmap(-1, pagemap.PAGE_SIZE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        buf[0]      # a read fault maps the zero page
        view = ctypes.c_char.from_buffer(buf)
        addr = ctypes.addressof(view)
        fd = os.open("/proc/self/pagemap", os.O_RDONLY)
        try:
            entry = int.from_bytes(os.pread(fd, 8, addr // pagemap.PAGE_SIZE * 8), sys.byteorder)
        finally:
            os.close(fd)
        del view
        buf.close()
        _zero.append(entry & pagemap.PM_FRAME_MASK or None)
    return _zero[0]


def _append(out, vaddr):
    if out and out[-1][1] == vaddr:
        out[-1] = (out[-1][0], vaddr + pagemap.PAGE_SIZE)
    else:
        out.append((vaddr, vaddr + pagemap.PAGE_SIZE))


# -- starting and stopping --------------------------------------------------


def check_closable(source, pids):
    """A tree left running must lose pyckpt's userfaultfd: refuse, before anything is written,
    a source that cannot make the target close it."""
    held = [p for p in pids if parked(p)]
    if held and not source.injects:
        raise UnsupportedState(f"process {held[0]} holds pyckpt's tracking userfaultfd (fd {PARKED_FD}, from a "
                               f"ptrace pre-dump) which the {source.name} source cannot close: dump it with "
                               "the ptrace backend, or without -R")


def stop_all(source, pids):
    """Forget every process's tracking; close pyckpt's userfaultfd wherever it is held (a
    forked child holds its parent's: the registrations go only with the last one)."""
    for pid in pids:
        forget(pid)
        if parked(pid):
            source.run_in_target(pid, lambda inj: inj.call("close", PARKED_FD, detail="the tracking userfaultfd"))


def start(source, pid, method, private_ranges):
    """Start tracking in frozen `pid` (after stop_all) over its private-data mappings."""
    if method == SOFT_DIRTY:
        try:
            with open(f"/proc/{pid}/clear_refs", "w") as f:
                f.write("4")
        except OSError as err:
            raise PyckptError(f"process {pid}: cannot clear its soft-dirty bits: {err.strerror}") from err
        return 0
    return _start_uffd(source, pid, private_ranges)


def _start_uffd(source, pid, private_ranges):
    def create(inj):
        fd = inj.call("userfaultfd", os.O_CLOEXEC | os.O_NONBLOCK | UFFD_USER_MODE_ONLY, detail="tracking")
        try:
            return inj.call("fcntl", fd, F_DUPFD_CLOEXEC, PARKED_FD, detail="parking the tracking userfaultfd")
        finally:
            inj.call("close", fd)
    fd = source.run_in_target(pid, create)
    try:
        if fd != PARKED_FD:
            raise PyckptError(f"process {pid}: fd {PARKED_FD} is in use; cannot park the tracking userfaultfd")
        local = linux.pidfd_getfd(pid, fd)
        try:
            fcntl.ioctl(local, UFFDIO_API, bytearray(struct.pack("=QQQ", 0xAA, UFFD_FEATURE_WP_ASYNC, 0)))
            for start, end in private_ranges:
                try:
                    fcntl.ioctl(local, UFFDIO_REGISTER, bytearray(struct.pack(
                        "=QQQQ", start, end - start, UFFDIO_REGISTER_MODE_WP, 0)))
                except OSError as err:
                    # left unregistered: its pages always count as changed
                    log.debug("process %d: %#x-%#x not tracked: %s", pid, start, end, err.strerror)
                    continue
                fcntl.ioctl(local, UFFDIO_WRITEPROTECT, bytearray(struct.pack(
                    "=QQQ", start, end - start, UFFDIO_WRITEPROTECT_MODE_WP)))
        finally:
            os.close(local)
    except BaseException as err:
        source.run_in_target(pid, lambda inj: inj.call("close", fd))
        if isinstance(err, OSError):
            raise PyckptError(f"process {pid}: cannot set up write tracking (userfaultfd): {err.strerror}") from err
        raise
    return fd


def restart(source, pids, method, private):
    """Frozen tree going on: close pyckpt's tracking userfaultfd everywhere, then start `method`
    afresh over each process's private ranges (None: none). Returns the method started."""
    stop_all(source, pids)
    if method:
        for p in pids:
            start(source, p, method, private[p])
        log.info("tracking written pages with %s from this image on", method)
    return method


def untracked(vmas):
    """The mappings as they are without pyckpt's tracking userfaultfd (its registration, "uw")."""
    return [dataclasses.replace(v, vmflags=v.vmflags - {"uw"}) for v in vmas]


def refuse_without(requested, backend):
    """--track-mem needs a method: refuse with the reason before anything is frozen."""
    method, why = choose(requested, backend)
    if method is None or method == COMPARE:
        raise UnsupportedState(f"--track-mem: no way to track written pages here ({why})")
    return method
