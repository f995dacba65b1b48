"""`datamake --watch`: build, then rebuild whenever something the build depends on
changes. The only user of watchdog.

Events only say *when to look*: each rebuild is an ordinary `datamake` run (a child
process, so that edited helper modules are imported afresh), and its planner decides
what runs — a touch with no change runs nothing. What is watched: folders, not files
(the Datafile's folder, recursively, for the Datafile, `params` files and project
modules; and the folder of every local source dataset). An event counts only if it
names a source: the Datafile, a params file, a `.py` file of the project, a source
dataset or one of its partitions. datamake's own outputs, temporary files and
`.datamake/` never count, so a build never triggers itself.
"""
from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, Callable

QUIET = 0.3  # seconds without events before a burst counts as one change


class Watched:
    """What a build depends on, as paths and patterns to match events against."""

    def __init__(self, root: Path):
        self.root = root
        self.files: set[str] = set()
        self.patterns: list[tuple[str, re.Pattern]] = []  # (folder, regex of rel path)
        self.folders: set[str] = {str(root)}
        self.remote: list[str] = []  # source datasets to poll

    def relevant(self, path: str) -> bool:
        if not path:
            return False
        path = os.path.normpath(path)
        if path in self.files:
            return True
        rel = os.path.relpath(path, self.root)
        parts = rel.split(os.sep)
        # Hidden names (.datamake/, .git/, editors' swap and temporary files) never count.
        if any(p.startswith(".") and p not in (".", "..") for p in parts):
            return False
        if path.endswith(".py") and parts[0] != ".." and "site-packages" not in parts:
            return True
        for folder, rx in self.patterns:
            if path.startswith(folder + os.sep) and rx.match(path[len(folder) + 1:]):
                return True
        return False


def watched(project: Any) -> Watched:
    """The sources of a project: its files, its source datasets' files and patterns."""
    from . import locations

    w = Watched(project.root)
    w.files.add(str(project.path))
    for path in project.sources:  # included Datafiles and params files
        w.files.add(os.path.normpath(path))
        w.folders.add(_existing(os.path.dirname(path)))
    g = project.graph
    cat = project.catalog
    for name, info in g.datasets.items():
        if name in g.producer:
            continue  # an output: never a reason to rebuild
        try:
            loc = cat.location(name)
        except Exception:  # noqa: BLE001 - an unset variable: nothing to watch yet
            continue
        if not loc.local:
            w.remote.append(name)
            continue
        if info.placeholders:
            base, rest = locations.listing_base(loc.url)
            folder = base.rstrip("/")
            w.patterns.append((folder, re.compile(locations.pattern_regex(rest) + r"\Z")))
            w.folders.add(_existing(folder))
        else:
            w.files.add(loc.url)
            w.folders.add(_existing(os.path.dirname(loc.url)))
    return w


def _existing(folder: str) -> str:
    """The nearest existing folder (a source's folder may not exist yet)."""
    p = Path(folder)
    while not p.exists() and p.parent != p:
        p = p.parent
    return str(p)


class _Handler:
    """Turns watchdog events into paths on a queue (both ends of a move)."""

    def __init__(self, q: "queue.Queue[str]"):
        self.q = q

    def dispatch(self, event: Any) -> None:
        if event.event_type in ("opened", "closed_no_write"):
            return
        self.q.put(getattr(event, "src_path", "") or "")
        dest = getattr(event, "dest_path", "")
        if dest:
            self.q.put(dest)


