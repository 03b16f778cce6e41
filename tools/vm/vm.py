#!/usr/bin/env python3
"""VM test tier: boot Debian's own 6.1 kernel under qemu and run commands in it.

    tools/vm/vm.py fetch            [--arch A]   kernel image + headers -> .cache/vm/A/
    tools/vm/vm.py build-module     [--arch A]   make -C kmod KDIR=<headers>
    tools/vm/vm.py build-rootfs     [--arch A]   mmdebstrap rootfs (aarch64, mips64el)
    tools/vm/vm.py build-initramfs  [--arch A]   busybox + virtio/9p modules + crak.ko + /init
    tools/vm/vm.py run              [--arch A] [--guest-cmd CMD] [--timeout S]
    tools/vm/vm.py all              [--arch A]   fetch, build-module, build-initramfs, run

stdlib only.  Nothing is installed on the host except by install-deps.sh.
"""
from __future__ import annotations

import argparse
import fcntl
import glob
import gzip
import io
import json
import os
import shlex
import shutil
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import vm_arches as arches  # noqa: E402

TOOLS = Path(__file__).resolve().parent
REPO = TOOLS.parents[1]
DEFAULT_TIMEOUT = 70 * 60

# The default guest command (what CI runs, within its 90 minutes): the kmod
# backend over the module's tests and the host tests, less what does not
# depend on the backend or repeats a path already taken (the host runs all of
# it with ptrace): the no-checkpoint baselines, -R of most workloads (kept for
# a few of every kind), logic-only tests of supervise, TCP, incremental and
# CRIU flags; and the ptrace backend over the dump+restore of every workload
# (the guest adds the 6.1 kernel's paths).  Entries: a path or node id; "!ID"
# deselects (pytest --deselect: a node id prefix); "-k=EXPR" is pytest's -k
# (DEFAULT_RUNS only: PYCKPT_VM_RUNS splits on spaces).  FULL_RUNS is
# `make vm-test-full`; PYCKPT_VM_RUNS overrides, e.g. "kmod=tests/kmod,tests/host".
_LEAVE_RUNNING_KEPT = "counter or threads or tree or memory or files or unix or ptytree or shares or oddfds or delmaps"
DEFAULT_RUNS = {
    "kmod": ["tests/kmod", "tests/host",
             f"-k=not test_baseline and not (test_dump_leave_running and not ({_LEAVE_RUNNING_KEPT}))",
             "!tests/host/test_host_supervise.py::test_normal_exit", "!tests/host/test_host_supervise.py::test_crash_",
             "!tests/host/test_host_supervise.py::test_job_crashing", "!tests/host/test_host_supervise.py::test_resume",
             "!tests/host/test_host_supervise.py::test_adopted",
             "!tests/host/test_host_tcp.py::test_refused", "!tests/host/test_host_tcp.py::test_restored_closed",
             "!tests/host/test_host_tcp.py::test_closed_at_restore", "!tests/host/test_host_tcp.py::test_address",
             "!tests/host/test_host_tcp.py::test_block", "!tests/host/test_host_tcp.py::test_half_closed",
             "!tests/host/test_host_tcp.py::test_socket_filter", "!tests/host/test_host_tcp.py::test_repair_mode",
             "!tests/host/test_host_incremental.py::test_chain_compare",
             "!tests/host/test_host_incremental.py::test_missing_or_changed",
             "!tests/host/test_host_criu_flags.py",
             # test_host_bench: not yet run in the guest (a kmod bench there is its own, later step)
             "!tests/host/test_host_bench.py"],
    "ptrace": ["tests/host/test_host_workloads.py::test_dump_restore"],
}
FULL_RUNS = "kmod=tests/kmod,tests/host;ptrace=tests/host"
# The guest runs Python 10-15x slower than the host: every test timeout scales.
GUEST_ENV = {"PYTHONDONTWRITEBYTECODE": "1", "PYCKPT_TEST_BIG_MB": "256", "PYCKPT_TEST_TIMEOUT_SCALE": "10"}


