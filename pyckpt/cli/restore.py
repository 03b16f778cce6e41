"""pyckpt restore."""

import sys

import click

from .. import restorer as restore_mod
from ..options import RestoreOptions
from . import options
from .criu_flags import criu_flags, log_file


@click.command("restore")
@options.verbose
@options.images_dir
@click.option("-d", "--restore-detached", "detach", is_flag=True, help="Return once the process runs.")
@options.shell_job
@options.ext_unix_sk
@click.option("--pidfile", type=click.Path(dir_okay=False), help="Write the restored PID here once it runs.")
@criu_flags
def restore(images_dir, detach, shell_job, ext_unix_sk, pidfile, criu):
    """Bring an image back to life with its old PID.

    Without -d, wait for the process and exit with its exit status.
    """
    result = restore_mod.restore(images_dir, RestoreOptions(
        detach=detach, shell_job=shell_job, ext_unix_sk=ext_unix_sk, pidfile=pidfile,
        log_file=log_file(criu, RestoreOptions.log_file), tcp_close=criu.tcp_close))
    if not detach:
        sys.exit(result)


COMMANDS = (restore,)
