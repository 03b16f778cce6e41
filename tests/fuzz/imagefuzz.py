"""Image fuzzer: real images of a few workloads, each case one structural
mutation of one image file (the manifest re-signed, as a buggy writer or a
crafted image would have it), then `pyckpt restore -d`.

Every case must end in one of two ways:
  refused   exit 4 (or 5: something on this machine is in the way), one line
            "pyckpt: error: ..." naming the image file, and no process of the
            image (nor any stub) left anywhere;
  restored  exit 0 (the restored tree is then killed and reaped).
Anything else is a finding: a traceback, another exit code, a hang (per-case
timeout), a leftover process, or a file created or changed in the sandbox
outside the case's own image folder.

A case is (workload, seed): `python tests/fuzz/imagefuzz.py --workloads tree
--seed 1234 --cases 1 -v` replays it. Runs as root (restore needs clone3
set_tid); makes itself a child subreaper so restored processes come back to it.
"""

import argparse
import collections
import ctypes
import hashlib
import os
import random
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from google.protobuf.descriptor import FieldDescriptor as FD  # noqa: E402

from pyckpt.images.proto import core_pb2, files_pb2, inventory_pb2, ipc_pb2, mm_pb2  # noqa: E402
from pyckpt.proc import reap_orphans  # noqa: E402

WORKLOADS = REPO / "tests" / "workloads" / "build"
QUICK_WORKLOADS = ("counter", "tree", "files", "anonfds")
ALL_WORKLOADS = QUICK_WORKLOADS + ("signals", "memfdmap", "threads", "cowtree", "fifo", "posixtimers",
                                   "unix-pairs", "sysvipc")
ARGS = {"threads": ("4",), "unix-pairs": ("pairs",)}
BINARY = {"unix-pairs": "unixsk"}
CASE_TIMEOUT = 30
PAGE = 4096

# image file name -> protobuf message class (anything else is raw data)
MESSAGES = [
    ("inventory.img", inventory_pb2.Inventory), ("pstree.img", files_pb2.PsTree),
    ("files.img", files_pb2.Files), ("ipc.img", ipc_pb2.Ipc),
    ("core-", core_pb2.Task), ("mm-", mm_pb2.Mm), ("pagemap-", mm_pb2.PageMap),
    ("fds-", files_pb2.FdTable), ("unixsk-", files_pb2.UnixQueue),
]


def message_class(name):
    for prefix, cls in MESSAGES:
        if name == prefix or (prefix.endswith("-") and name.startswith(prefix)):
            return cls
    return None


# --- mutations ---------------------------------------------------------------

_INT_RANGE = {
    FD.TYPE_INT32: (-2**31, 2**31 - 1), FD.TYPE_SINT32: (-2**31, 2**31 - 1), FD.TYPE_SFIXED32: (-2**31, 2**31 - 1),
    FD.TYPE_UINT32: (0, 2**32 - 1), FD.TYPE_FIXED32: (0, 2**32 - 1),
    FD.TYPE_INT64: (-2**63, 2**63 - 1), FD.TYPE_SINT64: (-2**63, 2**63 - 1), FD.TYPE_SFIXED64: (-2**63, 2**63 - 1),
    FD.TYPE_UINT64: (0, 2**64 - 1), FD.TYPE_FIXED64: (0, 2**64 - 1),
}
_BOUNDARY = [0, 1, 2, 3, 7, 31, 32, 63, 64, 65, 128, 255, 1023, 1024, 4095, 4096, 65535, 65536, 1 << 20,
             2**31 - 1, 2**31, 2**32 - 1, 2**32, 2**47 - 4096, 2**47, 2**48, 2**63 - 1, 2**63, 2**64 - 1,
             -1, -2, -2**31, -2**63]