def watch(argv: list[str], datafile: Path, load: Callable[[], Any],
          say: Callable[[str], None], poll: float) -> int:
    """Build with `argv` (a datamake command line), then rebuild on every change until
    interrupted. `datafile` is the Datafile's path, watched even while it does not load;
    `load()` gives a fresh Project (or raises); `say` prints a status line.
    Returns the exit code."""
    from .extras import require

    Observer = require("watchdog.observers", "--watch", "watchdog").Observer

    q: "queue.Queue[str]" = queue.Queue()
    handler = _Handler(q)
    observer = Observer()
    scheduled: dict[str, Any] = {}
    w: Watched | None = None
    remote_stamps: dict[str, str | None] = {}
    interrupted = threading.Event()
    child: list[subprocess.Popen] = []

    def on_sigint(signum: int, frame: Any) -> None:
        interrupted.set()
        for c in child:
            if c.poll() is None:
                c.send_signal(signal.SIGINT)

    previous = signal.signal(signal.SIGINT, on_sigint)
    signal.signal(signal.SIGTERM, on_sigint)

    def refresh() -> None:
        nonlocal w
        try:
            project = load()
        except Exception:  # noqa: BLE001 - reported by the build itself
            if w is None:  # it never loaded: watch the Datafile until it does
                w = Watched(datafile.parent)
                w.files.add(str(datafile))
        else:
            try:
                w = watched(project)
                for name in w.remote:
                    remote_stamps.setdefault(name, _stamp(project, name))
            finally:
                project.close()
        for folder in sorted(w.folders):
            if folder not in scheduled and os.path.isdir(folder):
                recursive = folder == str(w.root)
                scheduled[folder] = observer.schedule(handler, folder, recursive=recursive)

    def build() -> int:
        t = time.perf_counter()
        proc = subprocess.Popen(argv)
        child[:] = [proc]
        code = proc.wait()
        child.clear()
        took = time.perf_counter() - t
        if interrupted.is_set():
            return code
        outcome = {0: "done", 1: "failed", 2: "stopped: the Datafile or the command line is wrong"}
        say(f"{outcome.get(code, f'exit {code}')} in {took:.2f}s; waiting for changes "
            f"(Ctrl-C to stop)")
        return code

    refresh()
    observer.start()
    try:
        build()
        refresh()
        last_poll = time.monotonic()
        while not interrupted.is_set():
            try:
                path = q.get(timeout=0.1)
            except queue.Empty:
                path = None
            changed: list[str] = []
            if path is not None and w is not None and w.relevant(path):
                changed.append(path)
            if w is not None and w.remote and time.monotonic() - last_poll >= poll:
                last_poll = time.monotonic()
                changed.extend(_poll(load, w.remote, remote_stamps))
            if not changed:
                continue
            # A trailing quiet period: a burst of saves is one rebuild.
            deadline = time.monotonic() + QUIET
            while time.monotonic() < deadline and not interrupted.is_set():
                try:
                    p = q.get(timeout=max(0.01, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if w is not None and w.relevant(p):
                    changed.append(p)
                    deadline = time.monotonic() + QUIET
            if interrupted.is_set():
                break
            names = sorted({os.path.relpath(c, w.root) for c in changed})
            more = f" (+{len(names) - 3} more)" if len(names) > 3 else ""
            say(f"changed: {', '.join(names[:3])}{more}; rebuilding")
            build()
            refresh()
    finally:
        observer.stop()
        observer.join(timeout=5)
        signal.signal(signal.SIGINT, previous)
    say("stopped watching")
    return 0


def _stamp(project: Any, name: str) -> str | None:
    try:
        if project.catalog.is_partitioned(name):
            return repr(sorted(project.catalog.partitions(name).items()))
        return project.catalog.stamp(name)
    except Exception:  # noqa: BLE001 - unreachable storage: try again next poll
        return None


def _poll(load: Callable[[], Any], names: list[str], stamps: dict[str, str | None]) -> list[str]:
    """Remote sources whose change token moved since the last poll."""
    try:
        project = load()
    except Exception:  # noqa: BLE001
        return []
    changed = []
    try:
        for name in names:
            now = _stamp(project, name)
            if now != stamps.get(name):
                stamps[name] = now
                changed.append(project.catalog.location(name).url)
    finally:
        project.close()
    return changed
