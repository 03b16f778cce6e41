"""pyckpt dump."""

import click

from .. import dump as dump_mod
from ..options import DumpOptions
from ..sources import BACKENDS
from . import options


@click.command("dump")
@options.verbose
@click.option("-t", "--tree", "pid", required=True, type=int, help="PID of the process (tree root) to dump.")
@options.images_dir
@click.option("-R", "--leave-running", is_flag=True, help="Let the process go on after the dump.")
@options.shell_job
@options.ext_unix_sk
@click.option("--backend", type=click.Choice(("auto",) + BACKENDS), default="auto", show_default=True,
              help="How to take the state: /dev/crak (kmod) or ptrace; auto takes kmod when loaded.")
def dump(pid, images_dir, leave_running, shell_job, ext_unix_sk, backend):
    """Checkpoint process PID into an image folder, then kill it (unless -R)."""
    dump_mod.dump(pid, images_dir, DumpOptions(backend=backend, leave_running=leave_running, shell_job=shell_job,
                                                       ext_unix_sk=ext_unix_sk))


COMMANDS = (dump,)
