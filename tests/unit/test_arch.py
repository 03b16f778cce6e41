"""pyckpt.arch: one contract, three arches, every number proven by the kernel's headers.

The syscall numbers, register layouts, stack_t/sigaction layouts and mmap/
ioctl constants are checked by compiling against the kernel's own uAPI
headers with each arch's (cross) compiler: a number copied wrongly from a
table on the web fails here, not in a restored process on a VM.

Compilers (Debian packages; CI installs them, a missing one fails the test):
  x86_64   x86_64-linux-gnu-gcc           gcc, libc6-dev (on an amd64 host)
  aarch64  aarch64-linux-gnu-gcc          gcc-aarch64-linux-gnu, linux-libc-dev-arm64-cross
  mips64   mips64el-linux-gnuabi64-gcc    gcc-mips64el-linux-gnuabi64, linux-libc-dev-mips64el-cross
"""

import inspect
import re
import shutil
import struct
import subprocess

import pytest
from ptrace.binding.linux_struct import user_regs_struct

from pyckpt import arch as archmod
from pyckpt.images.proto import regs_pb2

ARCHES = archmod.names()

# arch name -> (compiler command, Debian packages providing it and its uAPI headers)
COMPILERS = {
    "x86_64": (["x86_64-linux-gnu-gcc"], "gcc libc6-dev"),
    "aarch64": (["aarch64-linux-gnu-gcc"], "gcc-aarch64-linux-gnu linux-libc-dev-arm64-cross"),
    # -mabi=64 is the default of this triplet; spelled out because n32/o32 number syscalls differently.
    "mips64": (["mips64el-linux-gnuabi64-gcc", "-mabi=64"],
               "gcc-mips64el-linux-gnuabi64 linux-libc-dev-mips64el-cross"),
}

# Only on mips: refuse to compile unless the headers describe the n64 ABI.
N64_GUARD = """#include <asm/sgidefs.h>
#if _MIPS_SIM != _MIPS_SIM_ABI64
#error "not the n64 ABI"
#endif
"""


def compiler(name):
    command, packages = COMPILERS[name]
    if not shutil.which(command[0]):
        pytest.fail(f"{command[0]} is missing: apt-get install {packages}")
    return command


def preamble(name, includes):
    text = N64_GUARD if name == "mips64" else ""
    return text + "".join(f"#include <{h}>\n" for h in ("stddef.h",) + tuple(includes))


def assert_c_agrees(name, includes, checks):
    """Every (label, C expression, expected) holds for the compiler of arch `name`.

    Compiled as _Static_asserts, so one run reports every mismatch by label.
    """
    lines = [preamble(name, includes)]
    for label, expr, value in checks:
        lines.append(f'_Static_assert((unsigned long long)({expr}) == {value}ULL, "MISMATCH {label}");\n')
    result = subprocess.run(compiler(name) + ["-fsyntax-only", "-x", "c", "-"], input="".join(lines),
                            capture_output=True, text=True)
    bad = sorted(set(re.findall(r"MISMATCH ([^\"]+)", result.stderr)))
    assert not bad, f"{name}: the kernel headers disagree with pyckpt.arch.{name} on: {', '.join(bad)}"
    assert result.returncode == 0, result.stderr


def contract_names():
    """The names listed in pyckpt.arch's docstring (`name(args)` -> name)."""
    doc = archmod.__doc__
    block = doc.split("exposes the same names:", 1)[1].split("An unknown machine", 1)[0]
    names = set()
    for line in block.strip().splitlines():
        # "NAME, MACHINES, BYTEORDER      identity…" or "set_syscall_error(regs, errno) a frozen…"
        listed = re.match(r"\w+(\([^)]*\))?(\s*[,/]\s*\w+(\([^)]*\))?)*", line.strip()).group(0)
        names.update(re.findall(r"\w+", re.sub(r"\([^)]*\)", "", listed)))
    return names


def public_names(mod):
    return {k for k, v in vars(mod).items() if not k.startswith("_") and not inspect.ismodule(v)}


