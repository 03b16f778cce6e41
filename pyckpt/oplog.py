"""The full debug log every dump and restore writes into its image folder."""

import contextlib
import logging
import os

_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


@contextlib.contextmanager
def log_to(path):
    logger = logging.getLogger("pyckpt")
    handler = None
    try:
        handler = logging.FileHandler(path)
    except OSError as err:
        logger.warning("cannot write log %s: %s", path, err.strerror)
    previous = logger.level
    if handler:
        handler.setFormatter(logging.Formatter(_FORMAT))
        handler.setLevel(logging.DEBUG)
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG)
        logger.debug("pyckpt pid %d logging to %s", os.getpid(), path)
    try:
        yield
    finally:
        if handler:
            logger.removeHandler(handler)
            handler.close()
            logger.setLevel(previous)
