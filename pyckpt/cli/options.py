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


# Accepted after the command too (`pyckpt dump -v ...`), as CRIU does.
verbose = click.option("-v", "--verbose", count=True, expose_value=False, callback=_raise_verbosity,
                       help="Log what happens on stderr.")