# Names only one arch has a use for; everything else is in every arch module.
ARCH_ONLY = {"x86_64": {"NT_X86_XSTATE", "XSTATE_MAX"}, "aarch64": {"NT_ARM_TLS", "SYSCALL_NR_REG"},
             "mips64": set()}


def test_the_three_arches_are_known():
    assert ARCHES == sorted(COMPILERS)
    assert {archmod.by_name(n).NAME for n in ARCHES} == set(ARCHES)


@pytest.mark.parametrize("name", ARCHES)
def test_module_exposes_the_documented_contract(name):
    names = contract_names()
    assert {"NAME", "SYSCALLS", "set_syscall", "IOC_DIRBITS", "unpack_sigaction"} <= names  # docstring parsed
    missing = names - public_names(archmod.by_name(name))
    assert not missing, f"pyckpt.arch.{name} lacks {sorted(missing)} of the contract"


def test_every_arch_exposes_the_same_names_and_signatures():
    shared = {n: public_names(archmod.by_name(n)) - ARCH_ONLY[n] for n in ARCHES}
    reference = shared[ARCHES[0]]
    for name in ARCHES:
        assert shared[name] == reference, (
            f"{name}: missing {sorted(reference - shared[name])}, extra {sorted(shared[name] - reference)}")
    for attr in sorted(reference):
        kinds = {n: inspect.signature(getattr(archmod.by_name(n), attr)) if callable(getattr(archmod.by_name(n), attr))
                 else type(getattr(archmod.by_name(n), attr)).__name__ for n in ARCHES}
        assert len(set(map(str, kinds.values()))) == 1, f"{attr} differs between arches: {kinds}"


def test_syscall_tables_name_the_same_calls():
    keys = {n: set(archmod.by_name(n).SYSCALLS) for n in ARCHES}
    for name in ARCHES:
        assert keys[name] == keys[ARCHES[0]], f"{name}: {sorted(keys[name] ^ keys[ARCHES[0]])}"


def test_unknown_arch_is_an_error():
    with pytest.raises(archmod.UnsupportedArch, match="sparc"):
        archmod.by_name("sparc")


@pytest.mark.parametrize("name", ARCHES)
def test_syscall_numbers_match_the_kernel_headers(name):
    mod = archmod.by_name(name)
    source = preamble(name, ["asm/unistd.h"]) + "".join(f"pyckpt_nr {k} __NR_{k}\n" for k in mod.SYSCALLS)
    out = subprocess.run(compiler(name) + ["-E", "-P", "-x", "c", "-"], input=source,
                         capture_output=True, text=True, check=True).stdout
    found = {}
    for line in out.splitlines():
        if line.startswith("pyckpt_nr "):
            _, key, expr = line.split(None, 2)
            # "1" on x86-64/arm64, "(5000 + 0)" on mips (__NR_Linux + n).
            if not re.fullmatch(r"[\d\s()+]+", expr):
                found[key] = f"undefined ({expr})"
                continue
            found[key] = sum(int(t) for t in re.findall(r"\d+", expr))
    assert set(found) == set(mod.SYSCALLS)
    wrong = {k: (mod.SYSCALLS[k], found[k]) for k in mod.SYSCALLS if found[k] != mod.SYSCALLS[k]}
    assert not wrong, f"{name}: table vs header: {wrong}"


def _gpreg_offset_expr(name, field):
    if name == "x86_64":
        return f"offsetof(struct user_regs_struct, {field})"
    if name == "aarch64":
        return f"offsetof(struct user_pt_regs, {'regs[' + field[1:] + ']' if field[0] == 'x' and field != 'x' else field})"
    return f"8 * MIPS64_EF_{field.upper()}"   # asm/reg.h: word index in the n64 elf_gregset_t


# NT_PRSTATUS payload size, as the kernel's regset defines it.
GPREGS_HEADERS = {
    "x86_64": (["sys/user.h"], "sizeof(struct user_regs_struct)"),
    "aarch64": (["asm/ptrace.h"], "sizeof(struct user_pt_regs)"),
    # ELF_NGREG (45) is kernel-internal (arch/mips/include/asm/elf.h); gpr64_get in
    # arch/mips/kernel/ptrace.c copies out u64 uregs[ELF_NGREG] filled at MIPS64_EF_*.
    "mips64": (["asm/reg.h"], "45 * 8"),
}


