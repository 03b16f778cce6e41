"""Credentials of a restored thread: bounding set, securebits, groups, uids and
gids, capabilities (effective, permitted, inheritable, ambient), no_new_privs,
dumpable. Per thread in the kernel, so every thread sets its own, last."""

import os
import struct

from ..errors import AccessDenied, RestoreConflict

PR_SET_DUMPABLE = 4
PR_SET_KEEPCAPS = 8
PR_CAPBSET_DROP = 24
PR_SET_SECUREBITS = 28
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, PR_CAP_AMBIENT_CLEAR_ALL = 47, 2, 4
SECBIT_KEEP_CAPS = 1 << 4
_LINUX_CAPABILITY_VERSION_3 = 0x20080522


CAP_SYS_ADMIN = 21
CAP_CHECKPOINT_RESTORE = 40


def caller_creds(pid="self"):
    """(uids, gids, CapEff, CapPrm) of the restoring process, from /proc."""
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            fields[key] = value.split()
    return ([int(v) for v in fields["Uid"]], [int(v) for v in fields["Gid"]],
            int(fields["CapEff"][0], 16), int(fields["CapPrm"][0], 16))


def check_caller_may_restore(image, caller=None):
    """The rule: restoring takes CAP_CHECKPOINT_RESTORE (or CAP_SYS_ADMIN), as clone3 set_tid does;
    a caller that is not root may restore only processes with its own uids and gids and no
    capability it does not hold itself. An image cannot be a way to gain rights."""
    uids, gids, cap_eff, cap_prm = caller or caller_creds()
    if not cap_eff & (1 << CAP_CHECKPOINT_RESTORE | 1 << CAP_SYS_ADMIN):
        raise AccessDenied("restore needs root, or CAP_CHECKPOINT_RESTORE (clone3 with a chosen PID)")
    if uids[1] == 0:
        return
    for pid, task in image.tasks.items():
        c = task.creds
        image_uids = {c.uid, c.euid, c.suid, c.fsuid}
        image_gids = {c.gid, c.egid, c.sgid, c.fsgid} | set(c.groups)
        if not image_uids <= set(uids) or not image_gids <= set(gids):
            raise AccessDenied(f"process {pid} of the image runs as uid {c.euid} gid {c.egid}: "
                               f"only root restores processes of other users")
        extra = (c.cap_prm | c.cap_eff | c.cap_inh | c.cap_amb) & ~cap_prm
        if extra:
            raise AccessDenied(f"process {pid} of the image holds capabilities {extra:#x} the caller lacks")


CAP_SYS_RESOURCE = 24


def check_rlimits(image, caller=None):
    """Raising a hard limit above pyckpt's own takes CAP_SYS_RESOURCE (the stubs inherit pyckpt's
    limits); RLIMIT_NOFILE never goes above fs.nr_open. Checked before anything is created."""
    import resource
    cap_eff = (caller or caller_creds())[2]
    with open("/proc/sys/fs/nr_open") as f:
        nr_open = int(f.read())
    for pid, task in image.tasks.items():
        for limit in task.rlimits:
            if limit.resource == resource.RLIMIT_NOFILE and limit.max > nr_open:
                raise RestoreConflict(f"process {pid}: RLIMIT_NOFILE hard limit {limit.max} is above "
                                      f"this machine's fs.nr_open {nr_open}")
            if cap_eff & (1 << CAP_SYS_RESOURCE):
                continue
            own = resource.getrlimit(limit.resource)[1]
            if own != resource.RLIM_INFINITY and (limit.max > own or limit.max == (1 << 64) - 1):
                raise RestoreConflict(f"process {pid}: hard limit {limit.max} of rlimit {limit.resource} is above "
                                      f"pyckpt's own ({own}), and pyckpt lacks CAP_SYS_RESOURCE to raise it")


def restore_creds(pr, inj):
    """Credentials are per thread in the kernel: every thread sets its own, last.

    The bounding set and securebits need CAP_SETPCAP, so they come first;
    keep-caps carries the capabilities over the uid change; capset then
    sets exactly the saved ones, which may drop what allowed the rest.
    """
    creds, scratch, task = pr.task.creds, pr.scratch, pr.task
    scratch.reset()
    last_cap = _last_cap()
    for cap in range(last_cap + 1):
        if not creds.cap_bnd >> cap & 1:
            inj.call("prctl", PR_CAPBSET_DROP, cap, detail=f"dropping capability {cap} from the bounding set")
    inj.call("prctl", PR_SET_SECUREBITS, creds.securebits & ~SECBIT_KEEP_CAPS, detail="securebits")
    inj.call("prctl", PR_SET_KEEPCAPS, 1)
    groups = scratch.put(struct.pack(f"={len(creds.groups)}I", *creds.groups)) if creds.groups else 0
    inj.call("setgroups", len(creds.groups), groups)
    inj.call("setresgid", creds.gid, creds.egid, creds.sgid)
    inj.call("setfsgid", creds.fsgid)
    inj.call("setresuid", creds.uid, creds.euid, creds.suid)
    inj.call("setfsuid", creds.fsuid)
    header = scratch.put(struct.pack("=Ii", _LINUX_CAPABILITY_VERSION_3, 0))
    data = scratch.put(struct.pack("=6I", creds.cap_eff & 0xFFFFFFFF, creds.cap_prm & 0xFFFFFFFF,
                                   creds.cap_inh & 0xFFFFFFFF, creds.cap_eff >> 32, creds.cap_prm >> 32,
                                   creds.cap_inh >> 32))
    result = inj.raw("capset", header, data)
    if result < 0:
        raise RestoreConflict(
            f"cannot give process {pr.pid} its capabilities (effective {creds.cap_eff:#x}, permitted "
            f"{creds.cap_prm:#x}): {os.strerror(-result)}; pyckpt itself may lack some of them")
    inj.call("prctl", PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
    for cap in range(last_cap + 1):
        if creds.cap_amb >> cap & 1:
            inj.call("prctl", PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0, detail=f"ambient capability {cap}")
    inj.call("prctl", PR_SET_KEEPCAPS, 1 if creds.securebits & SECBIT_KEEP_CAPS else 0)
    if creds.no_new_privs:
        inj.call("prctl", PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    inj.call("prctl", PR_SET_DUMPABLE, task.dumpable)


def _last_cap():
    with open("/proc/sys/kernel/cap_last_cap") as f:
        return int(f.read())
