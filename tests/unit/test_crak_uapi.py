"""The Python mirror of the /dev/crak uAPI equals the C header, per arch.

A probe is generated from the mirror's own tables, compiled against
kmod/include/uapi, and yields every struct size, field offset and size,
constant and ioctl number as the C compiler sees them:
- on the host arch it is built and run, and prints the values;
- for the other arches it is cross-compiled to an object file and the
  values are read from its data section (objcopy), so no emulator is
  needed; an arch whose cross compiler is missing is skipped.
"""

import ctypes
import pathlib
import platform
import shutil
import struct
import subprocess

import pytest

from pyckpt import arch as arches
from pyckpt.sources import crak_uapi as uapi

REPO = pathlib.Path(__file__).resolve().parents[2]
UAPI_INCLUDE = REPO / "kmod" / "include" / "uapi"

# arch name -> GNU triplet of its cross toolchain.
TRIPLETS = {"x86_64": "x86_64-linux-gnu", "aarch64": "aarch64-linux-gnu",
            "mips64": "mips64el-linux-gnuabi64"}

_NOT_CONSTANTS = {"DEVICE_PATH", "COMMANDS", "STRUCTS"}


def constants():
    """Mirror constant name -> value; the C name is CRAK_<name>."""
    return {name: value for name, value in vars(uapi).items()
            if name.isupper() and name not in _NOT_CONSTANTS and isinstance(value, int)}


def expected(arch):
    """[(label, C expression, value the mirror predicts)] in probe order."""
    items = []
    for cname, cls in uapi.STRUCTS.items():
        items.append((f"sizeof {cname}", f"sizeof(struct {cname})", ctypes.sizeof(cls)))
        for field, _ in cls._fields_:
            desc = getattr(cls, field)
            items.append((f"offsetof {cname}.{field}", f"offsetof(struct {cname}, {field})",
                          desc.offset))
            items.append((f"sizeof {cname}.{field}", f"sizeof(((struct {cname} *)0)->{field})",
                          desc.size))
    for name, value in sorted(constants().items()):
        items.append((f"CRAK_{name}", f"CRAK_{name}", value))
    for name, request in uapi.requests(arch).items():
        items.append((f"CRAK_IOC_{name}", f"CRAK_IOC_{name}", request))
    return items


def probe_source(items):
    body = ",\n".join(f"\t(unsigned long long)({expr})" for _, expr, _ in items)
    return f"""#include <stddef.h>
#include <linux/crak.h>

__attribute__((section(".crak_probe"), used))
const unsigned long long crak_probe[] = {{
{body}
}};

#ifdef CRAK_PROBE_MAIN
#include <stdio.h>
int main(void)
{{
	for (size_t i = 0; i < sizeof(crak_probe) / sizeof(crak_probe[0]); i++)
		printf("%llu\\n", crak_probe[i]);
	return 0;
}}
#endif
"""


def host_arch_name():
    try:
        return arches.host().NAME
    except Exception:
        return None


def toolchain(name):
    if name == host_arch_name():
        return "gcc", "objcopy"
    prefix = TRIPLETS[name] + "-"
    return prefix + "gcc", prefix + "objcopy"


def has_linux_headers(gcc, tmp_path):
    src = tmp_path / "headers.c"
    src.write_text("#include <linux/types.h>\n#include <linux/ioctl.h>\n")
    result = subprocess.run([gcc, "-c", "-o", str(tmp_path / "headers.o"), str(src)],
                            capture_output=True)
    return result.returncode == 0


def probe_values(arch, items, tmp_path):
    src = tmp_path / "probe.c"
    src.write_text(probe_source(items))
    gcc, objcopy = toolchain(arch.NAME)
    cflags = ["-std=gnu11", "-Wall", "-Werror", f"-I{UAPI_INCLUDE}"]
    if arch.NAME == host_arch_name():
        exe = tmp_path / "probe"
        subprocess.run([gcc, *cflags, "-DCRAK_PROBE_MAIN", "-o", str(exe), str(src)],
                       check=True, capture_output=True, text=True)
        out = subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout
        return [int(line) for line in out.split()]
    obj = tmp_path / "probe.o"
    raw = tmp_path / "probe.bin"
    subprocess.run([gcc, *cflags, "-c", "-o", str(obj), str(src)],
                   check=True, capture_output=True, text=True)
    subprocess.run([objcopy, "-O", "binary", "--only-section=.crak_probe", str(obj), str(raw)],
                   check=True, capture_output=True, text=True)
    data = raw.read_bytes()
    order = "<" if arch.BYTEORDER == "little" else ">"
    return list(struct.unpack(f"{order}{len(data) // 8}Q", data))


@pytest.mark.parametrize("arch_name", sorted(TRIPLETS))
def test_mirror_matches_header(arch_name, tmp_path):
    arch = arches.by_name(arch_name)
    gcc, objcopy = toolchain(arch_name)
    if arch_name == "x86_64" and platform.machine() == "x86_64":
        pass  # the host arch is required: a missing gcc is a failure
    elif not (shutil.which(gcc) and shutil.which(objcopy)):
        pytest.skip(f"no {gcc} for {arch_name}")
    elif not has_linux_headers(gcc, tmp_path):
        pytest.skip(f"{gcc} has no <linux/ioctl.h> (install linux-libc-dev-<arch>-cross)")
    items = expected(arch)
    values = probe_values(arch, items, tmp_path)
    assert len(values) == len(items)
    mismatches = [f"{label}: header {got:#x}, mirror {want:#x}"
                  for (label, _, want), got in zip(items, values) if got != want]
    assert not mismatches, "\n".join(mismatches)


def test_every_struct_has_flags_and_reserved():
    """The rules of the header: a flags word and reserved space everywhere
    user space passes a command struct, sizes a multiple of 8."""
    array_elements = {uapi.PageRun, uapi.Sigaction, uapi.Siginfo, uapi.SeccompFilter, uapi.UnixMsg}
    for cname, cls in uapi.STRUCTS.items():
        assert ctypes.sizeof(cls) % 8 == 0, cname
        if cls in array_elements:
            continue
        names = [field for field, _ in cls._fields_]
        assert "flags" in names and "reserved" in names, cname


def test_every_command_has_a_distinct_request():
    for arch_name in arches.names():
        numbers = uapi.requests(arches.by_name(arch_name))
        assert len(set(numbers.values())) == len(numbers)
