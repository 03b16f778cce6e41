"""One exception tree. The CLI maps each class to an exit code (see cli/main.py)."""


class PyckptError(Exception):
    """Base of every error pyckpt reports to its user."""

    exit_code = 1


class UnsupportedArch(PyckptError):
    pass


class NoSuchProcess(PyckptError):
    pass


class AccessDenied(PyckptError):
    pass


class UnsupportedState(PyckptError):
    """The target holds something pyckpt cannot checkpoint; nothing was written."""

    exit_code = 3


class ImageError(PyckptError):
    """A missing, truncated, corrupted or incompatible image."""

    exit_code = 4


class RestoreConflict(PyckptError):
    """Something on this machine is in the way (a PID in use, a missing file)."""

    exit_code = 5


class FreezeError(PyckptError):
    pass


class InjectionError(PyckptError):
    """A syscall injected into a stopped process failed."""

    def __init__(self, name, errno_value, detail=""):
        import os
        self.syscall = name
        self.errno = errno_value
        msg = f"{name} failed in the target: {os.strerror(errno_value)} (errno {errno_value})"
        super().__init__(f"{msg}: {detail}" if detail else msg)
