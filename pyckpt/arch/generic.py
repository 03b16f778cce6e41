"""Facts x86-64 and arm64 share with the kernel's asm-generic headers.

An arch module imports what it has in common from here and defines the
rest itself (mips differs in all of these).
"""

import struct

# struct sigaction as rt_sigaction takes it: handler, flags, restorer, mask (one 64-bit word).
SIGACTION_FORMAT = "<QQQQ"
SIGACTION_SIZE = 32
SA_RESTORER = 0x04000000
NSIG = 64


def pack_sigaction(handler, flags, restorer, mask):
    return struct.pack(SIGACTION_FORMAT, handler, flags, restorer, mask)


def unpack_sigaction(data):
    handler, flags, restorer, mask = struct.unpack(SIGACTION_FORMAT, data)
    return handler, flags, restorer, mask


# stack_t: ss_sp, ss_flags, ss_size.
STACK_T_FORMAT = "<Qi4xQ"


def pack_stack_t(sp, flags, size):
    return struct.pack(STACK_T_FORMAT, sp, flags, size)


def unpack_stack_t(data):
    return struct.unpack(STACK_T_FORMAT, data)


MAP_SHARED, MAP_PRIVATE, MAP_FIXED = 0x01, 0x02, 0x10
MAP_ANONYMOUS = 0x20
MAP_GROWSDOWN = 0x100
MAP_FIXED_NOREPLACE = 0x100000
MAP_NORESERVE = 0x4000
PROT_BTI = 0                    # arm64's branch-target protection (VmFlags "bt"); none here
MAP_DROPPABLE = 0x08            # a map type like MAP_PRIVATE (Linux 6.11+, 64-bit)

IOC_NONE, IOC_WRITE, IOC_READ = 0, 1, 2
IOC_SIZEBITS = 14
IOC_DIRBITS = 2

# struct epoll_event: events, data (naturally aligned here; packed on x86-64).
EPOLL_EVENT_FORMAT = "=I4xQ"