def log(msg: str) -> None:
    print(f"vm: {msg}", file=sys.stderr, flush=True)


def cache_dir(arch: arches.Arch) -> Path:
    return REPO / ".cache" / "vm" / arch.name


def out_dir(arch: arches.Arch) -> Path:
    return cache_dir(arch) / "out"


def sh(cmd, **kw) -> subprocess.CompletedProcess:
    kw.setdefault("check", True)
    return subprocess.run(cmd, **kw)


def capture(cmd) -> str:
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


# --------------------------------------------------------------------- fetch
def _apt_field(pkg: str, fld: str) -> str:
    text = capture(["apt-cache", "show", "--no-all-versions", pkg])
    for line in text.splitlines():
        if line.startswith(fld + ":"):
            return line.split(":", 1)[1].strip()
    raise SystemExit(f"apt-cache show {pkg}: no {fld} field")


def resolve_kernel(arch: arches.Arch) -> dict:
    """Find the versioned image package the metapackage depends on."""
    meta = f"{arch.kernel_meta}:{arch.deb_arch}"
    try:
        deps = capture(["apt-cache", "depends", meta])
    except subprocess.CalledProcessError:
        raise SystemExit(f"apt-cache knows no {meta}: run tools/vm/install-deps.sh {arch.name}")
    image = None
    for line in deps.splitlines():
        line = line.strip()
        if line.startswith("Depends:") and arch.image_prefix in line:
            image = line.split(":", 1)[1].strip().split(":")[0]
            break
    if not image:
        raise SystemExit(f"{meta} depends on no {arch.image_prefix}* package")
    release = image[len(arch.image_prefix):]            # e.g. 6.1.0-56-amd64
    flavour_at = release.index("-", release.index("-") + 1)
    abi = release[:flavour_at]                          # e.g. 6.1.0-56
    version = _apt_field(f"{image}:{arch.deb_arch}", "Version")  # e.g. 6.1.192-2
    return {"release": release, "abi": abi, "version": version, "image": image}


def fetch(arch: arches.Arch) -> dict:
    cdir = cache_dir(arch)
    stamp = cdir / "fetched.json"
    if stamp.exists():
        info = json.loads(stamp.read_text())
        if Path(info["kernel"]).exists() and Path(info["headers"]).is_dir():
            log(f"fetch: cached ({info['release']}, {info['version']})")
            return info
    t0 = time.monotonic()
    k = resolve_kernel(arch)
    debs = cdir / "debs"
    root = cdir / "kernel"
    if root.exists():
        shutil.rmtree(root)
    debs.mkdir(parents=True, exist_ok=True)
    root.mkdir(parents=True)
    da, v = arch.deb_arch, k["version"]
    wanted = [
        f"{k['image']}:{da}={v}",
        f"linux-headers-{k['release']}:{da}={v}",
        f"linux-headers-{k['abi']}-common={v}",
        # helper binaries for the headers run on the host: amd64 kbuild
        f"{arch.kbuild_pkg}:amd64={v}",
        f"busybox-static:{da}",
    ]
    log(f"fetch: apt-get download {' '.join(wanted)}")
    for f in debs.glob("*.deb"):
        f.unlink()
    sh(["apt-get", "download", "-q"] + wanted, cwd=debs, stderr=subprocess.DEVNULL)
    for deb in sorted(debs.glob("*.deb")):
        sh(["dpkg-deb", "-x", str(deb), str(root)])
    headers = root / "usr/src" / f"linux-headers-{k['release']}"
    # The flavour Makefile includes the -common tree by absolute path under
    # /usr/src: repoint it at our unpacked copy so nothing is installed.
    mk = headers / "Makefile"
    txt = mk.read_text()
    mk.write_text(txt.replace("include /usr/src/", f"include {root}/usr/src/"))
    kernels = sorted(glob.glob(str(root / arch.kernel_file_glob)))
    if not kernels:
        raise SystemExit(f"fetch: no {arch.kernel_file_glob} in {k['image']}")
    busybox = root / "bin/busybox"
    if not busybox.exists():
        raise SystemExit("fetch: busybox-static has no bin/busybox")
    info = dict(k, arch=arch.name, kernel=kernels[0], headers=str(headers),
                modules=str(root / "lib/modules" / k["release"]), busybox=str(busybox))
    stamp.write_text(json.dumps(info, indent=1) + "\n")
    log(f"fetch: done in {time.monotonic() - t0:.1f}s: {k['image']} {v}")
    return info


