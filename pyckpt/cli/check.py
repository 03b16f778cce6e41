"""pyckpt check."""

import sys

import click

from . import options

from .. import kerndat


@click.command("check")
@options.verbose
def check():
    """Report what this machine supports; exit non-zero if dump/restore cannot work here."""
    kd = kerndat.probe()
    width = max(len(f.name) for f in kd.features)
    for f in kd.features:
        mark = "yes" if f.ok else ("NO " if f.required else "no ")
        click.echo(f"{f.name:<{width}}  {mark}  {f.detail}")
    if kd.usable:
        click.echo("Looks good.")
    else:
        missing = ", ".join(f.name for f in kd.features if f.required and not f.ok)
        click.echo(f"pyckpt cannot dump/restore here: missing {missing}", err=True)
        sys.exit(1)


COMMANDS = (check,)
