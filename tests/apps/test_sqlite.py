"""A Python program in the middle of an sqlite transaction: after the restore
it commits, and the database is valid and holds exactly what it committed."""

import sqlite3

import pytest

from apps_harness import require_packages, which

# Inserts 1000 rows inside one transaction, says READY, waits for the file `go`,
# inserts 1000 more, commits, and checks what it sees.
PROGRAM = r'''
import os, sqlite3, sys, time
db = sqlite3.connect("app.db", isolation_level=None)
db.execute("PRAGMA journal_mode=" + sys.argv[1])
db.execute("CREATE TABLE t (n INTEGER PRIMARY KEY, sq INTEGER, label TEXT)")
db.execute("BEGIN")
for n in range(1000):
    db.execute("INSERT INTO t VALUES (?, ?, ?)", (n, n * n, f"row {n}"))
print("READY", flush=True)
while not os.path.exists("go"):
    time.sleep(0.05)
for n in range(1000, 2000):
    db.execute("INSERT INTO t VALUES (?, ?, ?)", (n, n * n, f"row {n}"))
db.execute("COMMIT")
count, total = db.execute("SELECT count(*), sum(sq) FROM t").fetchone()
ok = count == 2000 and total == sum(n * n for n in range(2000))
print("PASS" if ok else f"FAIL: {count} rows, sum {total}", flush=True)
sys.exit(0 if ok else 1)
'''


def _committed(path):
    db = sqlite3.connect(path)
    try:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        return db.execute("SELECT count(*), sum(sq), max(label) FROM t").fetchone()
    finally:
        db.close()


@pytest.mark.quick
@pytest.mark.parametrize("journal", ["delete", "wal"])
@pytest.mark.parametrize("leave_running", [False, True], ids=["dump", "dump-R"])
def test_sqlite_transaction_commits_after_restore(app, journal, leave_running):
    require_packages("python3")
    a = app("sqlite")
    (a.dir / "prog.py").write_text(PROGRAM)
    a.start([which("python3"), "prog.py", journal])
    a.wait_line("READY")
    a.dump(leave_running=leave_running)
    if not leave_running:
        a.restore()
    (a.dir / "go").touch()
    assert a.wait_exit() == 0, a.log()
    assert a.log().splitlines()[-1] == "PASS", a.log()
    assert _committed(str(a.dir / "app.db")) == (2000, sum(n * n for n in range(2000)), "row 999")