@pytest.mark.parametrize("name", ARCHES)
def test_gpregs_layout_matches_the_kernel_headers(name):
    mod = archmod.by_name(name)
    assert mod.GPREGS_FORMAT[0] == {"little": "<", "big": ">"}[mod.BYTEORDER]
    assert struct.calcsize(mod.GPREGS_FORMAT) == 8 * len(mod.GPREGS_FIELDS)
    includes, size_expr = GPREGS_HEADERS[name]
    checks = [("size", size_expr, archmod.gpregs_size(mod))]
    checks += [(field, _gpreg_offset_expr(name, field), 8 * index)
               for index, field in enumerate(mod.GPREGS_FIELDS) if not field.startswith("pad")]
    assert_c_agrees(name, includes, checks)


def test_x86_64_register_order_matches_python_ptrace():
    x86 = archmod.by_name("x86_64")
    assert x86.GPREGS_FIELDS == tuple(f[0] for f in user_regs_struct._fields_)


def _proto_fields(name):
    """Field names of the register message the Regs oneof selects for this arch, by field number."""
    oneof = regs_pb2.Regs.DESCRIPTOR.oneofs_by_name["gp"]
    member = {f.name: f for f in oneof.fields}[name]   # restore does getattr(regs, arch.NAME)
    return [f.name for f in sorted(member.message_type.fields, key=lambda f: f.number)]


@pytest.mark.parametrize("name", ARCHES)
def test_gpregs_fields_match_the_image_register_message(name):
    mod = archmod.by_name(name)
    assert [f for f in mod.GPREGS_FIELDS if not f.startswith("pad")] == _proto_fields(name)
    assert mod.IP in mod.GPREGS_FIELDS and mod.SP in mod.GPREGS_FIELDS
    assert set(mod.ARGS) <= set(mod.GPREGS_FIELDS)


@pytest.mark.parametrize("name", ARCHES)
def test_gpregs_pack_unpack_round_trip(name):
    mod = archmod.by_name(name)
    regs = {field: (0x0101010101010101 * (i + 1)) & 0xFFFFFFFFFFFFFFFF for i, field in enumerate(mod.GPREGS_FIELDS)}
    regs[mod.GPREGS_FIELDS[0]] = 0xFFFFFFFFFFFFFFFF
    data = archmod.pack_gpregs(mod, regs)
    assert len(data) == archmod.gpregs_size(mod)
    assert archmod.unpack_gpregs(mod, data) == regs
    with pytest.raises(ValueError, match=name):
        archmod.unpack_gpregs(mod, data[:-8])


def test_pack_gpregs_stores_negative_values_as_twos_complement():
    x86 = archmod.by_name("x86_64")
    regs = dict.fromkeys(x86.GPREGS_FIELDS, 0)
    regs["orig_rax"] = -1
    assert archmod.unpack_gpregs(x86, archmod.pack_gpregs(x86, regs))["orig_rax"] == (1 << 64) - 1
    assert archmod.to_signed((1 << 64) - 1) == -1


SIGACTION_CASES = [
    (0, 0, 0, 0),
    (1, 0, 0, 0),                                        # SIG_IGN
    (0x7F0012345678, 0x14000000, 0x7F0000001000, (1 << 9) | (1 << 14)),
    (0x7F0012345678, 0x0C000004, 0x7F0000001000, (1 << 64) - 1),
]


@pytest.mark.parametrize("name", ARCHES)
@pytest.mark.parametrize("case", SIGACTION_CASES)
def test_sigaction_round_trip(name, case):
    mod = archmod.by_name(name)
    handler, flags, restorer, mask = case
    if not mod.SA_RESTORER:   # mips: the struct has no sa_restorer
        restorer = 0
    if mod.NSIG > 64:
        mask |= 0xA5 << 64     # a real-time signal above 64
    data = mod.pack_sigaction(handler, flags, restorer, mask)
    assert len(data) == mod.SIGACTION_SIZE
    assert tuple(mod.unpack_sigaction(data)) == (handler, flags, restorer, mask)


