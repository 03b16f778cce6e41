"""eventfd, signalfd and timerfd: anonymous-inode fds whose whole state is in fdinfo.

Restore creates each afresh inside the target: eventfd2 with its counter,
signalfd4 with its mask, timerfd_create + timerfd_settime with the time it
had left (TFD_IOC_SET_TICKS puts back expirations nobody had read yet).
"""

import os
import re
import struct
import time

from .. import linux
from ..errors import UnsupportedState
from ..images.proto import files_pb2

KINDS = {
    "anon_inode:[eventfd]": files_pb2.OpenFile.EVENTFD,
    "anon_inode:[signalfd]": files_pb2.OpenFile.SIGNALFD,
    "anon_inode:[timerfd]": files_pb2.OpenFile.TIMERFD,
}
EFD_SEMAPHORE = 1
TFD_TIMER_ABSTIME = 1
_CREATE_FLAGS = os.O_NONBLOCK | os.O_CLOEXEC


def _field(extra, key):
    for line in extra:
        name, _, value = line.partition(":")
        if name.strip() == key:
            return value.strip()
    return None


def _pair_ns(text):
    m = re.match(r"\((\d+),\s*(\d+)\)", text)
    return int(m.group(1)) * 1_000_000_000 + int(m.group(2))


def describe(entry, pid, fd, link, info, what):
    entry.kind = KINDS[link]
    extra = info.get("extra", [])
    if entry.kind == files_pb2.OpenFile.EVENTFD:
        entry.eventfd_count = int(_field(extra, "eventfd-count"), 16)
        semaphore = _field(extra, "eventfd-semaphore")
        if semaphore is None:  # kernels before 6.3 do not show it
            entry.eventfd_semaphore = _probe_semaphore(pid, fd, entry.eventfd_count, what)
        else:
            entry.eventfd_semaphore = semaphore == "1"
    elif entry.kind == files_pb2.OpenFile.SIGNALFD:
        entry.signal_mask = int(_field(extra, "sigmask"), 16)
    else:
        timer = entry.timer
        timer.clockid = int(_field(extra, "clockid"))
        timer.ticks = int(_field(extra, "ticks"))
        timer.settime_flags = int(_field(extra, "settime flags"), 8)
        timer.value_ns = _pair_ns(_field(extra, "it_value"))
        timer.interval_ns = _pair_ns(_field(extra, "it_interval"))


def _probe_semaphore(pid, fd, count, what):
    """Tell an eventfd's mode by what a read returns, then put the counter back.

    (Only where fdinfo does not say it.) The counter is first raised to at
    least 2, so that a read returns 1 in semaphore mode and the whole count
    otherwise; whatever was added is taken away again. Waiters on the eventfd
    may see a spurious wake-up; the frozen target cannot.
    """
    try:
        ours = linux.pidfd_getfd(pid, fd)
    except OSError as err:
        raise UnsupportedState(f"{what}: cannot inspect the eventfd's mode: {err.strerror}") from err
    try:
        added = max(0, 2 - count)
        if added:
            os.write(ours, struct.pack("=Q", added))
        got = struct.unpack("=Q", os.read(ours, 8))[0]
        semaphore = got == 1
        # Back to `count`: the read took `got`, we added `added`.
        if got > added:
            os.write(ours, struct.pack("=Q", got - added))
        for _ in range(added - got):
            os.read(ours, 8)  # semaphore mode: one at a time
        return semaphore
    finally:
        os.close(ours)


def open_in_target(restorer, entry):
    inj, scratch, pid = restorer.inj, restorer.scratch, restorer.pid
    flags = entry.flags & _CREATE_FLAGS
    if entry.kind == files_pb2.OpenFile.EVENTFD:
        if entry.eventfd_count >= 1 << 32:
            # eventfd2 takes an unsigned int; a larger count can only be written.
            fd = inj.call("eventfd2", 0, flags | (EFD_SEMAPHORE if entry.eventfd_semaphore else 0))
            inj.call("write", fd, scratch.put(struct.pack("=Q", entry.eventfd_count)), 8)
            return fd
        return inj.call("eventfd2", entry.eventfd_count, flags | (EFD_SEMAPHORE if entry.eventfd_semaphore else 0),
                        detail=f"eventfd of process {pid}")
    if entry.kind == files_pb2.OpenFile.SIGNALFD:
        return inj.call("signalfd4", -1, scratch.put(struct.pack("=Q", entry.signal_mask)), 8, flags,
                        detail=f"signalfd of process {pid}")
    timer = entry.timer
    fd = inj.call("timerfd_create", timer.clockid, flags, detail=f"timerfd of process {pid}")
    value = timer.value_ns
    settime = 0
    if timer.settime_flags & TFD_TIMER_ABSTIME and value:
        # An absolute timer (maybe cancel-on-set): the same deadline on this clock.
        value += time.clock_gettime_ns(timer.clockid)
        settime = timer.settime_flags
    spec = struct.pack("=qqqq", timer.interval_ns // 10**9, timer.interval_ns % 10**9, value // 10**9, value % 10**9)
    inj.call("timerfd_settime", fd, settime, scratch.put(spec), 0, detail=f"timerfd of process {pid}")
    if timer.ticks:
        inj.call("ioctl", fd, TFD_IOC_SET_TICKS, scratch.put(struct.pack("=Q", timer.ticks)),
                 detail="TFD_IOC_SET_TICKS")
    return fd


def _tfd_ioc_set_ticks():
    from .. import arch
    return arch.ioc("w", ord("T"), 0, 8)


TFD_IOC_SET_TICKS = _tfd_ioc_set_ticks()
