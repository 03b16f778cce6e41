"""pyckpt: checkpoint and restore Linux processes."""

__version__ = "0.1.0"
