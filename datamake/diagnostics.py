"""Rendering diagnostics as `FILE:LINE:COL: error: text`, the source line and a caret.

Whatever the input, what is rendered stays small: at most `MAX_SHOWN` diagnostics per
report (then how many more there are), a source line cut to a window around its caret,
messages cut to `MAX_TEXT` characters, and control characters never written raw to the
terminal. A 100 KB line with 20,000 errors on it prints a page, not gigabytes.
"""
from __future__ import annotations

from typing import Iterable

from .errors import Diagnostic

_COLORS = {"error": "\x1b[1;31m", "warning": "\x1b[1;33m", "help": "\x1b[1;36m",
           "bold": "\x1b[1m", "dim": "\x1b[2m", "reset": "\x1b[0m"}

MAX_SHOWN = 20  # diagnostics rendered in one report; the rest are counted
MAX_LINE = 120  # source characters shown; a longer line is cut around the caret
_BEFORE = 40  # of which, at most this many before the caret in a cut line
MAX_TEXT = 500  # characters of a message, note or hint
MAX_SOURCE = 64 << 20  # bytes read from a source file to show its lines


def suggest(name: str, candidates: Iterable[str]) -> str | None:
    """The closest candidate to a misspelt `name`, or None when nothing is close."""
    import difflib

    matches = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return matches[0] if matches else None


def did_you_mean(name: str, candidates: Iterable[str]) -> str | None:
    """A `help:` text for a misspelt name, or None."""
    best = suggest(name, candidates)
    return f"did you mean `{best}`?" if best else None


def _unprintable(ch: str) -> bool:
    # Cc: control characters (NUL, ESC, ...); Cf: format characters (bidi overrides,
    # zero-width ones), which reorder or hide what the terminal shows.
    # Cs: a lone surrogate, which no encoding writes.
    import unicodedata  # only for text that is not all printable: rare

    return unicodedata.category(ch) in ("Cc", "Cf", "Cs")


def clean(text: str, limit: int = MAX_TEXT) -> str:
    """A message made safe to print: cut to `limit` characters, and control and
    format characters written as escapes (`\\x00`), never raw to the terminal."""
    if len(text) > limit:
        text = text[:limit] + "..."
    if text.isprintable():
        return text
    return "".join(ch.encode("unicode_escape", "backslashreplace").decode("ascii") if _unprintable(ch) else ch
                   for ch in text)


def _shown_line(src: str, col: int, end: int) -> tuple[str, int, int]:
    """The part of source line `src` to show, and where the caret's columns `col` (1-based)
    to `end` (exclusive) fall in it: a long line is cut to a window of `MAX_LINE`
    characters around the caret, marked `...` where it was cut. Tabs are shown as one
    space and unprintable characters as U+FFFD, one column each, so the caret stays
    aligned."""
    start, stop = 0, len(src)
    if len(src) > MAX_LINE:
        start = max(0, min(col - 1 - _BEFORE, len(src) - MAX_LINE))
        stop = min(len(src), start + MAX_LINE)
    part = src[start:stop].replace("\t", " ")
    if not part.isprintable():
        part = "".join("\ufffd" if _unprintable(ch) else ch for ch in part)
    lead = "..." if start > 0 else ""
    shown = lead + part + ("..." if stop < len(src) else "")
    c = col - start + len(lead)
    e = min(end - start + len(lead), len(lead) + len(part) + 1)
    return shown, c, max(e, c + 1)


class _Sources:
    """Source lines by file, each file read and split once per report."""

    def __init__(self, sources: dict[str, str] | None):
        self.given = sources or {}
        self.lines: dict[str, list[str] | None] = {}

    def line(self, path: str, line: int) -> str | None:
        if path not in self.lines:
            text = self.given.get(path)
            if text is None:
                try:
                    with open(path, "rb") as f:
                        text = f.read(MAX_SOURCE).decode("utf-8-sig", errors="replace")
                except OSError:
                    text = None
            # Lines as the parser counts them: \r\n, \n or a lone \r ends one.
            self.lines[path] = None if text is None else \
                text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
        lines = self.lines[path]
        if lines is not None and 1 <= line <= len(lines):
            return lines[line - 1]
        return None


def render(diag: Diagnostic, sources: dict[str, str] | None = None, color: bool = False,
           _read: _Sources | None = None) -> str:
    """The whole text of one diagnostic, ending with a newline.

    `sources` maps file names to their text (read from disk when missing).
    """
    c = _COLORS if color else {k: "" for k in _COLORS}
    read = _read or _Sources(sources)
    sev = f"{c[diag.severity]}{diag.severity}{c['reset']}"
    message = clean(diag.message)
    out = []
    if diag.span is None:
        out.append(f"datamake: {sev}: {c['bold']}{message}{c['reset']}")
    else:
        sp = diag.span
        out.append(f"{sp.file}:{sp.line}:{sp.col}: {sev}: {c['bold']}{message}{c['reset']}")
        src = read.line(sp.file, sp.line)
        if src is not None:
            gutter = " " * len(str(sp.line))
            end = sp.end_col if sp.end_line in (0, sp.line) and sp.end_col > sp.col else sp.col + 1
            shown, col, end = _shown_line(src, sp.col, end)
            caret = " " * (col - 1) + "^" * (end - col)
            out.append(f"{c['dim']}{gutter} |{c['reset']}")
            out.append(f"{c['dim']}{sp.line} |{c['reset']} {shown}")
            out.append(f"{c['dim']}{gutter} |{c['reset']} {c[diag.severity]}{caret}{c['reset']}")
    for note in diag.notes:
        out.append(f"note: {clean(note)}")
    if diag.help:
        out.append(f"{c['help']}help{c['reset']}: {clean(diag.help)}")
    return "\n".join(out) + "\n"


def render_all(diags: list[Diagnostic], sources: dict[str, str] | None = None,
               color: bool = False) -> str:
    """The first `MAX_SHOWN` diagnostics rendered, then a line counting the others."""
    read = _Sources(sources)
    text = "".join(render(d, color=color, _read=read) for d in diags[:MAX_SHOWN])
    rest = diags[MAX_SHOWN:]
    if rest:
        errors = sum(1 for d in rest if d.severity == "error")
        parts = [f"{n} more {kind}{'s' * (n != 1)}"
                 for n, kind in ((errors, "error"), (len(rest) - errors, "warning")) if n]
        text += f"datamake: ... and {' and '.join(parts)}\n"
    return text
