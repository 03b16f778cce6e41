"""pyckpt check-image: is this folder a whole, undamaged image?"""

import click

from .. import arch, incremental
from ..images.store import ImageReader
from ..restorer.image import Image
from . import options


@click.command("check-image")
@options.verbose
@click.argument("images_dir", type=click.Path(file_okay=False))
def check_image(images_dir):
    """Verify every file of the image in IMAGES_DIR against its manifest (sizes and checksums), and
    so every parent image of an incremental one (and that none changed since); and every value in
    it against the limits restore checks (images/validate.py, images/relations.py) on an image of this arch."""
    reader = ImageReader(images_dir)
    inv = reader.inventory
    what = "pre-dump (memory only)" if inv.pre_dump else "image"
    if inv.arch == arch.host().NAME and not inv.pre_dump:
        Image(images_dir)
        values = "every value within limits"
    elif inv.pre_dump:
        values = "values not checked (a pre-dump)"
    else:
        values = "values not checked (an image of another arch)"
    click.echo(f"{images_dir}: whole {what}, {len(reader.entries)} files, {values}; {inv.arch}, taken by the "
               f"{inv.backend} source on kernel {inv.kernel_release}, root process {inv.root_pid}")
    for parent in incremental.chain(reader)[1:]:
        click.echo(f"  parent {parent.dir}: whole, {len(parent.entries)} files, unchanged since")


COMMANDS = (check_image,)
