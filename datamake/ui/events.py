"""Builds tell an open pipeline page what they do: one JSON line per event, appended to
`.datamake/events` while a page server (`datamake --ui`) keeps its marker,
`.datamake/ui`, holding its process id.

The writing side is a reporter wrapper: a build that finds the marker (one `stat` at its
start; nothing at all when there is none) wraps its reporter in a `PageReporter`, which
passes every call on and also appends the build's events. The reading side is `tail`,
which the page server polls. Nothing here imports the rest of datamake: the executor
imports this module only when the marker exists.

Event lines (every one has `event`, `pid` of the build and `t`, its wall-clock time):

    {"event": "waiting", "holder": PID-or-null}        another build holds the lock
    {"event": "start", "targets": [...], "total": N}   the build began (N rules)
    {"event": "step-start", "step": S, "reasons": [{"code": C, "name": N-or-null}]}
    {"event": "step-progress", "step": S, "done": N, "total": N-or-null}
    {"event": "rule-progress", "rule": R, "done": N, "total": N}
    {"event": "step-done", "step": S, "status": "built"|"cached", "seconds": X}
    {"event": "step-failed", "step": S, "error": TEXT, "seconds": X}
    {"event": "end", "status": "ok"|"failed"|"interrupted"|"error", "seconds": X}

A step is `name` or `name[key]` (one partition of a pattern rule).
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Callable, TypeVar

MARKER = "ui"  # in .datamake/: the page server's pid (the executor checks this name)
EVENTS = "events"  # in .datamake/: the events, one JSON line each
_MAX_LINE = 64 * 1024  # a failure's text is cut to this, so one event stays one write

R = TypeVar("R")


def page_pid(state_dir: Path) -> int | None:
    """The pid of the page server named by the marker, when that process is alive."""
    try:
        pid = int((Path(state_dir) / MARKER).read_text().strip() or 0)
    except (OSError, ValueError):
        return None
    return pid if pid > 0 and alive(pid) else None


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


class PageReporter:
    """A reporter that also appends the build's events for the page. Every other call
    (messages, `finish`, `document`, attributes) goes to the wrapped reporter as is."""

    def __init__(self, inner: Any, fd: int, targets: list[str]):
        self._inner = inner
        self._fd = fd
        self._targets = targets
        self._pid = os.getpid()
        self._t0 = time.perf_counter()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def _emit(self, event: str, **fields: Any) -> None:
        doc = {"event": event, "pid": self._pid, "t": time.time(), **fields}
        line = json.dumps(doc, separators=(",", ":"), default=str)
        if len(line) > _MAX_LINE and "error" in doc:
            doc["error"] = str(doc["error"])[: _MAX_LINE // 2] + "\n[cut]"
            line = json.dumps(doc, separators=(",", ":"), default=str)
        try:
            os.write(self._fd, (line + "\n").encode())
        except OSError:
            pass  # the page misses an event; the build goes on

    def waiting_for_lock(self, pid: int | None) -> None:
        self._emit("waiting", holder=pid)
        self._inner.waiting_for_lock(pid)

    def start(self, total: int, dry_run: bool) -> None:
        self._emit("start", targets=self._targets, total=total)
        self._inner.start(total, dry_run)

    def step_start(self, step: str, reasons: tuple) -> None:
        self._emit("step-start", step=step,
                   reasons=[{"code": r.code, "name": r.name} for r in reasons])
        self._inner.step_start(step, reasons)

    def step_progress(self, step: str, done: int, total: int | None) -> None:
        self._emit("step-progress", step=step, done=done, total=total)
        self._inner.step_progress(step, done, total)

    def rule_progress(self, rule: str, done: int, total: int) -> None:
        self._emit("rule-progress", rule=rule, done=done, total=total)
        self._inner.rule_progress(rule, done, total)

    def step_done(self, step: str, status: str, seconds: float) -> None:
        self._emit("step-done", step=step, status=status, seconds=seconds)
        self._inner.step_done(step, status, seconds)

    def step_failed(self, step: str, text: str, help: str | None, seconds: float) -> None:
        error = text.rstrip("\n") + (f"\nhelp: {help}" if help else "")
        self._emit("step-failed", step=step, error=error, seconds=seconds)
        self._inner.step_failed(step, text, help, seconds)

    def end(self, status: str) -> None:
        self._emit("end", status=status, seconds=time.perf_counter() - self._t0)


def followed(state_dir: Path, reporter: Any, targets: list[str],
             run: Callable[[Any], R]) -> R:
    """`run(reporter)` (a build), its events appended for the page when a page server
    is alive; else `run(reporter)` alone."""
    if page_pid(state_dir) is None:
        return run(reporter)
    try:
        fd = os.open(Path(state_dir) / EVENTS, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    except OSError:
        return run(reporter)
    page = PageReporter(reporter, fd, list(targets))
    status = "error"
    try:
        result = run(page)
        status = "failed" if getattr(result, "failed", None) else "ok"
        return result
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    finally:
        page.end(status)
        os.close(fd)


def tail(path: Path, pos: int, ino: int | None) -> tuple[list[dict[str, Any]], int, int | None]:
    """The whole event lines appended to `path` since byte `pos` of the file with inode
    `ino`, and where to read next. A file replaced or truncated is read from its start;
    a line not yet ended waits for the next call; a line that is not an event is skipped."""
    try:
        with open(path, "rb") as f:
            st = os.fstat(f.fileno())
            if st.st_ino != ino or st.st_size < pos:
                pos, ino = 0, st.st_ino
            if st.st_size == pos:
                return [], pos, ino
            f.seek(pos)
            data = f.read(st.st_size - pos)
    except FileNotFoundError:
        return [], 0, None
    end = data.rfind(b"\n") + 1
    events = []
    for line in data[:end].split(b"\n"):
        if not line:
            continue
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        if isinstance(doc, dict) and isinstance(doc.get("event"), str):
            events.append(doc)
    return events, pos + end, ino


def truncate_read(path: Path, pos: int, ino: int | None) -> int:
    """Empty the events file once everything in it was read (`pos` is its end), so that
    a long session does not grow it without end; returns where to read next. A line a
    build appends between the check and the truncation is lost (the page then learns
    that build's outcome when it ends and the page plans again)."""
    try:
        fd = os.open(path, os.O_WRONLY)
    except OSError:
        return pos
    try:
        st = os.fstat(fd)
        if st.st_ino == ino and st.st_size == pos:
            os.ftruncate(fd, 0)
            return 0
        return pos
    finally:
        os.close(fd)

