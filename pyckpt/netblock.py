"""Dropping the packets of dumped TCP connections, with nftables (`nft`).

While a connection is read in repair mode, and from the kill of its process
until its restore, a packet from the peer would meet a socket that moved on
or no socket at all (and be answered with a RST): its packets are dropped,
both ways, and TCP's retransmissions carry the data once the block is lifted.

During the dump the rules live in a table created with `flags owner` by an
`nft -i` child of pyckpt: the kernel deletes an owned table when the netlink
socket that made it closes, so the block goes with pyckpt however it ends
(the child reads its commands from a pipe pyckpt holds and dies with it).
A dump that kills its processes leaves a second, ordinary table behind,
named in the image; restore deletes it once the connections are back (or
when restore fails). Without a restore, the user lifts it with
`nft delete table inet NAME` (the dump logs NAME). Restore also blocks the
connections it makes (an owned table again) until every one of them is
back: the first end of a pair made would otherwise be reset by the other's
kernel.
"""

import ipaddress
import logging
import os
import shutil
import signal
import subprocess
import time

from .errors import PyckptError

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1


def available():
    """(ok, detail) for `pyckpt check`."""
    nft = shutil.which("nft")
    if nft is None:
        return False, "nft not found (install nftables: dumping established TCP connections needs it)"
    res = subprocess.run([nft, "list", "tables"], capture_output=True, text=True)
    if res.returncode:
        return False, f"nft list tables failed: {res.stderr.strip()}"
    return True, nft


def _addr(family_bytes):
    ip = ipaddress.ip_address(family_bytes)
    if ip.version == 6 and ip.ipv4_mapped:
        ip = ip.ipv4_mapped      # the packets of a v4-mapped connection are IPv4
    return ip


def rules(connections):
    """nft rule bodies dropping both directions of each (local addr, port, remote addr, port)."""
    out = []
    for laddr, lport, raddr, rport in connections:
        local, remote = _addr(laddr), _addr(raddr)
        key = "ip" if local.version == 4 else "ip6"
        for (a, ap), (b, bp) in (((local, lport), (remote, rport)), ((remote, rport), (local, lport))):
            out.append(f"{key} saddr {a} {key} daddr {b} tcp sport {ap} tcp dport {bp} drop")
    return out


def _script(table, body_rules, owner):
    flags = " flags owner;" if owner else ""
    lines = [f"add table inet {table} {{{flags} }}"]
    for chain, hook in (("input", "input"), ("output", "output")):
        lines.append(f"add chain inet {table} {chain} {{ type filter hook {hook} priority -300; policy accept; }}")
        lines.extend(f"add rule inet {table} {chain} {rule}" for rule in body_rules)
    return "\n".join(lines) + "\n"


def _nft():
    nft = shutil.which("nft")
    if nft is None:
        raise PyckptError("dumping an established TCP connection needs nft (nftables) to block its packets "
                          "meanwhile; install nftables, or dump with --tcp-close")
    return nft


def _table_exists(nft, table):
    return subprocess.run([nft, "list", "table", "inet", table], capture_output=True).returncode == 0


class Block:
    """The connections' packets dropped for as long as this pyckpt runs (an owned table)."""

    def __init__(self, connections):
        self.connections = list(connections)
        self.table = f"pyckpt_run_{os.getpid()}"
        self.child = None

    def start(self):
        if not self.connections:
            return
        nft = _nft()
        self.child = subprocess.Popen([nft, "-i"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.PIPE, preexec_fn=_die_with_parent)
        self.child.stdin.write(_script(self.table, rules(self.connections), owner=True).encode())
        self.child.stdin.flush()
        deadline = time.monotonic() + 10
        while not _table_exists(nft, self.table):
            if self.child.poll() is not None or time.monotonic() > deadline:
                err = self.stop()
                raise PyckptError(f"cannot block the dumped TCP connections with nft: {err or 'no table made'}")
            time.sleep(0.02)
        log.info("blocked %d TCP connection(s) in nft table inet %s", len(self.connections), self.table)

    def keep(self, table):
        """Leave an ordinary table `table` with the same rules behind, for restore to delete."""
        nft = _nft()
        res = subprocess.run([nft, "-f", "-"], input=_script(table, rules(self.connections), owner=False),
                             capture_output=True, text=True)
        if res.returncode:
            raise PyckptError(f"cannot leave the TCP connections blocked until restore: {res.stderr.strip()}")
        log.info("the dumped TCP connections stay blocked until restore: nft table inet %s", table)

    def stop(self):
        """Lift the owned table (its nft exits); returns what nft said on stderr, if anything."""
        if self.child is None:
            return ""
        child, self.child = self.child, None
        child.stdin.close()
        try:
            err = child.stderr.read().decode(errors="replace").strip()
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
            err = "nft did not exit"
        return err


def lift(table):
    """Delete a table a dump left behind (restore's job); quiet if it is gone already."""
    nft = shutil.which("nft")
    if not table or nft is None:
        return
    res = subprocess.run([nft, "delete", "table", "inet", table], capture_output=True, text=True)
    if res.returncode and _table_exists(nft, table):
        log.warning("could not lift nft table inet %s: %s", table, res.stderr.strip())
    else:
        log.info("lifted nft table inet %s", table)


def _die_with_parent():
    import ctypes
    ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
