"""Parsing a long Datafile in two halves at once: the second in a forked child, on a
machine with a second CPU (Lark's parse and compiling recipes are pure Python). The
model is the one a single parse gives; anything unusual falls back to one parse."""
from __future__ import annotations

import os
import re
import sys
import warnings
from pathlib import Path
from typing import Callable

from . import model
from .errors import DatafileError


# A Datafile this long is parsed in two halves at once, the second in a forked child,
# on a machine with a second CPU: Lark's parse and compiling the recipes are pure
# Python (a 1,000-rule Datafile: 0.10 s in one process, 0.07 s in two).
PARALLEL_LINES = 2000


def may_fork() -> bool:
    """A second CPU, and a process that may fork: Linux, and no other thread (a
    thread holding a lock at the fork would leave it held in the child forever)."""
    import threading

    return (sys.platform.startswith("linux") and len(os.sched_getaffinity(0)) > 1
            and threading.active_count() == 1)


# A statement after a blank line: where a Datafile can be cut in two. (A line that
# starts with a name in column 0 cannot continue a recipe, a `python:` block or a
# parameter's value; after a blank line it has no `##` description above it.)
_CUT = re.compile(r"\n[ \t]*\n(?=[A-Za-z_])")


def _halves(text: str) -> tuple[str, str] | None:
    """`text` cut at a statement near the middle of the work; the second half is
    padded with blank lines so that its lines keep their numbers. The work of a part
    is estimated from its lines and spaces (about the tokens Lark handles), an
    indented line counting 8 more (recipe code is also parsed and compiled)."""
    def work(end: int) -> int:
        return text.count("\n", 0, end) + text.count(" ", 0, end) + \
            8 * text.count("\n ", 0, end)

    half = work(len(text)) // 2
    lo, hi = 0, len(text)
    while hi - lo > 256:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if work(mid) < half else (lo, mid)
    m = _CUT.search(text, lo)
    if m is None:
        return None
    cut = m.end()
    return text[:cut], "\n" * text.count("\n", 0, cut) + text[cut:]


def _parse_quietly(parse: Callable[[str, str, Path], model.Datafile], text: str, path: str,
                   base: Path) -> tuple | None:
    """(the model, Python's warnings about it, to tell later), or None if it has
    errors (the whole text is parsed again to tell them as one parse would)."""
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        try:
            df = parse(text, path, base)
        except DatafileError:
            return None
    return df, [(w.message, w.category, w.filename, w.lineno) for w in said]


def parse_in_halves(text: str, path: str, base: Path,
                    parse: Callable[[str, str, Path], model.Datafile]) -> model.Datafile | None:
    """The model of `text` by `parse`, its second half parsed by a forked child
    meanwhile; None when the text has no place to cut, either half has an error, or the
    child fails. `parse` should have built what it shares before (the child inherits
    it)."""
    import pickle

    halves = _halves(text)
    if halves is None:
        return None
    first, second = halves
    for stream in (sys.stdout, sys.stderr):  # or the child would write their buffers again
        try:
            stream.flush()
        except (AttributeError, ValueError, OSError):
            pass  # None, closed, or a broken pipe: nothing to write twice
    r, w = os.pipe()
    parent = os.getpid()
    try:
        pid = os.fork()
    except OSError:  # no memory or process left for a child: one process parses
        os.close(r)
        os.close(w)
        return None
    if pid == 0:  # the child: parse, send the result, and vanish (no exit handlers)
        code = 1
        try:
            # It dies with its parent (killed while parsing a huge Datafile, or by a
            # timeout around `--check`), and exits at once if the parent is gone already.
            from .processes import die_with_parent

            die_with_parent(parent)
            os.close(r)
            with os.fdopen(w, "wb") as out:
                out.write(pickle.dumps(_parse_quietly(parse, second, path, base),
                                       pickle.HIGHEST_PROTOCOL))
            code = 0
        finally:
            os._exit(code)
    os.close(w)
    try:
        with os.fdopen(r, "rb") as f:
            mine = _parse_quietly(parse, first, path, base)
            data = f.read()
    finally:
        try:
            _, status = os.waitpid(pid, 0)
        except ChildProcessError:  # reaped by the system (SIGCHLD ignored): what the
            status = 0  # pipe brought is checked by unpickling it whole
    try:
        theirs = pickle.loads(data) if status == 0 else None
    except Exception:
        theirs = None
    if mine is None or theirs is None:
        return None
    (a, said), (b, said_too) = mine, theirs
    if a.cache is not None and b.cache is not None:
        return None  # a second `cache` line: told by the whole parse
    for message, category, filename, lineno in said + said_too:
        warnings.warn_explicit(message, category, filename, lineno)
    return model.Datafile(path, a.params + b.params, a.params_files + b.params_files,
                          a.datasets + b.datasets, a.rules + b.rules, a.python + b.python,
                          a.includes + b.includes, a.cache or b.cache,
                          env=tuple(dict.fromkeys(a.env + b.env)))
