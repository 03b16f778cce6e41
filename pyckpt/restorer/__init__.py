"""Restore: verified images -> the same processes again, with the same PIDs.

Outline (see DESIGN.md): read and check everything first; create each
process with its old PID (clone3 set_tid) as a stub stopped under ptrace;
rebuild it by injecting syscalls from a one-page trampoline at an address
the image does not use; put registers back and park the thread in an
interrupt stop so the kernel's own signal/syscall-restart logic runs on
resume; detach. Nothing of the stub remains and no tracer stays attached.

Rooms, one per concern (like files/): image (read, check, where pages are),
tree (the phases across the whole tree), process (the stub and its life),
memory, state (process-wide state), creds, timers, seccomp, threads, jobctl
(a stopped process back in its group stop).
"""

import logging
import os
import platform
import time

from .. import netblock
from ..oplog import log_to
from ..options import RestoreOptions
from .image import Image, preflight
from .tree import TreeRestorer

log = logging.getLogger(__name__)


def restore(image_dir, options=None):
    """Restore the image; returns the root PID (detached) or its exit status (waited)."""
    options = options or RestoreOptions()
    image = Image(image_dir)
    log_path = image.path(options.log_file)
    with log_to(log_path if os.access(image.reader.dir, os.W_OK) else os.devnull):
        log.info("restoring %s (%s image from %s, kernel %s; here %s)", image_dir, image.inventory.backend,
                 image.inventory.arch, image.inventory.kernel_release, platform.release())
        try:
            preflight(image, options)
            root = image.tree.processes[0].pid
            started = time.monotonic()
            TreeRestorer(image, options).run()
        finally:
            # restored or not, the dumped TCP connections' packets flow again (netblock.py)
            netblock.lift(image.tcp_block)
        log.info("process tree of %d restored in %.3f s", root, time.monotonic() - started)
    if options.pidfile:
        with open(options.pidfile, "w") as f:
            f.write(f"{root}\n")
    if options.detach:
        return root
    return wait_exit_status(root)


def wait_exit_status(pid):
    while True:
        try:
            _, status = os.waitpid(pid, 0)
        except InterruptedError:
            continue
        if os.WIFEXITED(status):
            return os.WEXITSTATUS(status)
        if os.WIFSIGNALED(status):
            return 128 + os.WTERMSIG(status)

