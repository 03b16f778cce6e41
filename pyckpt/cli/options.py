"""Options shared by several commands, declared once."""

import click

images_dir = click.option(
    "-D", "--images-dir", required=True, type=click.Path(file_okay=False),
    help="Folder holding the image.")
shell_job = click.option(
    "-j", "--shell-job", is_flag=True,
    help="The process is a job of a shell: allow its terminal, reattach it at restore.")
