"""Frozen option records handed from the CLI (or any caller) to the library."""

from dataclasses import dataclass
from typing import Optional


@dataclass(frozen=True)
class DumpOptions:
    backend: str = "auto"          # auto | ptrace | kmod
    leave_running: bool = False    # -R: thaw instead of kill once the image is whole
    shell_job: bool = False        # allow a controlling terminal (reattached at restore)
    ext_unix_sk: bool = False      # allow unix sockets connected to outside (dgram: reconnected by name)
    log_file: str = "dump.log"     # written into the image folder
    tcp_established: bool = False  # keep established TCP connections (repair mode; packets blocked meanwhile)
    tcp_close: bool = False        # restore established TCP connections closed
    skip_in_flight: bool = False   # leave out connections waiting in a listener's accept queue
    ipc_sems: tuple = ()           # SysV semaphore set ids to dump besides those the tree used last
    ipc_msgs: tuple = ()           # SysV message queue ids, likewise (see sysvipc.py)
    ghost_limit: Optional[int] = None  # bytes: refuse a deleted file larger than this (None: any size)
    prev_images_dir: Optional[str] = None  # parent image, relative to the images dir: write only what changed
    track_mem: bool = False        # (re)start tracking written pages for the next incremental dump
    track_method: str = "auto"     # auto | uffd-wp | soft-dirty | compare (tracking.py)


@dataclass(frozen=True)
class RestoreOptions:
    detach: bool = False           # -d: return once the process runs
    shell_job: bool = False
    ext_unix_sk: bool = False      # reconnect datagram sockets to their outside peers by name
    pidfile: Optional[str] = None  # written with the root PID once it runs
    log_file: str = "restore.log"
    tcp_close: bool = False        # CRIU's: restore established TCP connections as closed sockets
