"""CRIU's dump/restore flags (pyckpt/cli/criu_flags.py): every one is accepted where pyckpt
honours it and refused with one line where it cannot yet -- never click's "No such option"."""

import click
import pytest
from click.testing import CliRunner

from pyckpt.cli import criu_flags
from pyckpt.cli.main import cli


def run(*args):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def _missing_pid():
    with open("/proc/sys/kernel/pid_max") as f:
        return str(int(f.read()) + 1)


# Accepted: the command gets as far as looking for the process (exit 1 naming it).
ACCEPTED = [
    ["--file-locks"], ["--link-remap"], ["--ghost-limit", "1M"], ["--ghost-limit=512K"],
    ["--manage-cgroups=ignore"], ["--tcp-established"], ["--tcp-close"], ["--skip-in-flight"],
    ["-o", "my.log"], ["--log-file=my.log"], ["-v4"], ["-v0"], ["-vvvv"],
]


@pytest.mark.parametrize("flags", ACCEPTED, ids=[" ".join(f) for f in ACCEPTED])
def test_dump_accepts(tmp_path, flags):
    pid = _missing_pid()
    result = run("dump", "-t", pid, "-D", str(tmp_path / "img"), "--backend", "ptrace", *flags)
    assert result.exit_code == 1, result.output
    assert f"process {pid} does not exist" in result.stderr, result.output


@pytest.mark.parametrize("flags", [["--tcp-close"], ["--file-locks", "-o", "r.log", "-v4"],
                                   ["--manage-cgroups=ignore", "--link-remap"]])
def test_restore_accepts(tmp_path, flags):
    missing = tmp_path / "no-such-image"
    result = run("restore", "-D", str(missing), *flags)
    assert result.exit_code == 4 and str(missing) in result.stderr, result.output


REFUSED = [
    (["--manage-cgroups"], "--manage-cgroups=soft: pyckpt does not restore cgroup membership yet"),
    (["--manage-cgroups=full"], "--manage-cgroups=full: pyckpt does not restore cgroup membership yet"),
    (["--manage-cgroups=strict"], "--manage-cgroups=strict"),
    (["--cgroup-yard", "/tmp/yard"], "--cgroup-yard: pyckpt does not manage cgroups yet"),
    (["--external", "unix[123]"], "--external: pyckpt cannot treat a resource as external yet"),
    (["--ext-mount-map", "auto"], "--ext-mount-map: pyckpt does not checkpoint mount namespaces yet"),
    (["--enable-fs", "nfs"], "--enable-fs: pyckpt does not checkpoint mount namespaces yet"),
]


@pytest.mark.parametrize("command", ["dump", "restore"])
@pytest.mark.parametrize("flags,message", REFUSED, ids=[" ".join(f) for f, _ in REFUSED])
def test_not_yet_supported_flags_are_refused_in_one_line(tmp_path, command, flags, message):
    """Refused before anything is looked at: the pid and the image do not even exist."""
    args = ["-t", _missing_pid()] if command == "dump" else []
    result = run(command, *args, "-D", str(tmp_path / "img"), *flags)
    assert result.exit_code == 2, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"pyckpt: error: {message}"), result.stderr
    assert "No such option" not in result.output and "Traceback" not in result.output
    assert not (tmp_path / "img").exists()


@pytest.mark.parametrize("text,size", [("0", 0), ("4096", 4096), ("1K", 1024), ("1m", 1 << 20),
                                       ("2G", 2 << 30)])
def test_parse_size(text, size):
    assert criu_flags.parse_size(text) == size


@pytest.mark.parametrize("text", ["", "1T", "-1", "one", "1.5M"])
def test_parse_size_refuses(text):
    with pytest.raises(click.BadParameter):
        criu_flags.parse_size(text)


def test_bad_ghost_limit_is_bad_usage(tmp_path):
    result = run("dump", "-t", "1", "-D", str(tmp_path / "img"), "--ghost-limit", "lots")
    assert result.exit_code == 2 and "not a size" in result.output


def test_rewrite_levels():
    assert criu_flags.rewrite_levels(["-v4", "dump", "-v0", "-vv", "-D", "x", "--", "-v3"]) == [
        "--log-level=4", "dump", "--log-level=0", "-vv", "-D", "x", "--", "-v3"]


def test_log_file_name():
    flags = criu_flags.CriuFlags()
    assert criu_flags.log_file(flags, "dump.log") == "dump.log"
    assert criu_flags.log_file(criu_flags.CriuFlags(log_file="sub/../d.log"), "dump.log") == "d.log"
    assert criu_flags.log_file(criu_flags.CriuFlags(log_file="/tmp/x.log"), "dump.log") == "/tmp/x.log"


@pytest.mark.parametrize("level", ["-v0", "-v2", "-v4"])
def test_log_levels_decide_what_stderr_shows(tmp_path, level):
    """The final error is always printed; -v4 adds debug lines, lower levels do not."""
    pid = _missing_pid()
    result = run(level, "dump", "-t", pid, "-D", str(tmp_path / "img"), "--backend", "ptrace")
    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1] == f"pyckpt: error: process {pid} does not exist"
    debug = [line for line in result.stderr.splitlines() if "DEBUG" in line]
    assert bool(debug) == (level == "-v4"), result.stderr
