"""Running syscalls inside a stopped tracee.

The tracee's registers are pointed at a syscall instruction that already
exists in its address space and stepped with PTRACE_SYSCALL through the
syscall's entry and exit stops; nothing of the target's memory is modified
unless a call itself writes to it. Arguments that are buffers go to a
scratch area the caller provides (see `Scratch`).
"""

import errno
import logging
import os

from . import linux
from .pagemap import PAGE_SIZE
from .errors import InjectionError, NoSuchProcess

log = logging.getLogger(__name__)


class SyscallInjector:
    def __init__(self, tracee, insn_addr):
        self.tracee = tracee
        self.arch = tracee.arch
        self.insn_addr = insn_addr
        self.base_regs = tracee.get_regs()

    def raw(self, name, *args):
        """Run syscall `name`; return its raw result (negative errno on failure)."""
        nr = self.arch.SYSCALLS[name]
        regs = self.arch.set_syscall(self.base_regs, nr, args, self.insn_addr)
        tracee = self.tracee
        tracee.set_regs(regs)
        for phase in ("entry", "exit"):
            tracee.step_syscall()
            while True:
                stop = tracee.wait()
                if stop.exited:
                    raise NoSuchProcess(f"process {tracee.tid} died during injected {name}")
                if stop.is_syscall_stop:
                    break
                # Every signal is blocked while we inject; only SIGSTOP-like
                # stops can get here. Swallow them and go on.
                log.debug("thread %d: unexpected %r during injected %s (%s)", tracee.tid, stop, name, phase)
                tracee.step_syscall()
        return self.arch.syscall_result(tracee.get_regs())

    def call(self, name, *args, detail=""):
        """Run syscall `name`; raise InjectionError when it fails."""
        result = self.raw(name, *args)
        if -4096 < result < 0:
            raise InjectionError(name, -result, detail)
        log.debug("injected %s%s = %#x", name, tuple(hex(a) if isinstance(a, int) else a for a in args), result)
        return result


class Scratch:
    """A writable area of the tracee where injected calls find their buffers."""

    def __init__(self, pid, address, size):
        self.pid = pid
        self.address = address
        self.size = size
        self.used = 0

    def reset(self):
        self.used = 0

    def put(self, data):
        """Copy `data` into the tracee; return its address there."""
        data = bytes(data)
        aligned = (len(data) + 15) & ~15
        if self.used + aligned > self.size:
            raise InjectionError("scratch", errno.ENOMEM, f"{len(data)} bytes do not fit in the scratch area")
        address = self.address + self.used
        linux.write_memory(self.pid, address, data)
        self.used += aligned
        return address

    def put_str(self, text):
        return self.put(os.fsencode(text) + b"\0")

    def alloc(self, size):
        """Reserve `size` zeroed bytes; return their address."""
        return self.put(b"\0" * size)

    def get(self, address, size):
        return linux.read_memory(self.pid, address, size)


def find_syscall_insn(pid, vmas, arch):
    """Address of a syscall instruction `pid` can execute: in its [vdso], or, for a
    process that unmapped its vDSO, in another executable mapping (its libc)."""
    step = 1 if len(arch.SYSCALL_INSN) == 2 else 4
    executable = [v for v in vmas if v.perms[2] == "x" and v.path != "[vsyscall]"]
    executable.sort(key=lambda v: v.path != "[vdso]")
    for vma in executable:
        # the vDSO whole; elsewhere a page at a time, to fault in as little as possible
        chunk = vma.length if vma.path == "[vdso]" else PAGE_SIZE
        for start in range(vma.start, vma.end, chunk):
            try:
                code = linux.read_memory(pid, start, min(chunk, vma.end - start))
            except OSError:
                break   # e.g. a mapping past the end of its file
            index = code.find(arch.SYSCALL_INSN)
            while index != -1 and index % step:
                index = code.find(arch.SYSCALL_INSN, index + 1)
            if index != -1:
                return start + index
    raise InjectionError("find syscall", errno.ENOENT,
                         f"process {pid} has no executable mapping with a syscall instruction")
