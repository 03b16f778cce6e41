"""`pyckpt` entry point: logging, error-to-exit-code mapping, the command group."""

import logging
import sys

import click

from .. import __version__
from ..errors import PyckptError
from .criu_flags import rewrite_levels

log = logging.getLogger("pyckpt")


class PyckptGroup(click.Group):
    def parse_args(self, ctx, args):
        return super().parse_args(ctx, rewrite_levels(args))

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except PyckptError as err:
            if ctx.obj.get("verbose"):
                log.debug("traceback", exc_info=True)
            click.echo(f"pyckpt: error: {err}", err=True)
            sys.exit(err.exit_code)


@click.group(cls=PyckptGroup)
@click.version_option(__version__, prog_name="pyckpt")
@click.option("-v", "--verbose", count=True,
              help="Log what happens (debug detail with -v; -v0..-v4: CRIU's log levels).")
@click.option("--log-level", type=click.IntRange(0), hidden=True)
@click.pass_context
def cli(ctx, verbose, log_level):
    """Checkpoint a running Linux process into files and restore it later."""
    ctx.ensure_object(dict)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("pyckpt: %(levelname)s: %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.DEBUG)
    ctx.obj["handler"] = handler
    set_verbosity(ctx, verbose)
    if log_level is not None:
        set_log_level(ctx, log_level)


# CRIU's log levels (-v0..-v4) as logging levels for stderr; the log file in -D always has debug detail.
CRIU_LEVELS = (logging.CRITICAL + 10, logging.ERROR, logging.WARNING, logging.INFO, logging.DEBUG)


def set_log_level(ctx, level):
    obj = ctx.find_root().obj
    obj["verbose"] = int(level >= 4)
    obj["handler"].setLevel(CRIU_LEVELS[min(level, len(CRIU_LEVELS) - 1)])


def set_verbosity(ctx, count):
    obj = ctx.find_root().obj
    obj["verbose"] = max(obj.get("verbose", 0), count)
    obj["handler"].setLevel(logging.DEBUG if obj["verbose"] else logging.WARNING)


def _register():
    from . import bench, check, check_image, dump, merge, restore, show, supervise
    for module in (bench, check, check_image, dump, merge, restore, show, supervise):
        for command in module.COMMANDS:
            cli.add_command(command)


_register()


def main():
    cli(prog_name="pyckpt")
