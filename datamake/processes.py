"""The processes datamake starts and the signals it takes (the handlers of the build and
of its pool workers; `watch.py` forwards signals to the builds it runs), and the only
user of `prctl`.

- Children die with the build. A pool worker or the forked half-parser asks Linux for a
  signal when its parent dies (`PR_SET_PDEATHSIG`), so a build killed with SIGKILL (a
  CI timeout, the OOM killer) leaves nothing running. (No child keeps the build lock
  either: `state.py` closes it in every forked child.)
- SIGTERM is an interruption, as Ctrl-C is: the build records what finished, stops its
  workers and exits 128 + the signal's number (130 for SIGINT, 143 for SIGTERM).
  Whether a `KeyboardInterrupt` came from a signal or from a recipe's own `raise` is told
  by `interrupted()`: only the first stops the build.
- A shell line runs in a process group of its own, and whatever it leaves running
  (`cmd &`) is stopped and reaped when the line ends: a step's outputs are final when it
  ends, and nothing it started may write to them afterwards, outlive the build, or keep
  the build's output streams open.
"""
from __future__ import annotations

import functools
import os
import signal
import sys
import time
from typing import Any, Callable

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
# How long a shell line's leftover processes (or a line being interrupted) get to end
# after SIGTERM before SIGKILL.
GRACE = 2.0
# How long a pool worker told to stop gets to clean up (its shell line's processes, its
# temporary files) before the alarm ends it, whatever its recipe does with the signal.
WORKER_GRACE = 5


class Interrupted(KeyboardInterrupt):
    """SIGINT (Ctrl-C) or SIGTERM (a CI timeout, `kill`) received by the build or a worker.
    A KeyboardInterrupt, so every path that stops on Ctrl-C stops on it."""

    def __init__(self, signum: int):
        super().__init__()
        self.signum = signum
        self.exit_code = 128 + signum


# The signal that asked this process to stop, if one did (module state: a signal is
# received by the process, whatever object is running).
_received: list[int] = []


def interrupted() -> bool:
    """Whether this process was sent SIGINT or SIGTERM since `handle_signals` (a
    KeyboardInterrupt without that is a recipe's own)."""
    return bool(_received)


def stop_if_interrupted() -> None:
    """Raise Interrupted if this process was sent SIGINT or SIGTERM (a recipe that caught
    the interruption does not keep the build going)."""
    if _received:
        raise Interrupted(_received[0])


def _on_signal(signum: int, frame: Any) -> None:
    _received.append(signum)
    raise Interrupted(signum)


def handle_signals() -> Callable[[], None]:
    """SIGINT and SIGTERM raise `Interrupted` in this process from now on; returns what
    puts the previous handlers back. Outside the main thread (the API called from a
    thread) signals cannot be handled here: nothing changes."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    _received.clear()
    previous = {s: signal.signal(s, _on_signal) for s in (signal.SIGINT, signal.SIGTERM)}

    def restore() -> None:
        for s, h in previous.items():
            signal.signal(s, h)

    return restore


@functools.lru_cache(maxsize=1)
def _libc() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True)
    except (ImportError, OSError):  # a Python without ctypes: no prctl
        return None


def _prctl(option: int, value: int) -> bool:
    libc = _libc()
    if libc is None:
        return False
    import ctypes

    return libc.prctl(option, ctypes.c_ulong(value), 0, 0, 0) == 0


def die_with_parent(parent: int, signum: int = signal.SIGKILL) -> None:
    """Have this (forked) process sent `signum` when its parent `parent` dies; exit at
    once if it is dead already (it died before the request was made: the kernel would
    never send the signal). Linux only; elsewhere nothing is asked."""
    if _prctl(PR_SET_PDEATHSIG, signum) and os.getppid() != parent:
        os._exit(1)


# -- pool workers -------------------------------------------------------------------

_in_job: list[bool] = []  # in a pool worker: whether a job is running (see worker_init)


def worker_init(parent: int) -> None:
    """A pool worker's first act. Ctrl-C is the build's to handle (it stops its workers
    itself). SIGTERM — from the build stopping it, or sent when the build died — stops
    the job it runs as an interruption (its shell line's processes stopped, its
    temporary files removed) and then the worker; an idle worker ends at once."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _worker_on_term)
    _received.clear()
    die_with_parent(parent, signal.SIGTERM)