def _int_value(rng, field, old):
    lo, hi = _INT_RANGE[field.type]
    choice = rng.random()
    if choice < 0.45:
        value = rng.choice(_BOUNDARY)
    elif choice < 0.8 and old is not None:
        value = old + rng.choice([1, -1, PAGE, -PAGE, 16 * PAGE, 2**20, old, -old // 2, 1 << rng.randrange(64)])
    else:
        value = rng.randrange(lo, hi + 1)
    return min(max(value, lo), hi)


def _scalar_value(rng, field, old, canary):
    if field.type == FD.TYPE_BOOL:
        return not old
    if field.type == FD.TYPE_ENUM:
        values = [v.number for v in field.enum_type.values]
        return rng.choice(values + [max(values) + 1, 99, -1])
    if field.type in (FD.TYPE_DOUBLE, FD.TYPE_FLOAT):
        return rng.choice([0.0, -1.0, 1e300, float("nan")])
    if field.type == FD.TYPE_STRING:
        return rng.choice(["", "/", str(canary / "s"), "../../" + canary.name + "/r", "x" * 5000,
                           "/proc/self/mem", "a\x00b", old + "x" if old else "y", old[: len(old) // 2] if old else ""])
    if field.type == FD.TYPE_BYTES:
        old = old or b""
        return rng.choice([b"", old[: rng.randrange(len(old) + 1)], old + b"\0" * rng.choice([1, 7, 64, 4096]),
                           bytes(rng.randrange(256) for _ in range(rng.choice([1, 8, 33, 200])))])
    return _int_value(rng, field, old)


def _slots(msg, path=""):
    """(message, field, index or None, path) of every field to mutate, and the repeated fields."""
    scalars, repeats = [], []
    for field in msg.DESCRIPTOR.fields:
        fpath = f"{path}{field.name}"
        value = getattr(msg, field.name)
        if (field.is_repeated if hasattr(field, "is_repeated") else field.label == FD.LABEL_REPEATED):
            if field.message_type and field.message_type.GetOptions().map_entry:
                continue
            repeats.append((msg, field, fpath))
            for i, item in enumerate(value):
                if field.type == FD.TYPE_MESSAGE:
                    s, r = _slots(item, f"{fpath}[{i}].")
                    scalars += s
                    repeats += r
                else:
                    scalars.append((msg, field, i, f"{fpath}[{i}]"))
        elif field.type == FD.TYPE_MESSAGE:
            s, r = _slots(value, f"{fpath}.")
            scalars += s
            repeats += r
        else:
            scalars.append((msg, field, None, fpath))
    return scalars, repeats


def mutate_message(rng, msg, canary):
    """One structural mutation of msg in place; what it did."""
    scalars, repeats = _slots(msg)
    nonempty = [r for r in repeats if len(getattr(r[0], r[1].name))]
    if not nonempty and not scalars and repeats:
        owner, field, fpath = rng.choice(repeats)
        getattr(owner, field.name).add() if field.type == FD.TYPE_MESSAGE else None
        return f"{fpath}: add to empty"
    if nonempty and rng.random() < 0.3:
        owner, field, fpath = rng.choice(nonempty)
        items = getattr(owner, field.name)
        n = len(items)
        op = rng.choice(["dup", "drop", "swap", "reverse", "clear", "add"])
        if op == "dup":
            i = rng.randrange(n)
            if field.type == FD.TYPE_MESSAGE:
                items.add().CopyFrom(items[i])
            else:
                items.append(items[i])
        elif op == "drop":
            del items[rng.randrange(n)]
        elif op in ("swap", "reverse"):
            values = list(items)
            if op == "swap":
                i, j = rng.randrange(n), rng.randrange(n)
                values[i], values[j] = values[j], values[i]
            else:
                values.reverse()
            copies = [type(v)() for v in values] if field.type == FD.TYPE_MESSAGE else values
            if field.type == FD.TYPE_MESSAGE:
                for c, v in zip(copies, values):
                    c.CopyFrom(v)
            del items[:]
            if field.type == FD.TYPE_MESSAGE:
                for c in copies:
                    items.add().CopyFrom(c)
            else:
                items.extend(copies)
        elif op == "clear":
            del items[:]
        else:
            if field.type == FD.TYPE_MESSAGE:
                items.add()
            else:
                items.append(_scalar_value(rng, field, None, canary) if field.type != FD.TYPE_BOOL else True)
        return f"{fpath}: {op} (had {n})"
    if not scalars:
        return "nothing to mutate"
    owner, field, index, fpath = rng.choice(scalars)
    old = getattr(owner, field.name) if index is None else getattr(owner, field.name)[index]
    new = _scalar_value(rng, field, old, canary)
    if index is None:
        setattr(owner, field.name, new)
    else:
        getattr(owner, field.name)[index] = new
    shown = new if not isinstance(new, (str, bytes)) or len(new) < 40 else f"<{len(new)} long>"
    return f"{fpath}: {old!r:.40} -> {shown!r}"


def mutate_raw(rng, data):
    op = rng.choice(["truncate", "truncate-page", "extend", "empty", "flip"])
    if op == "truncate":
        return data[: rng.randrange(len(data) + 1)], op
    if op == "truncate-page":
        return data[: max(len(data) - PAGE * rng.choice([1, 2, 16]), 0)], op
    if op == "extend":
        return data + b"\xa5" * rng.choice([1, PAGE, 16 * PAGE]), op
    if op == "empty":
        return b"", op
    if not data:
        return data, op
    i = rng.randrange(len(data))
    return data[:i] + bytes([data[i] ^ 0xFF]) + data[i + 1:], op


def mutate_image(rng, folder, canary):
    """Mutate one (sometimes two or three) image files of `folder`; what was done."""
    done = []
    for _ in range(rng.choice([1, 1, 1, 1, 2, 3])):
        names = sorted(n for n in os.listdir(folder) if n.endswith(".img") and n != "manifest.img")
        # metadata mostly; raw page/data files too
        weights = [6 if message_class(n) else 1 for n in names]
        name = rng.choices(names, weights)[0]
        path = folder / name
        data = path.read_bytes()
        cls = message_class(name)
        kind = rng.random()
        if kind < 0.03:
            path.unlink()
            done.append(f"{name}: removed")
            continue
        msg = cls() if cls else None
        try:
            msg and msg.ParseFromString(data)
        except Exception:      # an earlier mutation of this case made it undecodable
            msg = None
        if msg is not None and kind > 0.08:
            done.append(f"{name}: {mutate_message(rng, msg, canary)}")
            data = msg.SerializeToString()
        else:
            data, op = mutate_raw(rng, data)
            done.append(f"{name}: raw {op} ({len(data)} bytes)")
        path.unlink()             # never write through a hard link to the base image
        path.write_bytes(data)
    return "; ".join(done)


def resign(folder):
    manifest = inventory_pb2.Manifest()
    for name in sorted(os.listdir(folder)):
        if name.endswith(".img") and name != "manifest.img":
            data = (folder / name).read_bytes()
            manifest.entries.add(name=name, size=len(data), sha256=hashlib.sha256(data).digest())
    (folder / "manifest.img").unlink()
    (folder / "manifest.img").write_bytes(manifest.SerializeToString())


# --- processes -----------------------------------------------------------------

def _children_of(pid):
    kids = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat") as f:
                    if int(f.read().rpartition(")")[2].split()[1]) == pid:
                        kids.append(int(name))
            except (OSError, ValueError, IndexError):
                pass
    return kids


def _descendants(pid):
    found, frontier = [], [pid]
    while frontier:
        kids = _children_of(frontier.pop())
        found += kids
        frontier += kids
    return found


def _state(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0]
    except OSError:
        return "X"


def _live_strays():
    """Processes below us that are not dead and waiting to be reaped (a killed tree dies a little later)."""
    deadline = time.monotonic() + 10
    while True:
        reap_orphans()
        live = [p for p in _descendants(os.getpid()) if _state(p) not in "ZX"]
        if not live or time.monotonic() > deadline:
            return live
        time.sleep(0.02)


def kill_strays(keep=()):
    """SIGKILL every process below us except `keep`; their PIDs."""
    strays = [p for p in _descendants(os.getpid()) if p not in keep]
    for p in strays:
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 10
    while any(os.path.exists(f"/proc/{p}") for p in strays) and time.monotonic() < deadline:
        reap_orphans()
        time.sleep(0.01)
    reap_orphans()
    return strays


def dump_workload(name, root):
    """Start workload `name` in root/name, dump it (killing it); the image folder."""
    wdir = root / name
    wdir.mkdir()
    argv = [str(WORKLOADS / BINARY.get(name, name)), *ARGS.get(name, ())]
    log = open(wdir / "out.log", "ab")
    child = subprocess.Popen(argv, cwd=wdir, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                             start_new_session=True)
    log.close()
    deadline = time.monotonic() + 60
    while b"READY" not in (wdir / "out.log").read_bytes():
        if child.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"workload {name} did not get ready: {(wdir / 'out.log').read_text()}")
        time.sleep(0.02)
    images = root / f"{name}.images"
    res = subprocess.run([sys.executable, "-m", "pyckpt", "dump", "-t", str(child.pid), "-D", str(images)],
                         cwd=REPO, capture_output=True, text=True)
    if res.returncode != 0:
        raise SystemExit(f"dump of {name} failed: {res.stderr}")
    child.wait()
    kill_strays()
    return images


def image_pids(folder):
    try:
        tree = files_pb2.PsTree()
        tree.ParseFromString((folder / "pstree.img").read_bytes())
        return {p.pid for p in tree.processes} | {t for p in tree.processes for t in p.threads}
    except Exception:
        return set()


def named_paths(folder):
    files = files_pb2.Files()
    files.ParseFromString((folder / "files.img").read_bytes())
    return {Path(f.file.path) for f in files.files if f.file.path}


# --- one case --------------------------------------------------------------------

def snapshot(root, skip):
    seen = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if Path(dirpath, d) not in skip]
        for n in filenames + dirnames:
            p = Path(dirpath, n)
            if p.name in ("out.log",) or p in skip:
                continue
            try:
                st = os.lstat(p)
            except OSError:
                continue
            # a folder's own times change as restore makes and unlinks its ghost files there
            seen[str(p)] = (st.st_mode,) if stat.S_ISDIR(st.st_mode) else (st.st_size, st.st_mtime_ns, st.st_mode)
    return seen


Outcome = collections.namedtuple("Outcome", "workload seed mutation verdict detail")


def _screen(case):
    """(verdict, detail) when reading the image in this process already decides the case: restore
    reads and checks it the same way before it creates anything. None: run the real restore."""
    from pyckpt.errors import ImageError
    from pyckpt.restorer.image import Image
    try:
        Image(str(case))
    except ImageError as err:
        text = str(err)
        if "\n" in text or (".img" not in text and str(case) not in text):
            return "refusal-names-no-file", text
        return "refused-4", text
    except Exception as err:   # what the CLI would show as a traceback
        return "traceback", f"{type(err).__name__}: {err}"
    return None


def run_case(workload, seed, base, root, timeout=CASE_TIMEOUT, keep=False, screen=False):
    rng = random.Random(f"{workload}:{seed}")
    case = root / f"case-{workload}-{seed}"
    case.mkdir()
    for name in os.listdir(base):
        if name.endswith(".img"):
            os.link(base / name, case / name)
    canary = root / "canary"
    mutation = mutate_image(rng, case, canary)
    resign(case)
    pids = {p for p in image_pids(base) | image_pids(case) if not os.path.exists(f"/proc/{p}")}
    # files the image reopens may change as they would in any restore (a FIFO refilled)
    skip = {case} | named_paths(base)
    before = snapshot(root, skip)
    if screen:
        quick = _screen(case)
        if quick:
            if not keep:
                shutil.rmtree(case, ignore_errors=True)
            return Outcome(workload, seed, mutation, *quick)
    out = case / "restore.stderr"
    with open(out, "wb") as err:
        proc = subprocess.Popen([sys.executable, "-m", "pyckpt", "restore", "-d", "-D", str(case)],
                                cwd=root, stdin=subprocess.DEVNULL, stdout=err, stderr=err,
                                start_new_session=True)
    try:
        rc = proc.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        rc = "hang"
    stderr = out.read_text(errors="replace")
    lines = [l for l in stderr.splitlines() if l.strip()]
    verdict, detail = None, ""
    if rc == "hang":
        verdict, detail = "hang", f"no result within {timeout} s"
    elif "Traceback" in stderr:
        verdict, detail = "traceback", (lines[-1] if lines else "")
    elif rc == 0:
        verdict = "restored"
    elif rc in (4, 5):
        if len(lines) != 1 or not lines[0].startswith("pyckpt: error: "):
            verdict, detail = "unclear-refusal", " | ".join(lines)[:300]
        elif rc == 4 and ".img" not in lines[0] and str(case) not in lines[0]:
            verdict, detail = "refusal-names-no-file", lines[0]
        else:
            verdict, detail = f"refused-{rc}", lines[0]
            _live_strays()
            leftovers = [p for p in pids if _state(p) not in "ZX"]
            if leftovers:
                verdict, detail = "refused-but-left-process", f"{leftovers}: {lines[0]}"
    else:
        verdict, detail = f"exit-{rc}", " | ".join(lines)[-300:]
    strays = _live_strays() if verdict.startswith("refused") else []
    kill_strays()
    if strays and verdict.startswith("refused"):
        verdict, detail = "leftover-stub", f"processes {strays} after: {detail}"
    after = snapshot(root, skip)
    changed = sorted(set(after) ^ set(before)) + sorted(p for p in set(after) & set(before)
                                                          if after[p] != before[p])
    if changed:
        verdict, detail = "wrote-outside", f"{changed[:5]} ({verdict}: {detail})"
        for p in changed:      # back to how it was for the next case
            if p not in before and os.path.lexists(p):
                if os.path.isdir(p) and not os.path.islink(p):
                    shutil.rmtree(p, ignore_errors=True)
                else:
                    os.unlink(p)
    if not keep:
        shutil.rmtree(case, ignore_errors=True)
    return Outcome(workload, seed, mutation, verdict, detail)


GOOD = ("restored", "refused-4", "refused-5")


def set_subreaper():
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(36, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")


def campaign(workloads, seeds, timeout=CASE_TIMEOUT, report=print, keep=False, screen=False):
    """Dump each workload once, then run every (workload, seed); the outcomes."""
    set_subreaper()
    root = Path(tempfile.mkdtemp(prefix="pyckpt-imagefuzz-"))
    os.chmod(root, 0o755)
    outcomes = []
    try:
        bases = {w: dump_workload(w, root) for w in workloads}
        for i, seed in enumerate(seeds):
            workload = workloads[i % len(workloads)] if not isinstance(seed, tuple) else seed[0]
            seed = seed[1] if isinstance(seed, tuple) else seed
            out = run_case(workload, seed, bases[workload], root, timeout, keep, screen)
            outcomes.append(out)
            report(out)
    finally:
        kill_strays()
        if not keep:
            shutil.rmtree(root, ignore_errors=True)
    return outcomes


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0, help="first seed")
    ap.add_argument("--workloads", default=",".join(QUICK_WORKLOADS), help=f"any of {','.join(ALL_WORKLOADS)}")
    ap.add_argument("--timeout", type=float, default=CASE_TIMEOUT)
    ap.add_argument("--keep", action="store_true", help="keep the case folders (under /tmp)")
    ap.add_argument("--screen", action="store_true",
                    help="decide cases the image check refuses in this process (much faster); run the rest")
    ap.add_argument("-v", "--verbose", action="store_true", help="print every case, not only findings")
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))   # so the restored processes are killed on the way out
    workloads = tuple(args.workloads.split(","))
    started = time.monotonic()

    def report(o):
        if args.verbose or o.verdict not in GOOD:
            print(f"{o.workload}:{o.seed} {o.verdict}: {o.mutation} => {o.detail}", flush=True)

    outcomes = campaign(workloads, range(args.seed, args.seed + args.cases), args.timeout, report, args.keep,
                        args.screen)
    counts = collections.Counter(o.verdict for o in outcomes)
    print(f"{len(outcomes)} cases in {time.monotonic() - started:.0f} s: "
          + ", ".join(f"{k} {v}" for k, v in counts.most_common()))
    return 0 if all(o.verdict in GOOD for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
