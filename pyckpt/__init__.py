"""pyckpt: checkpoint and restore Linux processes.

The library API (see pyckpt/api.py): pyckpt.dump, pyckpt.pre_dump,
pyckpt.restore, pyckpt.check. Importing pyckpt stays cheap: each imports
its machinery on first call.
"""

__version__ = "0.1.0"


def dump(pid, images_dir, options=None):
    """Checkpoint the tree rooted at `pid` into `images_dir` (pyckpt.options.DumpOptions)."""
    from .api import dump as _dump
    return _dump(pid, images_dir, options)


def pre_dump(pid, images_dir, options=None):
    """Memory only, the tree left running."""
    from .api import pre_dump as _pre_dump
    return _pre_dump(pid, images_dir, options)


def restore(images_dir, options=None):
    """Restore an image with its PIDs; a handle (.pid, .wait()) once the tree runs."""
    from .api import restore as _restore
    return _restore(images_dir, options)


def check():
    """What this machine offers (a pyckpt.kerndat.KernDat)."""
    from .api import check as _check
    return _check()
