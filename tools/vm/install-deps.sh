#!/bin/sh
# Install, idempotently, the Debian packages the VM test tier needs on the host.
# (busybox-static for the guest is downloaded and unpacked by vm.py fetch, for
# the guest's arch, so it is not installed here.)
# usage: tools/vm/install-deps.sh [ARCH]   (ARCH: x86_64 | aarch64 | mips64el)
# Nothing here installs a kernel on the host: kernels are downloaded and
# unpacked into .cache/vm/<arch>/ by tools/vm/vm.py fetch.
set -eu
ARCH="${1:-${ARCH:-x86_64}}"

# Common: module build (gcc 12 == Debian 6.1's compiler, kbuild helpers need
# libelf/flex/bison/bc), and dpkg-deb/apt-get for fetching.
pkgs="make gcc libc6-dev bc flex bison libelf-dev dpkg-dev xz-utils"
case "$ARCH" in
  x86_64|amd64)
    pkgs="$pkgs qemu-system-x86" ;;
  aarch64|arm64)
    pkgs="$pkgs qemu-system-arm gcc-aarch64-linux-gnu mmdebstrap arch-test qemu-user-static binfmt-support"
    foreign=arm64 ;;
  mips64el)
    pkgs="$pkgs qemu-system-mips gcc-mips64el-linux-gnuabi64 mmdebstrap arch-test qemu-user-static binfmt-support e2fsprogs"
    foreign=mips64el ;;
  *) echo "install-deps: unknown ARCH '$ARCH'" >&2; exit 2 ;;
esac

need_update=0
if [ -n "${foreign:-}" ] && ! dpkg --print-foreign-architectures | grep -qx "$foreign"; then
  dpkg --add-architecture "$foreign"
  need_update=1
fi

missing=""
for p in $pkgs; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing="$missing $p"
  fi
done

# apt lists: needed for installing and for `apt-get download` of kernels.
if [ "$need_update" = 1 ] || [ -z "$(ls -A /var/lib/apt/lists 2>/dev/null | grep -v -e lock -e partial)" ] \
   || ! apt-cache policy linux-image-amd64 | grep -q Candidate; then
  apt-get update -q
fi

if [ -n "$missing" ]; then
  echo "install-deps: installing:$missing"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing
else
  echo "install-deps: all present for $ARCH"
fi

# Foreign-arch rootfs builds (mmdebstrap) run the guest's binaries through
# qemu-user: binfmt_misc must be mounted and the interpreter registered.
if [ -n "${foreign:-}" ]; then
  case "$foreign" in arm64) q=qemu-aarch64 ;; *) q=qemu-$foreign ;; esac
  [ -e /proc/sys/fs/binfmt_misc/status ] || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
  [ -e "/proc/sys/fs/binfmt_misc/$q" ] || update-binfmts --enable "$q"
fi
