"""POSIX timers of a restored process, with their old ids."""

import logging
import os
import struct

from .. import linux
from ..errors import RestoreConflict

log = logging.getLogger(__name__)

PR_TIMER_CREATE_RESTORE_IDS = 77   # Linux 6.15+: timer_create takes the id from *created_timer_id
SIGEVENT_SIZE = 64
# Without PR_TIMER_CREATE_RESTORE_IDS the kernel hands out timer ids in
# sequence per process: an id is reached by creating and deleting timers.
MAX_TIMER_ID_STEPS = 1 << 16


def restore_posix_timers(pr):
    """Every timer with its old id, clock, notification, time left (relative) and interval.

    After the threads exist (a signal may target one of them). The ids:
    exactly with PR_TIMER_CREATE_RESTORE_IDS where the kernel has it,
    else by stepping the per-process id sequence (create, delete) up to each.
    """
    timers = sorted(pr.task.posix_timers, key=lambda t: t.id)
    if not timers:
        return
    inj, scratch = pr.inj, pr.scratch
    scratch.reset()
    id_slot, sigev, spec = scratch.alloc(8), scratch.alloc(SIGEVENT_SIZE), scratch.alloc(32)
    exact = inj.raw("prctl", PR_TIMER_CREATE_RESTORE_IDS, 1, 0, 0, 0) == 0
    try:
        for timer in timers:
            what = f"POSIX timer {timer.id} of process {pr.pid}"
            event = struct.pack("=QiiI", timer.sigval, timer.signo, timer.notify, timer.target_tid)
            linux.write_memory(pr.pid, sigev, event.ljust(SIGEVENT_SIZE, b"\0"))
            if exact:
                linux.write_memory(pr.pid, id_slot, struct.pack("=i", timer.id))
                result = inj.raw("timer_create", timer.clock, sigev, id_slot)
                if result < 0:
                    raise RestoreConflict(f"cannot create {what}: {os.strerror(-result)}")
            else:
                _create_timer_in_sequence(pr, timer, sigev, id_slot, what)
            if timer.value_ns:
                linux.write_memory(pr.pid, spec, struct.pack(
                    "=qqqq", timer.interval_ns // 10**9, timer.interval_ns % 10**9,
                    timer.value_ns // 10**9, timer.value_ns % 10**9))
                inj.call("timer_settime", timer.id, 0, spec, 0, detail=what)
    finally:
        if exact:
            inj.call("prctl", PR_TIMER_CREATE_RESTORE_IDS, 0, 0, 0, 0)
    log.debug("process %d: %d POSIX timer(s) restored (%s ids)", pr.pid, len(timers),
              "exact" if exact else "stepped")

def _create_timer_in_sequence(pr, timer, sigev, id_slot, what):
    inj = pr.inj
    for _ in range(MAX_TIMER_ID_STEPS):
        result = inj.raw("timer_create", timer.clock, sigev, id_slot)
        if result < 0:
            raise RestoreConflict(f"cannot create {what}: {os.strerror(-result)}")
        got = struct.unpack("=i", linux.read_memory(pr.pid, id_slot, 4))[0]
        if got == timer.id:
            return
        inj.call("timer_delete", got, detail=f"stepping to timer id {timer.id}")
        if got > timer.id:
            break
        if timer.id - got > MAX_TIMER_ID_STEPS:
            break
    raise RestoreConflict(f"cannot give {what} its id on this kernel: timer ids come in sequence here "
                          f"(no PR_TIMER_CREATE_RESTORE_IDS, Linux < 6.15) and the next one is {got}")
