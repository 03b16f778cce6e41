#!/bin/busybox sh
# /init of the VM test tier's initramfs (tools/vm/vm.py build-initramfs).
# Everything run-specific comes from the kernel command line:
#   vmshares=TAG:MOUNTPOINT:ro|rw,...   9p shares; the first one is the new root (/host)
#   vm9p=9p2000.L                      9p protocol version
#   vmrepo=/abs/path                   where to cd inside the new root
#   vmout=/abs/path                    results folder (a rw share) inside the new root
# The guest command is $vmout/guest.sh; its output goes to $vmout/guest.log,
# its exit status to $vmout/exit-code, the kernel log to $vmout/dmesg.txt.
/bin/busybox mkdir -p /bin /sbin /usr/bin /usr/sbin
/bin/busybox --install -s
export PATH=/bin:/sbin:/usr/bin:/usr/sbin

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev

say() { echo "vm-init: $*"; }
die() { say "FATAL: $*"; dmesg | tail -n 30; poweroff -f; sleep 5; exit 1; }

for w in $(cat /proc/cmdline); do
  case "$w" in
    vmshares=*) SHARES="${w#vmshares=}" ;;
    vm9p=*) NINEP="${w#vm9p=}" ;;
    vmrepo=*) REPO="${w#vmrepo=}" ;;
    vmout=*) OUT="${w#vmout=}" ;;
  esac
done
: "${NINEP:=9p2000.L}"
[ -n "${SHARES:-}" ] || die "no vmshares= on the kernel command line"
[ -n "${OUT:-}" ] || die "no vmout= on the kernel command line"

# Modules in dependency order (computed on the host).  Required ones must load.
while read -r kind mod; do
  [ -n "$mod" ] || continue
  if ! insmod "/modules/$mod.ko"; then
    [ "$kind" = required ] && die "insmod $mod failed"
    say "optional module $mod did not load"
  fi
done < /modules/order

# 9p shares: the first becomes /host, the others are mounted at their
# absolute path inside it (onto existing directories of the read-only root).
first=1
IFS_SAVE="$IFS"; IFS=,
for s in $SHARES; do
  IFS="$IFS_SAVE"
  tag="${s%%:*}"; rest="${s#*:}"; mp="${rest%:*}"; mode="${rest##*:}"
  if [ "$mode" = ro ]; then opts="ro,cache=loose"; else opts="rw"; fi
  if [ $first = 1 ]; then target=/host; first=0; else target="/host$mp"; fi
  mkdir -p /host
  mount -t 9p -o "trans=virtio,version=$NINEP,msize=262144,$opts" "$tag" "$target" \
    || die "mount 9p $tag on $target failed"
  IFS=,
done
IFS="$IFS_SAVE"

R=/host
mount -t proc proc $R/proc || die "proc in root"
mount -t sysfs sysfs $R/sys || die "sysfs in root"
mount -t devtmpfs devtmpfs $R/dev || die "devtmpfs in root"
mkdir -p $R/dev/pts $R/dev/shm
mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts $R/dev/pts
mount -t tmpfs -o mode=1777 tmpfs $R/dev/shm
# The guest's own /tmp would hide a repo or results folder under the host's
# /tmp (CI may check out there): hold on to them and put them back on top.
i=0
for p in "${REPO:-/}" "$OUT"; do
  case "$p" in /tmp/*) mkdir -p /keep$i && mount -o bind "$R$p" /keep$i || die "bind $p" ;; esac
  i=$((i+1))
done
mount -t tmpfs -o mode=1777 tmpfs $R/tmp || die "tmpfs on /tmp"
i=0
for p in "${REPO:-/}" "$OUT"; do
  case "$p" in /tmp/*) mkdir -p "$R$p" && mount -o bind /keep$i "$R$p" || die "rebind $p" ;; esac
  i=$((i+1))
done
mount -t tmpfs -o mode=755 tmpfs $R/run 2>/dev/null || true

ip link set lo up 2>/dev/null || ifconfig lo 127.0.0.1 up 2>/dev/null || true

if [ -f /crak.ko ]; then
  if insmod /crak.ko; then
    echo loaded > $R$OUT/crak-status
    n=0; while [ ! -e /dev/crak ] && [ $n -lt 20 ]; do sleep 0.1; n=$((n+1)); done
    if [ -e /dev/crak ]; then echo present > $R$OUT/crak-dev; else echo absent > $R$OUT/crak-dev; fi
  else
    echo "insmod-failed $?" > $R$OUT/crak-status
  fi
else
  echo absent > $R$OUT/crak-status
fi

cut -d' ' -f1 /proc/uptime > $R$OUT/uptime-start
say "running $OUT/guest.sh in $REPO"
env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    HOME=/root TERM=dumb LANG=C.UTF-8 TMPDIR=/tmp VMOUT="$OUT" \
    chroot $R /bin/sh -c 'cd "$1" && exec /bin/sh "$2"' guest "${REPO:-/}" "$OUT/guest.sh" \
    > $R$OUT/guest.log 2>&1 < /dev/null
echo $? > $R$OUT/exit-code
cut -d' ' -f1 /proc/uptime > $R$OUT/uptime-end
dmesg > $R$OUT/dmesg.txt
sync
say "guest command exited $(cat $R$OUT/exit-code); powering off"
poweroff -f
