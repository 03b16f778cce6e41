"""The interface every source implements, and the records it returns.

A source freezes a process tree, reports what only a frozen target can
tell (registers, signal state, present pages), copies pages into an image
file, and finally thaws or kills the tree. Everything else the dump reads
from /proc itself, so it is the same whichever source ran.

Lifecycle: `with source:` freezes on entry and, if the block raises, thaws
the targets on exit, leaving them as they were.
"""

import abc
from dataclasses import dataclass, field
from typing import Optional

from .. import proc
from ..errors import NoSuchProcess


@dataclass
class ThreadState:
    tid: int
    regsets: dict                  # name -> raw bytes: "prstatus" plus arch.EXTRA_REGSETS names
    sigmask: int
    pending: list                  # raw 128-byte siginfo records, queue order
    rseq: Optional[tuple] = None   # (pointer, size, signature)
    altstack: tuple = (0, 2, 0)    # (sp, flags, size); flags 2 = SS_DISABLE
    clear_child_tid: int = 0
    robust_list: tuple = (0, 0)    # (head, len)
    seccomp_mode: int = 0          # SECCOMP_MODE_DISABLED 0, STRICT 1, FILTER 2
    seccomp_filters: list = field(default_factory=list)  # SeccompFilterState, oldest first


@dataclass(frozen=True)
class SeccompFilterState:
    program: bytes                 # struct sock_filter[] as PTRACE_SECCOMP_GET_FILTER returns it
    log: bool = False              # installed with SECCOMP_FILTER_FLAG_LOG


@dataclass
class PosixTimerState:
    """One timer_create timer, as /proc/PID/timers, timer_gettime and timer_getoverrun see it."""
    id: int
    clock: int                     # clockid as given to timer_create (CPU clocks encode a pid/tid)
    notify: int                    # sigev_notify, SIGEV_THREAD_ID included
    signo: int
    sigval: int
    target: int                    # pid (process signal) or tid (SIGEV_THREAD_ID) the signal goes to
    value_ns: int = 0              # time left, 0: disarmed
    interval_ns: int = 0
    overrun: int = 0


@dataclass
class ProcessState:
    pid: int
    threads: list                  # ThreadState, leader first
    sigactions: list               # (signo, handler, flags, restorer, mask), non-default only
    shared_pending: list           # raw siginfo records
    brk: int
    pdeathsig: int = 0
    dumpable: int = 1
    stopped: bool = False          # was in a job-control stop before the freeze
    stop_signal: int = 0           # the signal of that stop (as the parent's waitid reports it)
    stop_collected: bool = False   # the parent (in the tree) already took the stop report with wait()
    membarrier: int = 0            # MEMBARRIER_CMD_REGISTER_* commands in effect, ORed
    child_subreaper: bool = False  # PR_GET_CHILD_SUBREAPER
    securebits: int = 0
    thp_disable: int = 0           # prctl(PR_GET_THP_DISABLE): 0, or 1 | PR_THP_DISABLE_EXCEPT_ADVISED
    mlock_future: int = 0          # mlockall(2) flags for mappings made from now on: 0 or MCL_FUTURE[|MCL_ONFAULT]
    itimers: list = field(default_factory=list)  # (which, value_us, interval_us), armed ones only
    posix_timers: list = field(default_factory=list)  # PosixTimerState, by id
    extra: dict = field(default_factory=dict)


@dataclass
class PageRun:
    vaddr: int
    nr_pages: int


class Source(abc.ABC):
    name = "?"
    injects = False                # run_in_target works (syscalls made by the target itself)

    def __init__(self, root_pid, options):
        self.root_pid = root_pid
        self.options = options

    def __enter__(self):
        self.freeze()
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            self.release(kill=False)
        return False

    @abc.abstractmethod
    def freeze(self):
        """Stop every thread of every live process in the tree; return the pids, parents first.

        Zombies in the tree are not frozen (there is nothing to stop); they
        are in `self.zombies`. Sources find the tree with `_walk_tree`.
        """

    zombies = ()

    def _walk_tree(self, freeze_one):
        """Freeze the tree rooted at root_pid with `freeze_one(pid)`, parents first,
        until no process appears that is not frozen (a child forked meanwhile)."""
        frozen, zombies = [], []
        while True:
            new = [p for p in proc.process_tree(self.root_pid) if p not in frozen and p not in zombies]
            if not new:
                break
            for pid in new:
                try:
                    state = proc.read_stat(pid).state
                except NoSuchProcess:
                    continue  # exited and reaped before its parent was frozen
                if state in ("Z", "X"):
                    zombies.append(pid)
                else:
                    freeze_one(pid)
                    frozen.append(pid)
        tree = proc.process_tree(self.root_pid)
        # A process that exited while being frozen is a zombie of its (frozen) parent now.
        zombies += [p for p in frozen if p in tree and proc.read_stat(p).state in ("Z", "X")]
        self.zombies = [p for p in tree if p in zombies]
        return [p for p in tree if p in frozen and p not in zombies]

    @abc.abstractmethod
    def collect(self, pid) -> ProcessState:
        """Registers and signal state of a frozen process."""

    def vmas(self, pid):
        """The address space as proc.Vma records (smaps-style VmFlags mnemonics)."""
        return proc.read_vmas(pid)

    @abc.abstractmethod
    def dump_pages(self, pid, vmas, out) -> list:
        """Copy the pages of `vmas` that must be saved into file `out`; return PageRuns in file order.

        A page is saved iff it is present or swapped and is not a page of the
        backing file (anonymous, including copy-on-write copies and the zero page).
        """

    def pipe_contents(self, pid, fd, size):
        """The bytes buffered in the pipe at fd, without consuming them."""
        from ..files import pipe
        return pipe.peek(pid, fd, size)

    def unix_queue(self, pid, fd, sock_type, shut_rd, what):
        """[(data, sender name, fds)] queued on the unix socket at fd, oldest first, without consuming
        them; fds: pyckpt's copies of the files a message carries (SCM_RIGHTS), closed by the caller."""
        from ..files import unixqueue
        return unixqueue.peek_queue(pid, fd, sock_type, shut_rd, what)

    def unix_pending_queue(self, pid, listener_fd, index, sock_type, what):
        """What the client of the listener's index-th unaccepted connection sent, or None when
        this source cannot read it (user space cannot without accepting the connection)."""
        return None

    def run_in_target(self, pid, fn):
        """fn(injector): syscalls made by frozen `pid` itself (sources that can inject them)."""
        from ..errors import UnsupportedState
        raise UnsupportedState(f"the {self.name} source cannot make process {pid} run syscalls")

    @abc.abstractmethod
    def release(self, kill):
        """Thaw the tree (kill=False) or kill it (kill=True). Safe to call twice."""
