"""Architecture facts, and the only place that looks at the machine name.

Every arch module (x86_64, aarch64, mips64) exposes the same names:

  NAME, MACHINES, BYTEORDER      identity; NAME is what images record
  SYSCALLS                       syscall name -> number (only those pyckpt uses)
  SYSCALL_INSN                   bytes of one syscall instruction
  GPREGS_FIELDS, GPREGS_FORMAT   NT_PRSTATUS layout, in kernel order
  IP, SP, ARGS                   program counter, stack pointer, argument registers
  NT_PRFPREG, EXTRA_REGSETS      (note type, name) of the other regsets we save
  set_syscall(regs, nr, args, insn_addr)   regs ready to run one syscall
  syscall_result(regs)           the value a finished syscall returned
  syscall_args(regs)             the six argument registers
  interrupted_syscall(regs, restart_errnos)  syscall nr a frozen thread was in, or None
  set_syscall_error(regs, errno) a frozen syscall's error code replaced
  NSIG, SIGACTION_SIZE, SA_RESTORER   signal count, struct sigaction facts
  pack_sigaction / unpack_sigaction   the kernel's struct sigaction
  pack_stack_t / unpack_stack_t  stack_t (sigaltstack)
  EPOLL_EVENT_FORMAT             struct epoll_event (packed on x86-64 only)
  MAP_SHARED, MAP_PRIVATE, MAP_FIXED, MAP_ANONYMOUS   mmap flags
  MAP_GROWSDOWN, MAP_FIXED_NOREPLACE, MAP_NORESERVE, MAP_DROPPABLE   (some differ on mips)
  PROT_BTI                       arm64's PROT_BTI; 0 where the arch has none
  IOC_NONE, IOC_READ, IOC_WRITE, IOC_SIZEBITS, IOC_DIRBITS   ioctl encoding

An unknown machine is an error, never a default.
"""

import platform
import struct

from ..errors import UnsupportedArch
from . import aarch64, mips64, x86_64

_ARCHES = {mod.NAME: mod for mod in (x86_64, aarch64, mips64)}

# Kernel-internal "restart me" return values, the same on every arch.
ERESTARTSYS = 512
ERESTARTNOINTR = 513
ERESTARTNOHAND = 514
ERESTART_RESTARTBLOCK = 516
RESTART_ERRNOS = (ERESTARTSYS, ERESTARTNOINTR, ERESTARTNOHAND, ERESTART_RESTARTBLOCK)


def by_name(name):
    """The arch module for a name recorded in an image."""
    try:
        return _ARCHES[name]
    except KeyError:
        raise UnsupportedArch(f"unknown architecture {name!r}; pyckpt knows {sorted(_ARCHES)}") from None


def host():
    """The arch module of the machine we run on."""
    machine = platform.machine()
    for mod in _ARCHES.values():
        if machine in mod.MACHINES:
            return mod
    raise UnsupportedArch(f"pyckpt does not support this machine ({machine!r})")


def names():
    return sorted(_ARCHES)


def ioc(direction, type_, nr, size, arch=None):
    """An ioctl request number, encoded the way `arch` (default: host) does.

    direction is a combination of "r"/"w" ("" for none); mips uses other
    direction bits and a 13-bit size field than x86-64/arm64.
    """
    arch = arch or host()
    dir_bits = 0
    if "r" in direction:
        dir_bits |= arch.IOC_READ
    if "w" in direction:
        dir_bits |= arch.IOC_WRITE
    if not dir_bits:
        dir_bits = arch.IOC_NONE  # 0 on x86/arm, 1 on mips
    if size >= 1 << arch.IOC_SIZEBITS:
        raise ValueError(f"ioctl size {size} does not fit in {arch.IOC_SIZEBITS} bits")
    nrshift = 0
    typeshift = nrshift + 8
    sizeshift = typeshift + 8
    dirshift = sizeshift + arch.IOC_SIZEBITS
    return (dir_bits << dirshift) | (size << sizeshift) | (type_ << typeshift) | (nr << nrshift)


def unpack_gpregs(arch, data):
    """NT_PRSTATUS bytes -> {field: int}."""
    size = struct.calcsize(arch.GPREGS_FORMAT)
    if len(data) != size:
        raise ValueError(f"{arch.NAME} NT_PRSTATUS is {size} bytes, got {len(data)}")
    return dict(zip(arch.GPREGS_FIELDS, struct.unpack(arch.GPREGS_FORMAT, data)))


def pack_gpregs(arch, regs):
    return struct.pack(arch.GPREGS_FORMAT, *(regs[name] & 0xFFFFFFFFFFFFFFFF for name in arch.GPREGS_FIELDS))


def gpregs_size(arch):
    return struct.calcsize(arch.GPREGS_FORMAT)


def to_signed(value):
    value &= 0xFFFFFFFFFFFFFFFF
    return value - (1 << 64) if value >= 1 << 63 else value
