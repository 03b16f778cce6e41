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
@click.option("--tcp-established", is_flag=True,
              help="Keep established TCP connections (TCP repair mode; needs nft: their packets are dropped "
                   "from the dump until the restore, or until the dump ends with -R).")
@click.option("--tcp-close", is_flag=True, help="Restore established TCP connections as closed sockets.")
@click.option("--skip-in-flight", is_flag=True,
              help="Leave out TCP connections waiting in a listener's accept queue (their clients are reset).")
@click.option("--backend", type=click.Choice(("auto",) + BACKENDS), default="auto", show_default=True,
              help="How to take the state: /dev/crak (kmod) or ptrace; auto takes kmod when loaded.")
@click.option("--ipc-sem", "ipc_sems", type=int, multiple=True, metavar="ID",
              help="Also dump System V semaphore set ID (repeatable). Sets a dumped process "
                   "operated on last are dumped anyway.")
@click.option("--ipc-msg", "ipc_msgs", type=int, multiple=True, metavar="ID",
              help="Also dump System V message queue ID (repeatable). Queues a dumped process "
                   "sent to or received from last are dumped anyway.")
def dump(pid, images_dir, leave_running, shell_job, ext_unix_sk, tcp_established, tcp_close, skip_in_flight, backend,
         ipc_sems, ipc_msgs):
    """Checkpoint process PID into an image folder, then kill it (unless -R).

    System V IPC: shared memory segments the tree has attached, and the
    semaphore sets and message queues it used last or that --ipc-sem/--ipc-msg
    name, go into the image; without -R they are then removed from the host
    with the tree. Restore recreates them with the same ids and keys.
    """
    dump_mod.dump(pid, images_dir, DumpOptions(backend=backend, leave_running=leave_running, shell_job=shell_job,
                                               ext_unix_sk=ext_unix_sk, ipc_sems=ipc_sems, ipc_msgs=ipc_msgs,
                                               tcp_established=tcp_established, tcp_close=tcp_close,
                                               skip_in_flight=skip_in_flight))


COMMANDS = (dump,)
