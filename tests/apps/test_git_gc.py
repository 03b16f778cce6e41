"""`git gc --aggressive` dumped while it repacks: after the restore it
finishes, the repository is whole (fsck) and every commit is still there."""

import random

import pytest

from apps_harness import host, require_packages, run, which

COMMITS = 400


def _git(repo, *args, **kw):
    return run([which("git"), "-C", repo, *args], env=_ENV, **kw)


_ENV = {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent", "GIT_CONFIG_NOSYSTEM": "1", "LC_ALL": "C",
        "GIT_AUTHOR_NAME": "a", "GIT_AUTHOR_EMAIL": "a@b", "GIT_COMMITTER_NAME": "a",
        "GIT_COMMITTER_EMAIL": "a@b", "GIT_AUTHOR_DATE": "1700000000 +0000",
        "GIT_COMMITTER_DATE": "1700000000 +0000"}


def _repo(path):
    """COMMITS commits of a few files that change a little each time (loose objects, deltas to find),
    written with fast-import."""
    rng = random.Random(7)
    lines = {f"file{i}.txt": [f"{rng.random()} line {j}\n" for j in range(400)] for i in range(8)}
    stream = []
    for c in range(COMMITS):
        name = f"file{c % 8}.txt"
        body = lines[name]
        body[rng.randrange(len(body))] = f"{rng.random()} changed in {c}\n"
        data = "".join(body).encode()
        msg = f"commit {c}\n".encode()
        stream.append(b"commit refs/heads/main\ncommitter a <a@b> %d +0000\ndata %d\n%s" % (1700000000 + c,
                                                                                         len(msg), msg))
        stream.append(b"M 100644 inline %s\ndata %d\n%s\n" % (name.encode(), len(data), data))
    run([which("git"), "init", "-q", "-b", "main", path], env=_ENV)
    run([which("git"), "-C", path, "fast-import", "--quiet"], env=_ENV, input=b"".join(stream).decode())
    # Loose objects for gc to pack: explode the pack.
    packs = list((path / ".git" / "objects" / "pack").glob("*.pack"))
    for pack in packs:
        moved = path / pack.name
        pack.rename(moved)
        pack.with_suffix(".idx").unlink()
        run([which("git"), "-C", path, "unpack-objects", "-q"], env=_ENV, stdin=open(moved, "rb"))
        moved.unlink()
    return _git(path, "rev-list", "--count", "main").stdout.strip()


@pytest.mark.parametrize("leave_running", [False, True], ids=["dump", "dump-R"])
def test_git_gc(app, leave_running):
    require_packages("git")
    a = app("gitgc")
    repo = a.dir / "repo"
    assert _repo(repo) == str(COMMITS)
    env = dict(_ENV, GIT_DIR=str(repo / ".git"))
    a.start([which("git"), "-c", "pack.threads=2", "-c", "gc.autoDetach=false", "gc", "--aggressive",
             "--prune=now", "--quiet"], env=env, cwd=repo)
    # mid-run: pack-objects (gc's child) is working
    a.wait_for(lambda: any("pack-objects" in _cmdline(p) for p in host.descendants(a.root)), "git pack-objects")
    # whether repack has closed its end of pack-objects' stdin yet depends on timing: both work
    a.dump(leave_running=leave_running)
    if not leave_running:
        a.restore()
    assert a.wait_exit() == 0, a.log()
    _git(repo, "fsck", "--full", "--strict")
    assert _git(repo, "rev-list", "--count", "main").stdout.strip() == str(COMMITS)
    counts = dict(line.split(": ") for line in _git(repo, "count-objects", "-v").stdout.splitlines())
    assert counts["count"] == "0" and counts["packs"] == "1", counts


def _cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""