def fetched(arch: arches.Arch) -> dict:
    stamp = cache_dir(arch) / "fetched.json"
    if not stamp.exists():
        raise SystemExit(f"nothing fetched for {arch.name}: run `tools/vm/vm.py fetch --arch {arch.name}`")
    return json.loads(stamp.read_text())


# -------------------------------------------------------------- build-module
def build_module(arch: arches.Arch) -> Path | None:
    info = fetched(arch)
    # PYCKPT_VM_KMOD_DIR: build another Kbuild module dir as crak.ko (testing the harness)
    kmod = Path(os.environ.get("PYCKPT_VM_KMOD_DIR") or REPO / "kmod")
    dest = cache_dir(arch) / "crak.ko"
    if not ((kmod / "Makefile").exists() or (kmod / "Kbuild").exists()):
        log("build-module: kmod/ has no Makefile or Kbuild: crak.ko is absent, the guest will not load it")
        dest.unlink(missing_ok=True)
        return None
    if (kmod / "Makefile").exists():
        cmd = ["make", "-C", str(kmod), f"KDIR={info['headers']}"]
    else:  # a bare Kbuild file: drive kbuild directly
        cmd = ["make", "-C", info["headers"], f"M={kmod}", "modules"]
    if arch.cross_compile:
        cmd.append(f"CROSS_COMPILE={arch.cross_compile}")
    log("build-module: " + " ".join(cmd))
    t0 = time.monotonic()
    # Called from `make vm-test ARCH=aarch64`, MAKEFLAGS would pass our ARCH
    # name (not kbuild's) down to kbuild: drop the outer make's variables.
    env = {k: v for k, v in os.environ.items()
           if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES", "ARCH")}
    try:
        sh(cmd, env=env)
    except subprocess.CalledProcessError as e:
        raise SystemExit(f"build-module: FAILED ({shlex.join(cmd)} exited {e.returncode})")
    built = kmod / "crak.ko"
    if not built.exists():
        raise SystemExit(f"build-module: make succeeded but {built} is missing")
    shutil.copy2(built, dest)
    log(f"build-module: {dest} ({time.monotonic() - t0:.1f}s)")
    return dest


# ----------------------------------------------------------- module deps
def _elf_section(data: bytes, name: str) -> bytes:
    """Return the contents of section NAME of an ELF file (32/64, LE/BE)."""
    if data[:4] != b"\x7fELF":
        raise ValueError("not ELF")
    is64 = data[4] == 2
    end = "<" if data[5] == 1 else ">"
    if is64:
        shoff, = struct.unpack_from(end + "Q", data, 0x28)
        shentsize, shnum, shstrndx = struct.unpack_from(end + "HHH", data, 0x3A)
        fmt, off_i, size_i = end + "IIQQQQIIQQ", 4, 5
    else:
        shoff, = struct.unpack_from(end + "I", data, 0x20)
        shentsize, shnum, shstrndx = struct.unpack_from(end + "HHH", data, 0x2E)
        fmt, off_i, size_i = end + "IIIIIIIIII", 4, 5
    secs = [struct.unpack_from(fmt, data, shoff + i * shentsize) for i in range(shnum)]
    strtab = secs[shstrndx]
    strs = data[strtab[off_i]:strtab[off_i] + strtab[size_i]]
    for s in secs:
        n = strs[s[0]:strs.index(b"\0", s[0])].decode()
        if n == name:
            return data[s[off_i]:s[off_i] + s[size_i]]
    return b""


def modinfo_depends(path: Path) -> list[str]:
    info = _elf_section(path.read_bytes(), ".modinfo")
    for item in info.split(b"\0"):
        if item.startswith(b"depends="):
            return [d for d in item[8:].decode().split(",") if d]
    return []


def module_index(moddir: Path) -> dict[str, Path]:
    idx = {}
    for p in moddir.rglob("*.ko"):
        idx[p.name[:-3].replace("-", "_")] = p
    return idx


def module_order(leaves, idx: dict[str, Path], done: list[str]) -> list[str]:
    """Dependencies first; names missing from idx are built in (skipped)."""
    def visit(name, stack=()):
        name = name.replace("-", "_")
        if name in done or name not in idx:
            return
        if name in stack:
            raise SystemExit(f"module dependency cycle at {name}")
        for d in modinfo_depends(idx[name]):
            visit(d, stack + (name,))
        done.append(name)
    for leaf in leaves:
        visit(leaf)
    return done


# ---------------------------------------------------------------- initramfs
class Cpio:
    """Minimal writer for the newc cpio format the kernel unpacks."""

    def __init__(self):
        self.buf = io.BytesIO()
        self.ino = 1

    def _add(self, name: str, mode: int, data: bytes = b"", rdev=(0, 0), nlink=1):
        nm = name.encode() + b"\0"
        hdr = "070701" + "".join(f"{x:08x}" for x in (
            self.ino, mode, 0, 0, nlink, 0, len(data), 0, 0, rdev[0], rdev[1], len(nm), 0))
        self.ino += 1
        self.buf.write(hdr.encode() + nm)
        self.buf.write(b"\0" * (-(110 + len(nm)) % 4))
        self.buf.write(data)
        self.buf.write(b"\0" * (-len(data) % 4))

    def dir(self, name):
        self._add(name, 0o040755, nlink=2)

    def file(self, name, data: bytes, mode=0o644):
        self._add(name, 0o100000 | mode, data)

    def chardev(self, name, major, minor, mode=0o600):
        self._add(name, 0o020000 | mode, rdev=(major, minor))

    def finish(self) -> bytes:
        self._add("TRAILER!!!", 0)
        return self.buf.getvalue()


def build_initramfs(arch: arches.Arch) -> Path:
    info = fetched(arch)
    t0 = time.monotonic()
    idx = module_index(Path(info["modules"]))
    required = module_order(arch.modules, idx, [])
    missing = [m for m in arch.modules if m not in idx and m.replace("-", "_") not in required]
    optional = [m for m in module_order(arch.extra_modules, idx, list(required)) if m not in required]
    c = Cpio()
    for d in ("bin", "dev", "proc", "sys", "tmp", "host", "modules"):
        c.dir(d)
    c.chardev("dev/console", 5, 1)
    c.chardev("dev/null", 1, 3, 0o666)
    c.file("bin/busybox", Path(info["busybox"]).read_bytes(), 0o755)
    c.file("init", (TOOLS / "init.sh").read_bytes(), 0o755)
    order = [f"required {m}" for m in required] + [f"optional {m}" for m in optional]
    c.file("modules/order", ("\n".join(order) + "\n").encode())
    for m in required + optional:
        c.file(f"modules/{m}.ko", idx[m].read_bytes())
    ko = cache_dir(arch) / "crak.ko"
    if ko.exists():
        c.file("crak.ko", ko.read_bytes())
    dest = cache_dir(arch) / "initramfs.cpio.gz"
    tmp = dest.with_suffix(".tmp")
    tmp.write_bytes(gzip.compress(c.finish(), compresslevel=1))
    tmp.rename(dest)
    (cache_dir(arch) / "initramfs.json").write_text(json.dumps(
        {"modules": required, "optional": optional, "crak": ko.exists()}, indent=1) + "\n")
    log(f"build-initramfs: {dest} ({dest.stat().st_size // 1024} KiB, modules "
        f"{' '.join(required)}; optional {' '.join(optional) or '-'}; "
        f"crak.ko {'included' if ko.exists() else 'absent'}; {time.monotonic() - t0:.1f}s)")
    if missing:
        log(f"build-initramfs: not found as modules (assumed built in): {' '.join(missing)}")
    return dest


# -------------------------------------------------------------------- rootfs
def _mirror() -> str:
    """The Debian mirror from the machine's apt sources (deb822 or one-line)."""
    for f in ["/etc/apt/sources.list"] + sorted(glob.glob("/etc/apt/sources.list.d/*")):
        try:
            text = Path(f).read_text()
        except OSError:
            continue
        for line in text.splitlines():
            w = line.split()
            if not w or w[0].startswith("#"):
                continue
            if w[0] == "URIs:" and len(w) > 1 and "security" not in w[1]:
                return w[1]
            if w[0] == "deb":
                urls = [x for x in w[1:] if "://" in x]
                if urls and "security" not in urls[0]:
                    return urls[0]
    raise SystemExit("no Debian mirror found in /etc/apt/sources.list*")


GUEST_SITE = "/opt/pyckpt-site"   # the project's Python deps inside a rootfs


def project_requirements() -> list[str]:
    import tomllib
    try:
        proj = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    except (OSError, KeyError):
        return ["pytest"]
    reqs = list(proj.get("dependencies", []))
    # the runtime deps and the test extra (not build tools such as grpcio-tools)
    reqs += [r for r in proj.get("optional-dependencies", {}).get("test", []) if r not in reqs]
    if not any(r.split(">")[0].split("=")[0].strip() == "pytest" for r in reqs):
        reqs.append("pytest")
    return reqs


def build_pydeps(arch: arches.Arch, rootfs: Path) -> None:
    """pip-install the project's deps for the guest arch into rootfs/opt/pyckpt-site,
    from the host (pip --platform/--target), so nothing runs under emulation."""
    reqs = project_requirements()
    stamp = cache_dir(arch) / "pydeps.json"
    if stamp.exists() and json.loads(stamp.read_text()) == reqs:
        log(f"build-rootfs: python deps cached in {GUEST_SITE}")
        return
    target = rootfs / GUEST_SITE.lstrip("/")
    if target.exists():
        shutil.rmtree(target)
    cmd = [sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check",
           "--target", str(target), "--only-binary=:all:", "--python-version",
           "3.11", "--implementation", "cp", "--abi", "cp311", "--abi", "abi3", "--abi", "none"]
    for plat in arch.pip_platforms:
        cmd += ["--platform", plat]
    log(f"build-rootfs: pip install for {arch.deb_arch}: {' '.join(reqs)}")
    sh(cmd + reqs)
    stamp.write_text(json.dumps(reqs) + "\n")


def build_rootfs(arch: arches.Arch) -> Path:
    rootfs = cache_dir(arch) / "rootfs"
    stamp = cache_dir(arch) / "rootfs.done"
    if arch.root != "rootfs":
        log(f"build-rootfs: {arch.name} shares the host root; nothing to build")
        return Path("/")
    want = {"packages": list(arch.rootfs_packages)}
    try:
        have = json.loads(stamp.read_text())
    except (OSError, ValueError):
        have = None
    if have == want and rootfs.is_dir():
        log(f"build-rootfs: cached at {rootfs}")
        build_pydeps(arch, rootfs)
        return rootfs
    if rootfs.exists():
        # a killed mmdebstrap can leave proc/sys/dev mounted inside: never
        # rmtree through a mount
        busy = [ln.split()[1] for ln in Path("/proc/self/mounts").read_text().splitlines()
                if ln.split()[1].startswith(str(rootfs) + "/")]
        if busy:
            raise SystemExit(f"build-rootfs: mounts left inside {rootfs}: {' '.join(busy)}; "
                             "umount them, then retry")
        shutil.rmtree(rootfs)
    t0 = time.monotonic()
    cmd = ["mmdebstrap", f"--arch={arch.deb_arch}", "--variant=apt",
           "--include=" + ",".join(arch.rootfs_packages),
           "bookworm", str(rootfs), f"deb {_mirror()} bookworm main"]
    log("build-rootfs: " + " ".join(cmd))
    sh(cmd)
    stamp.write_text(json.dumps(want) + "\n")
    log(f"build-rootfs: done in {time.monotonic() - t0:.0f}s")
    build_pydeps(arch, rootfs)
    return rootfs


def _ensure_mountpoints(rootfs: Path, paths) -> None:
    """A read-only 9p root needs the directories we mount onto to exist."""
    for p in paths:
        (rootfs / p.lstrip("/")).mkdir(parents=True, exist_ok=True)


# ----------------------------------------------------------------------- run
def parse_runs(spec: str | None) -> dict:
    if not spec:
        return dict(DEFAULT_RUNS)
    if spec.strip() == "full":
        spec = FULL_RUNS
    runs = {}
    for part in spec.split(";"):
        part = part.strip()
        if part:
            name, _, paths = part.partition("=")
            runs[name.strip()] = [p for p in paths.replace(",", " ").split() if p]
    return runs


def _has_tests(path: Path) -> bool:
    # a pytest node id (tests/host/test_x.py::test_y[case]) names its file
    path = Path(str(path).split("::", 1)[0])
    if path.is_file():
        return True
    return path.is_dir() and (any(path.rglob("test_*.py")) or any(path.rglob("*_test.py")))


def guest_script(arch: arches.Arch, out: str, guest_cmd: str | None, runs: dict) -> tuple[str, dict]:
    """Shell script run by /bin/sh in the guest's chroot, cwd = the repo."""
    lines = ["# generated by tools/vm/vm.py run", "set -u"]
    lines += [f"export {k}={shlex.quote(v)}" for k, v in GUEST_ENV.items()]
    lines.append(f"OUT={shlex.quote(out)}")
    plan = {"arch": arch.name, "runs": {}, "guest_cmd": guest_cmd}
    if arch.root != "host":
        # the venv on the share is the host's arch: use the rootfs python3,
        # the deps pip-installed for the guest arch, and the repo as it is
        lines.append(f"export PYTHONPATH={shlex.quote(GUEST_SITE + ':' + str(REPO))}")
    if guest_cmd is not None:
        lines.append(guest_cmd)
        return "\n".join(lines) + "\n", plan
    if arch.root == "host":
        py = str(REPO / ".venv/bin/python")
    else:
        py = "python3"
    lines += ["rc=0", "echo \"guest: $(uname -r) $(uname -m)\"", f"{shlex.quote(py)} -V"]
    for name, paths in runs.items():
        deselect = [p[1:] for p in paths if p.startswith("!")]
        keyword = " and ".join(f"({p[3:]})" for p in paths if p.startswith("-k="))
        present = [p for p in paths if not p.startswith(("!", "-k=")) and _has_tests(REPO / p)]
        entry = {"paths": paths, "present": present, "deselect": deselect, "keyword": keyword,
                 "junit": f"junit-{name}.xml"}
        plan["runs"][name] = entry
        if not present:
            entry["skipped"] = f"no tests under {' '.join(paths)}"
            lines.append(f"echo 'guest: run {name}: skipped, {entry['skipped']}'")
            continue
        lines.append(f"echo 'guest: run {name}: pytest {' '.join(present)}'")
        lines.append(
            f"PYCKPT_TEST_BACKEND={shlex.quote(name)} {shlex.quote(py)} -m pytest -p no:cacheprovider -q "
            f"--junitxml=\"$OUT/junit-{name}.xml\" {' '.join(map(shlex.quote, present))} "
            f"{''.join(' --deselect=' + shlex.quote(d) for d in deselect)} "
            f"{'-k ' + shlex.quote(keyword) if keyword else ''} "
            f"> \"$OUT/pytest-{name}.log\" 2>&1; r=$?; echo $r > \"$OUT/rc-{name}\"; "
            f"tail -n 30 \"$OUT/pytest-{name}.log\"; [ $r = 0 ] || rc=$r")
        # The guest's /tmp is a RAM disk: what one run's tests left there
        # (images of the big-memory workload) must not fill it for the next.
        lines.append("rm -rf /tmp/pytest-of-*")
    lines.append("exit $rc")
    return "\n".join(lines) + "\n", plan


def qemu_command(arch: arches.Arch, info: dict, shares, out: str) -> list[str]:
    cmdline = [f"console={arch.console}", "quiet", "panic=-1",
               "vmshares=" + ",".join(f"{t}:{g}:{m}" for t, _, g, m in shares),
               f"vm9p={arch.ninep_version}", f"vmrepo={REPO}", f"vmout={out}"]
    cmd = [arch.qemu, *arch.machine_args, "-m", "2048", "-nographic", "-no-reboot",
           "-nic", "none", "-kernel", info["kernel"],
           "-initrd", str(cache_dir(arch) / "initramfs.cpio.gz"),
           "-append", " ".join(cmdline), *arch.extra_qemu_args]
    for tag, host, _, mode in shares:
        ro = ",readonly=on" if mode == "ro" else ""
        cmd += ["-virtfs", f"local,path={host},mount_tag={tag},security_model=passthrough,multidevs=remap{ro}"]
    return cmd


def run(arch: arches.Arch, guest_cmd: str | None = None, runs: dict | None = None,
        timeout: float | None = None, echo: bool = False) -> dict:
    """Boot the guest, run the command, return a summary (also out/result.json)."""
    info = fetched(arch)
    if not (cache_dir(arch) / "initramfs.cpio.gz").exists():
        raise SystemExit(f"no initramfs for {arch.name}: run `tools/vm/vm.py build-initramfs`")
    if shutil.which(arch.qemu) is None:
        raise SystemExit(f"{arch.qemu} not found: run tools/vm/install-deps.sh {arch.name}")
    timeout = timeout or float(os.environ.get("PYCKPT_VM_TIMEOUT", DEFAULT_TIMEOUT))
    runs = runs if runs is not None else parse_runs(os.environ.get("PYCKPT_VM_RUNS"))
    outp = out_dir(arch)
    for p in (str(REPO), str(outp)):
        if any(ch.isspace() for ch in p):
            raise SystemExit(f"paths with whitespace cannot go on the kernel command line: {p!r}")
    lockf = open(cache_dir(arch) / "run.lock", "w")
    fcntl.flock(lockf, fcntl.LOCK_EX)
    if outp.exists():
        shutil.rmtree(outp)
    outp.mkdir(parents=True)
    if arch.root == "host":
        shares = [("hostroot", "/", "/", "ro")]
    else:
        rootfs = cache_dir(arch) / "rootfs"
        if not (cache_dir(arch) / "rootfs.done").exists():
            raise SystemExit(f"no rootfs for {arch.name}: run `tools/vm/vm.py build-rootfs --arch {arch.name}`")
        _ensure_mountpoints(rootfs, [str(REPO)])
        shares = [("hostroot", str(rootfs), "/", "ro"), ("repo", str(REPO), str(REPO), "ro")]
    shares.append(("results", str(outp), str(outp), "rw"))
    script, plan = guest_script(arch, str(outp), guest_cmd, runs)
    (outp / "guest.sh").write_text(script)
    (outp / "plan.json").write_text(json.dumps(plan, indent=1) + "\n")
    cmd = qemu_command(arch, info, shares, str(outp))
    (outp / "qemu-cmd.txt").write_text(shlex.join(cmd) + "\n")
    log(f"run: booting {info['release']} under {arch.qemu} (timeout {timeout:.0f}s); "
        f"console -> {outp / 'console.log'}")
    t0 = time.monotonic()
    timed_out = False
    with open(outp / "console.log", "wb") as con:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=con,
                                stderr=subprocess.STDOUT, start_new_session=True)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    wall = time.monotonic() - t0
    res = collect(arch)
    res.update(wall_s=round(wall, 1), qemu_rc=proc.returncode, timed_out=timed_out,
               timeout_s=timeout, release=info["release"])
    if timed_out:
        res["error"] = (f"TIMEOUT: qemu killed after {timeout:.0f}s; the guest did not power off. "
                        f"See {outp / 'console.log'} and {outp / 'guest.log'}")
    elif res["exit_code"] is None:
        res["error"] = (f"guest wrote no exit code (qemu exited {proc.returncode}); "
                        f"see {outp / 'console.log'}")
    (outp / "result.json").write_text(json.dumps(res, indent=1) + "\n")
    log(f"run: {'TIMED OUT' if timed_out else 'done'} in {wall:.1f}s; guest exit code "
        f"{res['exit_code']}; guest command took {res.get('guest_s')}s; results in {outp}")
    if res.get("error"):
        log(res["error"])
    if echo:
        sys.stdout.write(res["guest_log_tail"])
    lockf.close()
    return res


