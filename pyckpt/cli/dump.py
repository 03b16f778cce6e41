"""pyckpt dump."""

import click

from .. import dumper as dump_mod
from .. import tracking
from ..options import DumpOptions
from ..sources import BACKENDS
from . import options
from .criu_flags import criu_flags, log_file


def _incremental(fn):
    fn = click.option("--track-method", type=click.Choice(("auto",) + tracking.METHODS), default="auto",
                      show_default=True,
                      help="How written pages are found: userfaultfd write-protect (uffd-wp), soft-dirty bits, "
                           "or compare contents with the parent (compare); auto takes the first this machine "
                           "has (see pyckpt check).")(fn)
    fn = click.option("--track-mem", is_flag=True,
                      help="Track pages written from this image on, for the next --prev-images-dir dump "
                           "(refused when this machine cannot).")(fn)
    return click.option("--prev-images-dir", metavar="DIR",
                        help="Parent image, relative to -D (e.g. ../1): write only pages changed since it, "
                             "keep the rest there.")(fn)


_backend = click.option("--backend", type=click.Choice(("auto",) + BACKENDS), default="auto", show_default=True,
                        help="How to take the state: /dev/crak (kmod) or ptrace; auto takes kmod when loaded.")


@click.command("dump")
@options.verbose
@click.option("-t", "--tree", "pid", required=True, type=int, help="PID of the process (tree root) to dump.")
@options.images_dir
@click.option("-R", "--leave-running", is_flag=True, help="Let the process go on after the dump.")
@options.shell_job
@options.ext_unix_sk
@_backend
@click.option("--ipc-sem", "ipc_sems", type=int, multiple=True, metavar="ID",
              help="Also dump System V semaphore set ID (repeatable). Sets a dumped process "
                   "operated on last are dumped anyway.")
@click.option("--ipc-msg", "ipc_msgs", type=int, multiple=True, metavar="ID",
              help="Also dump System V message queue ID (repeatable). Queues a dumped process "
                   "sent to or received from last are dumped anyway.")
@criu_flags
@_incremental
def dump(pid, images_dir, leave_running, shell_job, ext_unix_sk, backend, ipc_sems, ipc_msgs, criu,
         prev_images_dir, track_mem, track_method):
    """Checkpoint process PID into an image folder, then kill it (unless -R).

    System V IPC: shared memory segments the tree has attached, and the
    semaphore sets and message queues it used last or that --ipc-sem/--ipc-msg
    name, go into the image; without -R they are then removed from the host
    with the tree. Restore recreates them with the same ids and keys.
    """
    dump_mod.dump(pid, images_dir, DumpOptions(
        backend=backend, leave_running=leave_running, shell_job=shell_job, ext_unix_sk=ext_unix_sk,
        ipc_sems=ipc_sems, ipc_msgs=ipc_msgs, log_file=log_file(criu, DumpOptions.log_file),
        ghost_limit=criu.ghost_limit, tcp_established=criu.tcp_established, skip_in_flight=criu.skip_in_flight,
        tcp_close=criu.tcp_close,
        prev_images_dir=prev_images_dir, track_mem=track_mem, track_method=track_method))


@click.command("pre-dump")
@options.verbose
@click.option("-t", "--tree", "pid", required=True, type=int, help="PID of the process (tree root) to pre-dump.")
@options.images_dir
@_backend
@_incremental
def pre_dump(pid, images_dir, backend, prev_images_dir, track_mem, track_method):
    """Save the memory of process PID and let it go on; a later dump with
    --prev-images-dir writes only what changed since. Written pages are tracked
    from then on when this machine can (always with --track-mem, which is refused
    when it cannot)."""
    from .. import predump
    predump.pre_dump(pid, images_dir, DumpOptions(
        backend=backend, leave_running=True, prev_images_dir=prev_images_dir, track_mem=track_mem,
        track_method=track_method))


COMMANDS = (dump, pre_dump)
