"""Judge what a guest run left in .cache/vm/<arch>/out/ (used by tests/vm)."""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

BAD_DMESG = re.compile(r"WARNING:|BUG:|Oops|general protection|Call Trace")


def junit_summary(path: Path) -> dict:
    """Counts and failing test ids from a pytest --junitxml file."""
    root = ET.parse(path).getroot()
    suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
    tot = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    failed = []
    for s in suites:
        for k in tot:
            tot[k] += int(s.get(k, 0))
        for case in s.iter("testcase"):
            for kind in ("failure", "error"):
                el = case.find(kind)
                if el is not None:
                    name = f"{case.get('classname', '')}::{case.get('name', '')}"
                    msg = (el.get("message") or "").splitlines()
                    failed.append(f"{kind.upper()} {name}" + (f": {msg[0][:200]}" if msg else ""))
    tot["failed"] = failed
    return tot


def bad_dmesg_lines(text: str) -> list[str]:
    return [ln for ln in text.splitlines() if BAD_DMESG.search(ln)]


def tail(path: Path, n: int = 40) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return f"({path} missing)"
    return "\n".join(lines[-n:])
