"""Per-architecture facts for the VM test tier, in one place.

Everything that differs between x86_64, aarch64 and mips64el guests lives in
the ARCHES table below; the rest of tools/vm/ reads it and never branches on
an arch name itself.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Arch:
    name: str                    # our name, as in `make vm-test ARCH=...`
    deb_arch: str                # Debian architecture of the guest packages
    kernel_meta: str             # metapackage whose Depends names the versioned image
    image_prefix: str            # versioned image package = image_prefix + release
    qemu: str                    # qemu system binary
    qemu_pkg: str                # Debian package that provides it
    machine_args: tuple          # -M/-cpu/-smp and the like
    console: str                 # serial console device for console=
    # Modules the guest needs for the 9p shares (leaves; their `depends=` are
    # resolved from the unpacked modules, so built-in ones simply drop out).
    modules: tuple
    # Modules loaded when present but whose failure is not fatal (CRIU in the
    # guest needs nftables and a crc32c implementation; pyckpt's unix socket
    # dump needs sock_diag for AF_UNIX, its inet one sock_diag for TCP and UDP, and
    # nf_tables to block connections: modules in Debian's kernels).
    extra_modules: tuple = ("crc32c_generic", "nf_tables", "unix_diag", "inet_diag", "tcp_diag", "udp_diag")
    cross_compile: str = ""      # CROSS_COMPILE for the module build
    cross_gcc_pkg: str = ""      # package providing that cross gcc
    ninep_version: str = "9p2000.L"
    # "host": share the host's own root (same arch userland, python + venv run
    # unchanged).  "rootfs": a cached mmdebstrap rootfs of the guest arch is
    # the root; the repo is shared on top of it.
    root: str = "host"
    rootfs_packages: tuple = ()
    # kbuild helper binaries (scripts/, tools/) come from the amd64
    # linux-kbuild package of the same source version as the image.
    kbuild_pkg: str = "linux-kbuild-6.1"
    kernel_file_glob: str = "boot/vmlinuz-*"
    # pip --platform tags for installing the project's Python deps into the
    # rootfs from the host (rootfs arches only; Debian's protobuf is too old)
    pip_platforms: tuple = ()
    notes: str = ""
    extra_qemu_args: tuple = field(default_factory=tuple)


_VIRTIO_9P = ("virtio_pci", "9pnet_virtio", "9p")

ARCHES = {
    "x86_64": Arch(
        name="x86_64",
        deb_arch="amd64",
        kernel_meta="linux-image-amd64",
        image_prefix="linux-image-",
        qemu="qemu-system-x86_64",
        qemu_pkg="qemu-system-x86",
        # KVM hangs on these machines: TCG only.
        machine_args=("-accel", "tcg", "-cpu", "max", "-smp", "2"),
        console="ttyS0",
        modules=_VIRTIO_9P,
    ),
    "aarch64": Arch(
        name="aarch64",
        deb_arch="arm64",
        kernel_meta="linux-image-arm64",
        image_prefix="linux-image-",
        qemu="qemu-system-aarch64",
        qemu_pkg="qemu-system-arm",
        # plain -cpu max emulates pointer authentication ~5x slower
        machine_args=("-M", "virt", "-accel", "tcg", "-cpu", "max,pauth-impdef=on", "-smp", "2"),
        console="ttyAMA0",
        modules=_VIRTIO_9P,
        cross_compile="aarch64-linux-gnu-",
        cross_gcc_pkg="gcc-aarch64-linux-gnu",
        root="rootfs",
        pip_platforms=("manylinux_2_36_aarch64", "manylinux2014_aarch64", "linux_aarch64"),
        rootfs_packages=("python3", "python3-venv", "python3-pytest", "gcc", "make", "libc6-dev"),
    ),
    "mips64el": Arch(
        name="mips64el",
        deb_arch="mips64el",
        # the mips64r2el flavour does not boot on malta: 5kc-malta only
        kernel_meta="linux-image-5kc-malta",
        image_prefix="linux-image-",
        qemu="qemu-system-mips64el",
        qemu_pkg="qemu-system-mips",
        machine_args=("-M", "malta", "-accel", "tcg", "-cpu", "MIPS64R2-generic", "-smp", "1"),
        console="ttyS0",
        modules=_VIRTIO_9P,
        cross_compile="mips64el-linux-gnuabi64-",
        cross_gcc_pkg="gcc-mips64el-linux-gnuabi64",
        # 9p2000.L passes host errno values raw; they differ on MIPS and
        # break exec ("Socket operation on non-socket").
        ninep_version="9p2000.u",
        root="rootfs",
        pip_platforms=("linux_mips64",),  # no binary wheels: pure-Python ones only
        rootfs_packages=("python3", "python3-venv", "python3-pytest", "gcc", "make", "libc6-dev"),
        notes="one CPU only on malta",
    ),
}

ALIASES = {"amd64": "x86_64", "arm64": "aarch64", "mips64r2el": "mips64el"}


def get(name: str) -> Arch:
    name = ALIASES.get(name, name)
    try:
        return ARCHES[name]
    except KeyError:
        raise SystemExit(f"unknown ARCH {name!r}; known: {', '.join(ARCHES)}") from None
