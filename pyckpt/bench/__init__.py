"""`pyckpt bench`: checkpoint/restore timings of pyckpt's backends and CRIU, side by side.

workloads.py builds and drives the C workloads shipped in workloads/,
backends.py runs one dump or restore through a backend, runner.py
interleaves them round by round, report.py turns samples into a table,
JSON, CSV and Markdown, plots.py draws them (matplotlib, optional).
Nothing here is imported unless `pyckpt bench` runs.
"""
