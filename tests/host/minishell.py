"""A tiny job-control shell for the shell-job tests (run as a script).

Usage: python minishell.py TTY

It becomes the session leader with TTY as its controlling terminal, then
reads one JSON command per line on stdin and answers on stdout:

  {"argv": [...], "cwd": DIR, "out": FILE or null}
      runs argv as a foreground job in its own process group, with stdin,
      stdout and stderr on the terminal (stdout and stderr on FILE if
      given); answers {"started": PID}, later {"exited": PID, "status": N}
      (N is the exit code, or -SIG if a signal killed it).

It exits when stdin is closed. Only the test harness talks to it.
"""

import fcntl
import json
import os
import select
import signal
import sys
import termios

JOB_SIGNALS = (signal.SIGTTOU, signal.SIGTTIN, signal.SIGTSTP)


def reply(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def start_job(tty_fd, cmd):
    pid = os.fork()
    if pid == 0:
        try:
            os.setpgid(0, 0)
            for sig in JOB_SIGNALS:
                signal.signal(sig, signal.SIG_DFL)
            for fd in (0, 1, 2):
                os.dup2(tty_fd, fd)
            if cmd.get("out"):
                out = os.open(cmd["out"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
                os.dup2(out, 1)
                os.dup2(out, 2)
            os.chdir(cmd.get("cwd") or ".")
            os.execvp(cmd["argv"][0], cmd["argv"])
        finally:
            os._exit(127)
    try:
        os.setpgid(pid, pid)
    except OSError:
        pass  # the child already did it (or already exec'd)
    try:
        os.tcsetpgrp(tty_fd, pid)
    except OSError:
        pass
    return pid


def main():
    tty_path = sys.argv[1]
    for sig in JOB_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
    if os.getsid(0) != os.getpid():
        os.setsid()
    tty_fd = os.open(tty_path, os.O_RDWR)
    fcntl.ioctl(tty_fd, termios.TIOCSCTTY, 0)
    os.tcsetpgrp(tty_fd, os.getpgrp())

    jobs = set()
    buf = b""
    stdin_open = True
    while stdin_open or jobs:
        ready, _, _ = select.select([0] if stdin_open else [], [], [], 0.05)
        if ready:
            data = os.read(0, 65536)
            if not data:
                stdin_open = False
            buf += data
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                if line.strip():
                    pid = start_job(tty_fd, json.loads(line))
                    jobs.add(pid)
                    reply({"started": pid})
        for pid in list(jobs):
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                jobs.discard(pid)
                code = os.waitstatus_to_exitcode(status)
                try:
                    os.tcsetpgrp(tty_fd, os.getpgrp())
                except OSError:
                    pass
                reply({"exited": pid, "status": code})
        if not stdin_open and jobs:
            break  # the harness has gone: leave the jobs to it


if __name__ == "__main__":
    main()
