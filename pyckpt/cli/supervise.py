"""pyckpt supervise."""

import sys

import click

from . import options


def _duration(_ctx, param, value):
    from ..supervise import parse_duration
    try:
        return parse_duration(value)
    except ValueError as err:
        raise click.BadParameter(str(err), param=param) from None


@click.command("supervise", context_settings={"ignore_unknown_options": False})
@options.verbose
@options.images_dir
@click.option("-t", "--tree", "pid", type=int, help="Adopt this running job instead of starting COMMAND "
              "(it is dumped once and restored as the supervisor's child; its old parent sees it end).")
@click.option("--resume", is_flag=True, help="Restore DIR/latest (after a reboot, or the supervisor died) and go on.")
@click.option("--status", "show_status", is_flag=True, help="Show the state of a supervised folder and exit.")
@click.option("--interval", default="60s", show_default=True, callback=_duration,
              help="Time between checkpoints (30s, 5m, 1h).")
@click.option("--keep", default=3, show_default=True, type=click.IntRange(min=1),
              help="Complete checkpoints kept (older ones are removed).")
@click.option("--restart-on", "restart_on", default="", metavar="CODES",
              help="Exit statuses that count as a crash, e.g. 1,2 (default: any non-zero; death by a signal always).")
@click.option("--max-restarts", default=5, show_default=True, type=click.IntRange(min=0),
              help="Give up after this many restores within --restart-window.")
@click.option("--restart-window", default="10m", show_default=True, callback=_duration,
              help="The window --max-restarts counts in.")
@click.option("-o", "--output", default="", type=click.Path(dir_okay=False),
              help="The job's stdout and stderr, appended (default DIR/job.out).")
@click.option("--backend", type=click.Choice(("auto", "ptrace", "kmod")), default="auto", show_default=True)
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def supervise(images_dir, pid, resume, show_status, interval, keep, restart_on, max_restarts, restart_window,
              output, backend, command):
    """Run COMMAND (after --) as a job checkpointed every --interval into DIR/<n>/, and restore
    the latest checkpoint, with the same PID, whenever the job crashes.

    \b
      pyckpt supervise -D /ckpt/job --interval 5m -- ./simulate --steps 1000000
      pyckpt supervise -D /ckpt/job --status
      pyckpt supervise -D /ckpt/job --resume        # after a reboot

    DIR/latest points at the newest complete checkpoint. A normal exit (status 0, or one not
    in --restart-on) ends the supervision with the job's status; SIGTERM/SIGINT to the
    supervisor are passed to the job and end it too.
    """
    from .. import supervise as sup
    if show_status:
        for line in sup.status_lines(images_dir):
            click.echo(line)
        return
    modes = [m for m, on in (("start", bool(command)), ("adopt", pid is not None), ("resume", resume)) if on]
    if len(modes) != 1:
        raise click.UsageError("give exactly one of: -- COMMAND, -t PID, --resume (or --status)")
    try:
        codes = tuple(int(c) for c in restart_on.split(",") if c.strip())
    except ValueError:
        raise click.BadParameter(f"{restart_on!r}: a comma-separated list of exit statuses",
                                 param_hint="--restart-on") from None
    _log_events(images_dir)
    opts = sup.SuperviseOptions(interval=interval, keep=keep, restart_on=codes, max_restarts=max_restarts,
                                restart_window=restart_window, output=output, dump_options={"backend": backend})
    sys.exit(sup.run(modes[0], images_dir, opts, argv=command, pid=pid))


def _log_events(images_dir):
    """One line per checkpoint, restore and exit: on stderr and in DIR/supervise.log."""
    import logging
    import os
    logger = logging.getLogger("pyckpt.supervise")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    fmt = logging.Formatter("pyckpt supervise: %(asctime)s %(levelname)s: %(message)s", "%Y-%m-%d %H:%M:%S")
    os.makedirs(images_dir, mode=0o700, exist_ok=True)
    for handler in (logging.StreamHandler(sys.stderr), logging.FileHandler(os.path.join(images_dir, "supervise.log"))):
        handler.setFormatter(fmt)
        logger.addHandler(handler)


COMMANDS = (supervise,)
