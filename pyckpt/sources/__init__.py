"""The two ways to take a process's state: ptrace (user space) and kmod (/dev/crak).

Both implement `base.Source`; dump orchestration never asks which one ran.
"""

import os

from ..errors import PyckptError

BACKENDS = ("ptrace", "kmod")
CRAK_DEVICE = "/dev/crak"


def resolve_backend(name):
    """'auto' picks kmod when /dev/crak is there, ptrace otherwise."""
    if name == "auto":
        return "kmod" if os.path.exists(CRAK_DEVICE) else "ptrace"
    if name not in BACKENDS:
        raise PyckptError(f"unknown backend {name!r}; choose auto, ptrace or kmod")
    return name


def open_source(name, root_pid, options):
    name = resolve_backend(name)
    if name == "ptrace":
        from .ptrace import PtraceSource
        return PtraceSource(root_pid, options)
    from .kmod import KmodSource  # noqa: F401  (written against base.Source)
    return KmodSource(root_pid, options)
