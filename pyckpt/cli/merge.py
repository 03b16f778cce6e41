"""pyckpt merge: flatten an incremental image's chain into one standalone image."""

import click

from . import options


@click.command("merge")
@options.verbose
@click.argument("images_dir", type=click.Path(file_okay=False))
@click.argument("out_dir", type=click.Path(file_okay=False))
def merge(images_dir, out_dir):
    """Write IMAGES_DIR with every page it keeps in its parent images into OUT_DIR, a
    standalone image (the chain is verified first); the parents may then be removed."""
    from .. import merge as merge_mod
    pages = merge_mod.merge(images_dir, out_dir)
    click.echo(f"{out_dir}: standalone image, {pages} pages")


COMMANDS = (merge,)
