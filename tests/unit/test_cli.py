"""The `pyckpt` command line, in-process: CRIU-style flags, exit codes, `show` output."""

import json
import os
import pathlib

import pytest
from click.testing import CliRunner

from pyckpt import __version__, images
from pyckpt.cli.main import cli
from sample_image import PID, RIP, RSP


def run(*args):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_commands_are_registered():
    result = run("--help")
    assert result.exit_code == 0
    for command in ("check", "check-image", "dump", "restore", "show"):
        assert command in result.output


def test_version():
    result = run("--version")
    assert result.exit_code == 0 and __version__ in result.output


HELP_FLAGS = {
    "dump": ["-t, --tree", "-D, --images-dir", "-R, --leave-running", "-j, --shell-job", "--ext-unix-sk", "--backend",
             "ptrace", "-v"],
    "restore": ["-D, --images-dir", "-d, --restore-detached", "-j, --shell-job", "--ext-unix-sk", "--pidfile", "-v"],
    "show": ["IMAGES_DIR", "--no-verify", "-v"],
    "check": ["-v, --verbose"],
}


@pytest.mark.parametrize("command,flags", HELP_FLAGS.items(), ids=list(HELP_FLAGS))
def test_help_lists_the_criu_style_flags(command, flags):
    result = run(command, "--help")
    assert result.exit_code == 0
    missing = [f for f in flags if f not in result.output]
    assert not missing, f"`pyckpt {command} --help` does not mention {missing}:\n{result.output}"


BAD_USAGE = [
    ["no-such-command"],
    ["dump"],                                   # -t and -D are required
    ["dump", "-D", "x"],
    ["dump", "-t", "abc", "-D", "x"],
    ["dump", "-t", "1", "-D", "x", "--backend", "magic"],
    ["dump", "-t", "1", "-D", "x", "--no-such-flag"],
    ["restore"],
    ["show"],
]


@pytest.mark.parametrize("args", BAD_USAGE, ids=[" ".join(a) for a in BAD_USAGE])
def test_bad_usage_exits_2(args):
    result = run(*args)
    assert result.exit_code == 2, result.output
    assert "Usage:" in result.output


def test_show_of_a_missing_folder_is_bad_usage(tmp_path):
    result = run("show", str(tmp_path / "nope"))
    assert result.exit_code == 2 and "nope" in result.output


def test_restore_of_a_missing_folder_exits_4_naming_it(tmp_path):
    missing = tmp_path / "no-such-image"
    result = run("restore", "-D", str(missing))
    assert result.exit_code == 4
    assert str(missing) in result.stderr and "pyckpt: error:" in result.stderr
    assert "Traceback" not in result.output


def test_restore_of_a_damaged_image_exits_4_naming_the_file(tiny_image):
    pages = pathlib.Path(tiny_image) / images.pages(PID)
    pages.write_bytes(pages.read_bytes()[:-1])
    for args in (["restore", "-D", tiny_image], ["-v", "restore", "-D", tiny_image, "-d"]):
        result = run(*args)
        assert result.exit_code == 4
        assert str(pages) in result.stderr


def test_show_prints_the_image_as_json_with_hex_registers(tiny_image):
    result = run("show", tiny_image)
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert shown["inventory"]["arch"] == "x86_64" and shown["inventory"]["root_pid"] == PID
    assert [p["pid"] for p in shown["tree"]] == [PID]
    (process,) = shown["processes"]
    (thread,) = process["task"]["threads"]
    regs = thread["regs"]["x86_64"]
    assert regs["rip"] == hex(RIP) and regs["rsp"] == hex(RSP)
    assert regs["rax"] == "0xfffffffffffffffc" and regs["r15"] == "0x0"   # every register, even zero ones
    assert thread["regs"]["extra"] == [{"note_type": 2, "name": "fpregs", "size": 512}]
    assert thread["sigmask"] == "0x200"
    assert process["task"]["sigactions"][0]["handler"] == "0x401200"
    vmas = process["mm"]["vmas"]
    assert vmas[0] == {"start": "0x400000", "end": "0x402000", "prot": "r-x", "kind": "FILE_PRIVATE",
                       "file": "/usr/bin/tiny", "pgoff": "0x0"}
    assert vmas[2]["name"] == "[stack]" and vmas[2]["growsdown"] is True
    assert process["mm"]["start_code"] == "0x400000"
    assert process["pagemap"] == {"pages_file": images.pages(PID), "runs": 1, "pages": 2, "bytes": 8192,
                                     "inherited_pages": 0}
    assert [fd["fd"] for fd in process["fds"]] == [0, 1, 2]
    assert shown["files"][0]["file"]["path"] == "/dev/null"


def test_show_refuses_a_damaged_image_unless_told_not_to_verify(tiny_image):
    path = pathlib.Path(tiny_image) / images.core(PID)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01        # still decodes, but the checksum no longer matches
    path.write_bytes(bytes(data))
    result = run("show", tiny_image)
    assert result.exit_code == 4 and str(path) in result.stderr
    result = run("show", "--no-verify", tiny_image)
    assert result.exit_code == 0
    assert json.loads(result.stdout)["processes"][0]["pid"] == PID


def test_check_image_passes_a_whole_image_and_names_a_damaged_file(tiny_image):
    result = run("check-image", tiny_image)
    assert result.exit_code == 0 and "whole image" in result.stdout and str(PID) in result.stdout
    path = pathlib.Path(tiny_image) / images.mm(PID)
    os.truncate(path, path.stat().st_size - 1)
    result = run("check-image", tiny_image)
    assert result.exit_code == 4 and str(path) in result.stderr and "truncated" in result.stderr


def test_dump_of_a_missing_process_is_an_error_not_a_traceback(tmp_path):
    with open("/proc/sys/kernel/pid_max") as f:
        beyond = int(f.read()) + 1
    result = run("dump", "-t", str(beyond), "-D", str(tmp_path / "img"), "--backend", "ptrace")
    assert result.exit_code == 1, result.output
    assert str(beyond) in result.stderr and "Traceback" not in result.output
    assert os.listdir(tmp_path) == [], "a failed dump leaves no folder behind"
