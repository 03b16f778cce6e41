"""The click command line: one module per command, shared options in options.py.

Exit codes (documented in README):
  0  success (restore without -d: the restored process's own exit status)
  1  any other error
  2  bad usage (click)
  3  the target holds state pyckpt cannot checkpoint; it was left running
  4  the image is missing, damaged or incompatible
  5  something on this machine is in the way (a PID in use, a changed file)
"""