def _read(p: Path) -> str | None:
    try:
        return p.read_text(errors="replace")
    except OSError:
        return None


def collect(arch: arches.Arch) -> dict:
    """Read what the last guest run left in out/ (no judgement)."""
    outp = out_dir(arch)
    rc = _read(outp / "exit-code")
    log_ = _read(outp / "guest.log") or ""
    start, end = _read(outp / "uptime-start"), _read(outp / "uptime-end")
    return {
        "out": str(outp),
        "exit_code": int(rc) if rc and rc.strip().lstrip("-").isdigit() else None,
        "crak": (_read(outp / "crak-status") or "").strip() or None,
        "crak_dev": (_read(outp / "crak-dev") or "").strip() or None,
        "boot_s": float(start) if start else None,
        "guest_s": round(float(end) - float(start), 1) if start and end else None,
        "guest_log_tail": "\n".join(log_.splitlines()[-40:]) + "\n",
    }


# ----------------------------------------------------------------------- cli
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("step", choices=["fetch", "build-module", "build-rootfs", "build-initramfs", "run", "all"])
    ap.add_argument("--arch", default=os.environ.get("PYCKPT_VM_ARCH", "x86_64"))
    ap.add_argument("--guest-cmd", help="shell command to run in the guest instead of the test suite "
                    "(cwd = the repo; $OUT = the results folder)")
    ap.add_argument("--runs", help='test runs, e.g. "kmod=tests/kmod,tests/host;ptrace=tests/host"')
    ap.add_argument("--timeout", type=float, help=f"seconds for the whole qemu run (default {DEFAULT_TIMEOUT})")
    a = ap.parse_args(argv)
    arch = arches.get(a.arch)
    cache_dir(arch).mkdir(parents=True, exist_ok=True)
    if a.step in ("fetch", "all"):
        fetch(arch)
    if a.step == "build-rootfs" or (a.step == "all" and arch.root == "rootfs"):
        build_rootfs(arch)
    if a.step in ("build-module", "all"):
        build_module(arch)
    if a.step in ("build-initramfs", "all"):
        build_initramfs(arch)
    if a.step in ("run", "all"):
        res = run(arch, a.guest_cmd, parse_runs(a.runs or os.environ.get("PYCKPT_VM_RUNS")),
                  a.timeout, echo=True)
        if res.get("error"):
            return 3
        return res["exit_code"]
    return 0


if __name__ == "__main__":
    sys.exit(main())