def _offsets_in(data, markers):
    """Offset of each marker's bytes in data (-1 if absent)."""
    return {label: data.find(marker) for label, marker in markers.items()}


# The uAPI struct sigaction of arm64 (asm-generic) and mips equals the kernel's
# rt_sigaction layout; x86's uAPI one is the legacy layout (mask before flags),
# so x86-64 is covered by the round trip above and by the host tier.
@pytest.mark.parametrize("name", ["aarch64", "mips64"])
def test_sigaction_layout_matches_the_kernel_headers(name):
    mod = archmod.by_name(name)
    data = mod.pack_sigaction(0x1111111111111111, 0x22222222, 0x3333333333333333, 0x4444444444444444)
    where = _offsets_in(data, {"sa_handler": b"\x11" * 8, "sa_flags": b"\x22" * 4,
                               "sa_restorer": b"\x33" * 8, "sa_mask": b"\x44" * 8})
    checks = [("sizeof", "sizeof(struct sigaction)", mod.SIGACTION_SIZE),
              ("NSIG", "8 * sizeof(sigset_t)", mod.NSIG)]
    checks += [(f, f"offsetof(struct sigaction, {f})", off) for f, off in where.items() if f != "sa_restorer"]
    if mod.SA_RESTORER:
        checks += [("sa_restorer", "offsetof(struct sigaction, sa_restorer)", where["sa_restorer"]),
                   ("SA_RESTORER", "SA_RESTORER", mod.SA_RESTORER)]
    else:
        assert where["sa_restorer"] == -1
    assert_c_agrees(name, ["asm/signal.h"], checks)


@pytest.mark.parametrize("name", ARCHES)
def test_stack_t_round_trip_and_layout(name):
    mod = archmod.by_name(name)
    assert mod.unpack_stack_t(mod.pack_stack_t(0x7FFF00001000, 2, 0x8000)) == (0x7FFF00001000, 2, 0x8000)
    data = mod.pack_stack_t(0x1111111111111111, 0x22222222, 0x3333333333333333)
    where = _offsets_in(data, {"ss_sp": b"\x11" * 8, "ss_flags": b"\x22" * 4, "ss_size": b"\x33" * 8})
    checks = [("sizeof", "sizeof(stack_t)", len(data))]
    checks += [(f, f"offsetof(stack_t, {f})", off) for f, off in where.items()]
    assert_c_agrees(name, ["asm/signal.h"], checks)


@pytest.mark.parametrize("name", ARCHES)
def test_mmap_and_ioctl_constants_match_the_kernel_headers(name):
    mod = archmod.by_name(name)
    checks = [(c, c, getattr(mod, c)) for c in
              ("MAP_SHARED", "MAP_PRIVATE", "MAP_FIXED", "MAP_ANONYMOUS", "MAP_GROWSDOWN", "MAP_FIXED_NOREPLACE")]
    checks += [(c, "_" + c, getattr(mod, c)) for c in
               ("IOC_NONE", "IOC_READ", "IOC_WRITE", "IOC_SIZEBITS", "IOC_DIRBITS")]
    assert_c_agrees(name, ["linux/mman.h", "asm/ioctl.h"], checks)


@pytest.mark.parametrize("name", ARCHES)
def test_pty_ioctl_numbers_match_the_kernel_headers(name):
    from pyckpt.files import pty
    numbers = pty.ioctl_numbers(archmod.by_name(name))
    assert_c_agrees(name, ["asm/ioctls.h"], [(n, n, v) for n, v in numbers.items()])


