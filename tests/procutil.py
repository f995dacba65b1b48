"""Processes seen from outside, for the tests of what datamake starts and stops.

A recipe writes its process's identity with `ME` (its pid and start time, so that a
pid given to another process meanwhile is not taken for it); `alive` says whether that
process still runs. A process that has ended but was never reaped (a zombie: on a
machine whose init does not reap, every orphan ends as one) is not alive.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Callable

# Python for a Datafile's `python:` block: `me(name)` writes this process's identity to
# `pids/<name>`.
ME = """
    def me(name):
        with open("/proc/self/stat") as f:
            start = f.read().rsplit(")", 1)[1].split()[19]
        os.makedirs("pids", exist_ok=True)
        with open(f"pids/{name}.tmp", "w") as f:
            f.write(f"{os.getpid()} {start}")
        os.replace(f"pids/{name}.tmp", f"pids/{name}")
"""


def state(ident: str) -> str | None:
    """The state letter (R, S, Z, ...) of the process `ident` ("pid start"), or None
    when no such process exists."""
    pid, start = ident.split()
    try:
        data = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = data.rsplit(")", 1)[1].split()
    return fields[0] if fields[19] == start else None


def alive(ident: str) -> bool:
    return state(ident) not in (None, "Z", "X")


def idents(folder: Path) -> dict[str, str]:
    """name -> identity of each process that wrote one to `folder`."""
    if not folder.exists():
        return {}
    return {p.name: p.read_text() for p in folder.iterdir() if not p.name.endswith(".tmp")}


def wait_until(cond: Callable[[], bool], timeout: float, what: str) -> None:
    """Wait for `cond()` (a hang guard: `timeout` is generous, never a measure)."""
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"{what}: not after {timeout} s"
        time.sleep(0.02)


def lock_holders(pids: list[int], root: Path) -> list[int]:
    """The processes among `pids` with a descriptor open on `root/.datamake/lock`."""
    lock = str((root / ".datamake" / "lock").resolve())
    out = []
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") == lock:
                    out.append(pid)
                    break
            except OSError:
                continue
    return out
