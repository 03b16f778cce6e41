"""Telling whether two kernels' vDSOs are the same code.

A restored process keeps calling into the vDSO at its old address, so the
vDSO there must be the one it was using: same build of the kernel's vDSO.
Its ELF build-id (read with pyelftools) names that build; without one, the
bytes' checksum does.
"""

import hashlib
import io

from elftools.elf.elffile import ELFFile
from elftools.common.exceptions import ELFError

from . import proc

# The mappings the kernel itself puts in every process: the vDSO and its data
# pages (and arm's sigpage/vectors), and the fixed legacy [vsyscall] page.
VDSO_NAMES = ("[vdso]", "[vvar]", "[vvar_vclock]", "[sigpage]", "[vectors]")
KERNEL_MAPPINGS = VDSO_NAMES + ("[vsyscall]",)


def _read(pid):
    for vma in proc.read_vmas(pid):
        if vma.path == "[vdso]":
            with open(f"/proc/{pid}/mem", "rb") as mem:
                mem.seek(vma.start)
                return mem.read(vma.length)
    return None


def identity(pid):
    """'build-id:<hex>' or 'sha256:<hex>' of process pid's vDSO, '' when it has none."""
    data = _read(pid)
    if data is None:
        return ""
    try:
        elf = ELFFile(io.BytesIO(data))
        for section in elf.iter_sections():
            if section.header.sh_type != "SHT_NOTE":
                continue
            for note in section.iter_notes():
                if note["n_type"] == "NT_GNU_BUILD_ID":
                    return f"build-id:{note['n_desc']}"
    except ELFError:
        pass
    return f"sha256:{hashlib.sha256(data).hexdigest()}"
