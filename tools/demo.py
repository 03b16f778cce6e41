"""The README demo: a counter is dumped, restored with the same PID, and counts on.

Runs as root (ptrace, clone3 set_tid). Makes itself a child subreaper so the
restored counter, reparented to us when `pyckpt restore -d` returns, is
reaped here (PID 1 on some machines does not reap orphans).
"""

import ctypes
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
COUNTER = REPO / "tests" / "workloads" / "build" / "counter"


def pyckpt(*args):
    cmd = [sys.executable, "-m", "pyckpt", *args]
    print("$ pyckpt " + " ".join(args), flush=True)
    subprocess.run(cmd, check=True, cwd=REPO)


def wait_lines(log, count, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = [l for l in log.read_text().splitlines() if l.strip().isdigit()]
        if len(lines) >= count:
            return lines
        time.sleep(0.2)
    raise SystemExit(f"demo: the counter printed too little: {log.read_text()!r}")


def main():
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    work = Path(tempfile.mkdtemp(prefix="pyckpt-demo-"))
    log = work / "counter.log"
    with open(log, "ab") as out:
        counter = subprocess.Popen([str(COUNTER)], stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                   cwd=work, start_new_session=True)
    pid = counter.pid
    print(f"started counter, PID {pid}, printing to {log}")
    before = wait_lines(log, 3)
    pyckpt("dump", "-t", str(pid), "-D", str(work / "images"))
    counter.wait()
    print(f"counter {pid} is gone (killed by the dump); last number it printed: {wait_lines(log, 1)[-1]}")
    pyckpt("restore", "-D", str(work / "images"), "-d")
    seen = len(wait_lines(log, 1))
    after = wait_lines(log, seen + 3)
    print(f"restored counter is PID {pid}: {'alive' if os.path.exists(f'/proc/{pid}') else 'NOT running'}")
    print("numbers printed: " + " ".join(after))
    numbers = [int(n) for n in after]
    os.kill(pid, signal.SIGTERM)
    os.waitpid(pid, 0)
    if numbers != list(range(numbers[0], numbers[0] + len(numbers))) or len(numbers) <= len(before):
        raise SystemExit("demo: FAILED, the counter did not go on from where it was")
    print(f"the counter went on from {before[-1]} without a gap, with the same PID. Images are in {work / 'images'}")


if __name__ == "__main__":
    main()