def _worker_on_term(signum: int, frame: Any) -> None:
    if _received:
        # Stopping already. (The parent-death signal comes again each time the worker is
        # handed to another parent: once per thread of the dead build, then to init.)
        return
    _received.append(signum)
    if not _in_job:
        os._exit(128 + signum)
    # Whatever the recipe does with the interruption (a bare `except:`), the worker ends.
    signal.signal(signal.SIGALRM, signal.SIG_DFL)
    signal.setitimer(signal.ITIMER_REAL, WORKER_GRACE)
    raise Interrupted(signum)


def in_worker(fn: Callable[..., Any], *args: Any) -> Any:
    """Run a job in a pool worker: an interruption (SIGTERM) ends the worker once the job
    has cleaned up."""
    _in_job.append(True)
    try:
        return fn(*args)
    except Interrupted as e:
        os._exit(e.exit_code)
    finally:
        _in_job.clear()


# -- shell lines --------------------------------------------------------------------

def run_line(argv: list[str], cwd: Any, stdout: Any = None,
             env: dict[str, str] | None = None) -> int:
    """Run a command in a session (and process group) of its own and wait for it; what it
    leaves running is then stopped (SIGTERM, then SIGKILL after GRACE seconds) and, on
    Linux, reaped (this process is their "subreaper" meanwhile, so they do not end as
    zombies of an init that never reaps them, as in many containers). Interrupted, the
    whole group is stopped the same way. Returns the command's exit status (negative:
    the signal that killed it). Raises OSError when it cannot start.

    A session of its own rather than the build's process group: Ctrl-C at a terminal
    reaches the build, which stops the line itself; and a line that reads the terminal
    is not stopped by job control (SIGTTIN) as a background group would be.
    """
    import subprocess

    reaper = _prctl(PR_SET_CHILD_SUBREAPER, 1)
    try:
        proc = subprocess.Popen(argv, cwd=cwd, stdout=stdout, env=env, start_new_session=True)
        try:
            _wait_exited(proc.pid)
        except BaseException:
            _stop_group(proc)
            raise
        _stop_group(proc)
        return proc.returncode
    finally:
        if reaper:
            _prctl(PR_SET_CHILD_SUBREAPER, 0)


def _wait_exited(pid: int) -> None:
    """Wait until `pid` has exited, leaving it unreaped: while it is a zombie its pid
    (the group's id) cannot be given to another process, so signalling the group
    cannot reach a stranger."""
    waitid = getattr(os, "waitid", None)
    if waitid is None:
        return
    while True:
        try:
            if waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT) is not None:
                return
        except ChildProcessError:
            return


def _signal_group(pg: int, signum: int) -> None:
    try:
        os.killpg(pg, signum)
    except (ProcessLookupError, PermissionError):
        pass


def _stop_group(proc: Any) -> None:
    """Stop the process group led by `proc` (its leader exited, or is interrupted):
    SIGTERM to all, the leader reaped (its status kept by `proc`), then the others that
    are this process's children reaped, SIGKILL for those alive after GRACE seconds."""
    import subprocess

    pg = proc.pid
    _signal_group(pg, signal.SIGTERM)
    try:
        proc.wait(timeout=GRACE)
    except subprocess.TimeoutExpired:
        _signal_group(pg, signal.SIGKILL)
        proc.wait()
    deadline = time.monotonic() + GRACE
    while True:
        try:
            pid, _ = os.waitpid(-pg, os.WNOHANG)
        except ChildProcessError:
            return  # none left that is ours to reap
        if pid:
            continue
        if time.monotonic() >= deadline:
            # Safe: a member not yet reaped (a zombie at worst) keeps the group's id.
            _signal_group(pg, signal.SIGKILL)
            deadline = float("inf")
        time.sleep(0.005)


def reset_peak_memory() -> None:
    """Start measuring this process's peak resident memory afresh (Linux: the kernel's
    high-water mark is reset through /proc; elsewhere nothing is measured). A few
    microseconds: it runs before every step."""
    try:
        fd = os.open("/proc/self/clear_refs", os.O_WRONLY)
    except OSError:
        return
    try:
        os.write(fd, b"5")
    except OSError:
        pass
    finally:
        os.close(fd)


def peak_memory_kb() -> int | None:
    """This process's peak resident memory (kB) since `reset_peak_memory`, or None
    where the system does not say. (Not getrusage's ru_maxrss, which can keep the
    peak of the process this one was forked from before it became datamake.)"""
    try:
        fd = os.open("/proc/self/status", os.O_RDONLY)
    except OSError:
        return None
    try:
        data = os.read(fd, 16384)
    except OSError:
        return None
    finally:
        os.close(fd)
    at = data.find(b"\nVmHWM:")
    end = data.find(b"kB", at)
    if at < 0 or end < 0:
        return None
    try:
        return int(data[at + 7:end])
    except ValueError:
        return None
