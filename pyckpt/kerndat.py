"""What this machine's kernel offers pyckpt, probed once; `pyckpt check` prints it."""

import ctypes
import errno
import fcntl
import os
import signal
import sys
from dataclasses import dataclass, field

from . import arch as archmod
from . import linux, pagemap
from .errors import PyckptError
from .sources import CRAK_DEVICE


@dataclass
class Feature:
    name: str
    ok: bool
    detail: str = ""
    required: bool = False


@dataclass
class KernDat:
    features: list = field(default_factory=list)

    def add(self, name, ok, detail="", required=False):
        self.features.append(Feature(name, ok, detail, required))

    @property
    def usable(self):
        return all(f.ok for f in self.features if f.required)

    def get(self, name):
        return next(f for f in self.features if f.name == name)


CAP_SYS_PTRACE = 19
CAP_SYS_ADMIN = 21
CAP_CHECKPOINT_RESTORE = 40


def probe():
    kd = KernDat()
    try:
        arch = archmod.host()
        kd.add("arch", True, arch.NAME, required=True)
    except PyckptError as err:
        kd.add("arch", False, str(err), required=True)
        return kd
    kd.add("kernel", True, os.uname().release)
    caps = _effective_caps()
    has_caps = bool(caps >> CAP_SYS_PTRACE & 1) and bool(caps >> CAP_CHECKPOINT_RESTORE & 1 or caps >> CAP_SYS_ADMIN & 1)
    kd.add("privileges", has_caps, "root" if os.geteuid() == 0 else f"uid {os.geteuid()}; needs CAP_SYS_PTRACE and "
           "CAP_CHECKPOINT_RESTORE", required=True)
    kd.add(*_probe_ptrace(arch), required=True)
    kd.add(*_probe_set_tid(), required=True)
    kd.add("pagemap_scan", pagemap.has_pagemap_scan(), "PAGEMAP_SCAN ioctl (Linux 6.7+); else /proc/PID/pagemap")
    kd.add(*_probe_soft_dirty())
    kd.add(*_probe_uffd_wp())
    kd.add(*_probe_crak())
    from . import tracking
    method, why = tracking.choose("auto", "ptrace")
    if method is None:
        kd.add("track_mem", False, f"--track-mem refused ({why}); incremental dumps compare page contents")
    else:
        kmod = tracking.choose("auto", "kmod")[0]
        kd.add("track_mem", True, f"written pages tracked with {method} ({why}); kmod backend: {kmod or 'compare'}")
    from . import netblock
    from .files import tcprepair
    kd.add("tcp_repair", *tcprepair.available())
    kd.add("nft", *netblock.available())
    return kd


def probe_soft_dirty_bits():
    return _probe_soft_dirty()[1:]


def probe_uffd_wp_async():
    """(ok, why): userfaultfd write-protect in async mode and PAGEMAP_SCAN (both Linux 6.7+)."""
    _, wp, detail = _probe_uffd_wp()
    if not wp or "async" not in detail:
        return False, f"no userfaultfd async write-protect ({detail})"
    if not pagemap.has_pagemap_scan():
        return False, "no PAGEMAP_SCAN"
    return True, "userfaultfd async write-protect"


def _effective_caps():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("CapEff:"):
                return int(line.split()[1], 16)
    return 0


def _probe_ptrace(arch):
    """Seize a child, stop it, read its registers and rseq configuration, let it go."""
    from .ptrace import Tracee
    child = os.fork()
    if child == 0:
        try:
            signal.pause()
        finally:
            os._exit(0)
    try:
        tracee = Tracee(child, arch)
        tracee.seize()
        tracee.stop()
        tracee.get_regs()
        try:
            linux.get_rseq_configuration(child)
            rseq = "rseq config readable"
        except OSError:
            rseq = "no PTRACE_GET_RSEQ_CONFIGURATION"
        tracee.detach()
        return "ptrace", True, f"seize/interrupt/regsets work; {rseq}"
    except (OSError, PyckptError) as err:
        return "ptrace", False, str(err)
    finally:
        os.kill(child, signal.SIGKILL)
        os.waitpid(child, 0)


def _probe_set_tid():
    # Asking for our own PID: EEXIST proves set_tid works and we may use it,
    # without creating a process.
    try:
        pid = linux.clone3_fork(os.getpid(), signal.SIGCHLD)
    except OSError as err:
        if err.errno == errno.EEXIST:
            return "clone3_set_tid", True, "clone3 with set_tid (restore with the same PID)"
        return "clone3_set_tid", False, f"clone3 set_tid: {err.strerror}"
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    return "clone3_set_tid", False, "clone3 ignored set_tid"


def _probe_soft_dirty():
    page = pagemap.PAGE_SIZE
    buf = ctypes.create_string_buffer(2 * page)
    addr = (ctypes.addressof(buf) + page - 1) & ~(page - 1)
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("4")
        ctypes.memset(addr, 1, 1)
        fd = os.open("/proc/self/pagemap", os.O_RDONLY)
        try:
            entry = int.from_bytes(os.pread(fd, 8, addr // page * 8), sys.byteorder)
        finally:
            os.close(fd)
    except OSError as err:
        return "soft_dirty", False, str(err)
    ok = bool(entry >> 55 & 1)
    return "soft_dirty", ok, "soft-dirty page tracking" if ok else "no soft-dirty bits (CONFIG_MEM_SOFT_DIRTY off)"


class _UffdioApi(ctypes.Structure):
    _fields_ = (("api", ctypes.c_uint64), ("features", ctypes.c_uint64), ("ioctls", ctypes.c_uint64))


UFFD_FEATURE_PAGEFAULT_FLAG_WP = 1 << 0
UFFD_FEATURE_WP_ASYNC = 1 << 15


def _probe_uffd_wp():
    try:
        fd = linux.syscall("userfaultfd", os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError as err:
        return "uffd_wp", False, f"userfaultfd: {err.strerror}"
    try:
        api = _UffdioApi(0xAA, 0, 0)
        fcntl.ioctl(fd, archmod.ioc("rw", 0xAA, 0x3F, ctypes.sizeof(api)), api)
        wp = bool(api.features & UFFD_FEATURE_PAGEFAULT_FLAG_WP)
        asyn = bool(api.features & UFFD_FEATURE_WP_ASYNC)
        return "uffd_wp", wp, f"userfaultfd write-protect{' (async: yes)' if asyn else ''}"
    except OSError as err:
        return "uffd_wp", False, f"UFFDIO_API: {err.strerror}"
    finally:
        os.close(fd)


def _probe_crak():
    if not os.path.exists(CRAK_DEVICE):
        return "crak", False, f"{CRAK_DEVICE} absent (load crak.ko for the kmod backend)"
    try:
        from .sources import kmod
        version = kmod.probe()
    except ImportError:
        return "crak", False, f"{CRAK_DEVICE} present but this pyckpt has no kmod source"
    except (OSError, PyckptError) as err:
        return "crak", False, f"{CRAK_DEVICE}: {err}"
    return "crak", True, f"{CRAK_DEVICE} ABI version {version}"
