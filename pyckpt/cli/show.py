"""pyckpt show: the whole image as JSON."""

import json

import click

from . import options

from ..show import image_as_dict


@click.command("show")
@options.verbose
@click.argument("images_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--no-verify", is_flag=True, help="Show even if the manifest's checksums do not match.")
def show(images_dir, no_verify):
    """Print the image in IMAGES_DIR as JSON (registers in hex)."""
    click.echo(json.dumps(image_as_dict(images_dir, verify=not no_verify), indent=2))


COMMANDS = (show,)
