"""MariaDB on a unix socket only (skip-networking, InnoDB without native AIO):
after the restore it answers queries, with the rows committed before the dump."""

import os
import time

import pytest

from apps_harness import TIMEOUT, require_packages, run, which


def _client(a, sql, check=True):
    return run([which("mariadb"), "--no-defaults", "-S", a.dir / "sock", "-uroot", "-N", "-B", "-e", sql],
               check=check)


def _wait_answering(a):
    deadline = time.monotonic() + TIMEOUT
    while _client(a, "SELECT 1", check=False).returncode != 0:
        if a.popen is not None and a.popen.poll() is not None:
            pytest.fail(f"mariadbd exited ({a.popen.returncode}); log:\n{a.log()}")
        if time.monotonic() > deadline:
            pytest.fail(f"mariadbd does not answer on its socket; log:\n{a.log()}")
        time.sleep(0.2)


@pytest.mark.parametrize("leave_running", [False, True], ids=["dump", "dump-R"])
def test_mariadb_unix_socket(app, leave_running):
    require_packages("mariadb-server", "mariadb-client")
    a = app("mariadb")
    data = a.dir / "data"
    run([which("mariadb-install-db"), "--no-defaults", f"--datadir={data}", "--user=root",
         "--auth-root-authentication-method=normal", "--skip-test-db"], cwd=a.dir)
    a.start([which("mariadbd"), "--no-defaults", f"--datadir={data}", f"--socket={a.dir / 'sock'}",
             f"--pid-file={a.dir / 'mariadbd.pid'}", "--skip-networking", "--innodb-use-native-aio=0",
             "--user=root", "--innodb-buffer-pool-size=16M", "--skip-log-bin", f"--log-error={a.log_path}",
             "--performance-schema=off"])
    _wait_answering(a)
    _client(a, "CREATE DATABASE app; CREATE TABLE app.t (n INT PRIMARY KEY, sq BIGINT) ENGINE=InnoDB; "
               "INSERT INTO app.t SELECT seq, seq*seq FROM app.seq_1_to_5000;")
    threads = len(os.listdir(f"/proc/{a.root}/task"))
    a.dump(leave_running=leave_running)
    if not leave_running:
        a.restore()
        assert len(os.listdir(f"/proc/{a.root}/task")) == threads
    assert _client(a, "SELECT count(*), sum(sq) FROM app.t").stdout.split() == [
        "5000", str(sum(n * n for n in range(1, 5001)))]
    _client(a, "INSERT INTO app.t VALUES (0, 0); CHECK TABLE app.t;")
    assert _client(a, "SELECT count(*) FROM app.t").stdout.strip() == "5001"
    _client(a, "SHUTDOWN")
    assert a.wait_exit() == 0, a.log()
