"""seccomp of a restored process: filter stacks per thread (chains every thread
shares installed once, synchronised with TSYNC), strict mode."""

import logging
import os
import struct

from .. import linux
from ..errors import ImageError, RestoreConflict

log = logging.getLogger(__name__)


def check_filters(task, where):
    for i, flt in enumerate(task.seccomp_filters, 1):
        if flt.parent >= i or len(flt.program) % linux.SOCK_FILTER_SIZE or not flt.program:
            raise ImageError(f"{where}: seccomp filter {i} is malformed (parent {flt.parent}, "
                             f"{len(flt.program)} bytes)")
    for th in task.threads:
        if th.seccomp_filter > len(task.seccomp_filters):
            raise ImageError(f"{where}: thread {th.tid} names seccomp filter {th.seccomp_filter}, "
                             f"of {len(task.seccomp_filters)}")


def restore_seccomp(pr, threads):
    """Filters oldest first; the ones every thread shares once, synchronised (TSYNC),
    the rest per thread. Strict mode last in its thread."""
    task = pr.task
    if not task.seccomp_filters and not any(th.seccomp_mode for th, _t, _i in threads):
        return
    chains = {th.tid: chain_of(task, th.seccomp_filter) for th, _t, _i in threads}
    shared = common_prefix(list(chains.values()))
    installed = {}
    leader_inj = threads[0][2]
    for node in shared:
        _install_filter(pr, leader_inj, node, tsync=len(threads) > 1)
    for thread, _tracee, inj in threads:
        for node in chains[thread.tid][len(shared):]:
            _install_filter(pr, inj, node, tsync=False)
        installed[thread.tid] = len(chains[thread.tid])
        if thread.seccomp_mode == linux.SECCOMP_MODE_STRICT:
            inj.call("prctl", linux.PR_SET_SECCOMP, linux.SECCOMP_MODE_STRICT, 0, 0, 0, detail=f"thread {thread.tid}")
    log.debug("process %d: seccomp filters installed %s (%d shared by all threads)", pr.pid, installed,
              len(shared))

def _install_filter(pr, inj, node, tsync):
    flt = pr.task.seccomp_filters[node - 1]
    scratch = pr.scratch
    scratch.reset()
    program = scratch.put(flt.program)
    fprog = scratch.put(struct.pack("=HxxxxxxQ", len(flt.program) // linux.SOCK_FILTER_SIZE, program))
    flags = flt.flags | (linux.SECCOMP_FILTER_FLAG_TSYNC if tsync else 0)
    result = inj.raw("seccomp", linux.SECCOMP_SET_MODE_FILTER, flags, fprog)
    if result != 0:
        # With TSYNC a positive result is the tid of a thread that could not be synchronised.
        why = os.strerror(-result) if result < 0 else f"thread {result} could not be synchronised"
        raise RestoreConflict(f"cannot install seccomp filter {node} in thread {inj.tracee.tid} of "
                              f"process {pr.pid}: {why}")


def chain_of(task, node):
    """Filter indexes (1-based) from the oldest to `node`."""
    chain = []
    while node:
        chain.append(node)
        node = task.seccomp_filters[node - 1].parent
    return chain[::-1]


def common_prefix(chains):
    prefix = []
    for nodes in zip(*chains):
        if any(n != nodes[0] for n in nodes):
            break
        prefix.append(nodes[0])
    return prefix