# The kernel's rule (include/uapi/asm-generic/ioctl.h, arch/mips/include/uapi/asm/ioctl.h):
#   _IOC(dir, type, nr, size) = dir << (16 + SIZEBITS) | size << 16 | type << 8 | nr
#   x86-64/arm64: SIZEBITS 14, _IOC_NONE 0, _IOC_WRITE 1, _IOC_READ 2 (dir at bit 30)
#   mips:         SIZEBITS 13, _IOC_NONE 1, _IOC_READ 2, _IOC_WRITE 4 (dir at bit 29)
IOC_CASES = [
    # FS_IOC_GETFLAGS = _IOR('f', 1, long)
    ("x86_64", "r", ord("f"), 1, 8, 0x80086601),
    ("aarch64", "r", ord("f"), 1, 8, 0x80086601),
    ("mips64", "r", ord("f"), 1, 8, 0x40086601),
    # FS_IOC_SETFLAGS = _IOW('f', 2, long)
    ("x86_64", "w", ord("f"), 2, 8, 0x40086602),
    ("mips64", "w", ord("f"), 2, 8, 0x80086602),
    # PAGEMAP_SCAN = _IOWR('f', 16, struct pm_scan_arg), 96 bytes
    ("x86_64", "rw", ord("f"), 16, 96, 0xC0606610),
    ("aarch64", "rw", ord("f"), 16, 96, 0xC0606610),
    ("mips64", "rw", ord("f"), 16, 96, 0xC0606610),
    # _IO('T', 1): no direction
    ("x86_64", "", ord("T"), 1, 0, 0x00005401),
    ("mips64", "", ord("T"), 1, 0, 0x20005401),
]


@pytest.mark.parametrize("name,direction,type_,nr,size,expected", IOC_CASES)
def test_ioc_encodes_like_the_kernel(name, direction, type_, nr, size, expected):
    assert archmod.ioc(direction, type_, nr, size, arch=archmod.by_name(name)) == expected


@pytest.mark.parametrize("name", ARCHES)
def test_ioc_refuses_a_size_that_does_not_fit(name):
    mod = archmod.by_name(name)
    with pytest.raises(ValueError, match="does not fit"):
        archmod.ioc("r", ord("f"), 1, 1 << mod.IOC_SIZEBITS, arch=mod)


def test_pagemap_scan_request_is_the_hosts_pagemap_scan():
    from pyckpt import pagemap
    assert pagemap.PAGEMAP_SCAN == archmod.ioc("rw", ord("f"), 16, 96)


@pytest.mark.parametrize("name", ARCHES)
def test_set_syscall_then_read_back(name):
    mod = archmod.by_name(name)
    regs = dict.fromkeys(mod.GPREGS_FIELDS, 0x5A)
    ready = mod.set_syscall(regs, mod.SYSCALLS["mmap"], [0x1000, 0x2000, 3, 0x22, -1, 0], 0x7000)
    assert ready[mod.IP] == 0x7000
    assert mod.syscall_args(ready) == [0x1000, 0x2000, 3, 0x22, (1 << 64) - 1, 0]
    assert regs[mod.IP] == 0x5A, "set_syscall must not modify its argument"
    # Not marked as being in a syscall: no restart fix-up when it runs.
    assert mod.interrupted_syscall(ready, archmod.RESTART_ERRNOS) is None


def test_a_frozen_syscall_error_is_seen_as_the_kernel_left_it():
    x86 = archmod.by_name("x86_64")
    regs = x86.set_syscall(dict.fromkeys(x86.GPREGS_FIELDS, 0), x86.SYSCALLS["read"], [0, 0, 0], 0x7000)
    regs["orig_rax"] = x86.SYSCALLS["read"]
    frozen = x86.set_syscall_error(regs, archmod.ERESTARTSYS)
    assert x86.syscall_result(frozen) == -archmod.ERESTARTSYS
    assert x86.interrupted_syscall(frozen, archmod.RESTART_ERRNOS) == x86.SYSCALLS["read"]
    assert x86.interrupted_syscall(x86.set_syscall_error(regs, 4), archmod.RESTART_ERRNOS) is None  # EINTR


@pytest.mark.parametrize("name", ARCHES)
def test_syscall_insn_is_one_instruction(name):
    mod = archmod.by_name(name)
    assert len(mod.SYSCALL_INSN) == (2 if name == "x86_64" else 4)
