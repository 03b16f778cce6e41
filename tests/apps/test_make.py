"""`make -j2` of a generated C project dumped mid-build: after the restore the
build finishes and the program prints the right result."""

import os

import pytest

from apps_harness import host, require_packages, run, which

UNITS = 24


def _project(root):
    """UNITS files f0.c..., each defining fN() = N*N; main prints their sum. Each compile
    sleeps a little so that the build is still running when it is dumped."""
    root.mkdir()
    for n in range(UNITS):
        (root / f"f{n}.c").write_text(f"int f{n}(void) {{ return {n} * {n}; }}\n")
    decls = "".join(f"int f{n}(void);\n" for n in range(UNITS))
    calls = " + ".join(f"f{n}()" for n in range(UNITS))
    (root / "main.c").write_text(f'#include <stdio.h>\n{decls}int main(void) {{ printf("%d\\n", {calls}); '
                                 "return 0; }\n")
    objs = " ".join(f"f{n}.o" for n in range(UNITS))
    (root / "Makefile").write_text(
        f"prog: main.o {objs}\n\t$(CC) -o $@ $^\n\n"
        "%.o: %.c\n\tsleep 0.3\n\t$(CC) -O1 -c -o $@ $<\n")
    return sum(n * n for n in range(UNITS))


# GNU make 4.3 gives every parallel job but one a "bad stdin": the read end of a pipe whose write
# end it closed at once (make keeps the read end, here fd 5): restored as a pipe with no writer.
@pytest.mark.quick
@pytest.mark.parametrize("leave_running", [False, True], ids=["dump", "dump-R"])
def test_make_j2(app, leave_running):
    require_packages("make", "gcc", "libc6-dev")
    a = app("make")
    want = _project(a.dir / "src")
    a.start([which("make"), "-j2", "-C", "src"], env={"PATH": "/usr/bin:/bin", "LC_ALL": "C"})
    objs = lambda: len([n for n in os.listdir(a.dir / "src") if n.endswith(".o")])  # noqa: E731
    a.wait_for(lambda: objs() >= 4, "4 objects built")
    assert host.descendants(a.root), "make has no job running at the dump"
    a.dump(leave_running=leave_running)
    if not leave_running:
        a.restore()
    assert a.wait_exit() == 0, a.log()
    assert objs() == UNITS + 1
    assert run([a.dir / "src" / "prog"]).stdout == f"{want}\n"
