"""pyckpt check-image: is this folder a whole, undamaged image?"""

import click

from ..images.store import ImageReader
from . import options


@click.command("check-image")
@options.verbose
@click.argument("images_dir", type=click.Path(file_okay=False))
def check_image(images_dir):
    """Verify every file of the image in IMAGES_DIR against its manifest (sizes and checksums)."""
    reader = ImageReader(images_dir)
    inv = reader.inventory
    click.echo(f"{images_dir}: whole image, {len(reader.entries)} files; {inv.arch}, taken by the "
               f"{inv.backend} source on kernel {inv.kernel_release}, root process {inv.root_pid}")


COMMANDS = (check_image,)
