"""Options shared by several commands, declared once."""

import click

images_dir = click.option(
    "-D", "--images-dir", required=True, type=click.Path(file_okay=False),
    help="Folder holding the image.")
shell_job = click.option(
    "-j", "--shell-job", is_flag=True,
    help="The process is a job of a shell: allow its terminal, reattach it at restore.")

ext_unix_sk = click.option(
    "--ext-unix-sk", is_flag=True,
    help="Allow unix sockets connected to sockets outside the dump: a datagram socket connected to a "
         "named outside socket is reconnected to it by name at restore (give it to dump and restore).")


def _raise_verbosity(ctx, _param, count):
    if count:
        from .main import set_verbosity
        set_verbosity(ctx, count)


def _set_log_level(ctx, _param, level):
    if level is not None:
        from .main import set_log_level
        set_log_level(ctx, level)


def verbose(func):
    """-v (debug detail on stderr) and CRIU's -v0..-v4 (read as --log-level=N), accepted after the
    command too (`pyckpt dump -v4 ...`), as CRIU does."""
    func = click.option("--log-level", type=click.IntRange(0), expose_value=False, callback=_set_log_level,
                        hidden=True)(func)
    return click.option("-v", "--verbose", count=True, expose_value=False, callback=_raise_verbosity,
                        help="Log what happens on stderr; -v0..-v4 as CRIU: nothing, errors, warnings "
                             "(default), info, debug.")(func)
