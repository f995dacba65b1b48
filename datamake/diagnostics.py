"""Rendering diagnostics as `FILE:LINE:COL: error: text`, the source line and a caret."""
from __future__ import annotations

from typing import Iterable

from .errors import Diagnostic

_COLORS = {"error": "\x1b[1;31m", "warning": "\x1b[1;33m", "help": "\x1b[1;36m",
           "bold": "\x1b[1m", "dim": "\x1b[2m", "reset": "\x1b[0m"}


def suggest(name: str, candidates: Iterable[str]) -> str | None:
    """The closest candidate to a misspelt `name`, or None when nothing is close."""
    import difflib

    matches = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return matches[0] if matches else None


def did_you_mean(name: str, candidates: Iterable[str]) -> str | None:
    """A `help:` text for a misspelt name, or None."""
    best = suggest(name, candidates)
    return f"did you mean `{best}`?" if best else None


def _source_line(path: str, line: int, sources: dict[str, str] | None) -> str | None:
    text = (sources or {}).get(path)
    if text is None:
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                text = f.read()
        except OSError:
            return None
    lines = text.split("\n")
    if 1 <= line <= len(lines):
        return lines[line - 1].rstrip("\r")
    return None


def render(diag: Diagnostic, sources: dict[str, str] | None = None, color: bool = False) -> str:
    """The whole text of one diagnostic, ending with a newline.

    `sources` maps file names to their text (read from disk when missing).
    """
    c = _COLORS if color else {k: "" for k in _COLORS}
    sev = f"{c[diag.severity]}{diag.severity}{c['reset']}"
    out = []
    if diag.span is None:
        out.append(f"datamake: {sev}: {c['bold']}{diag.message}{c['reset']}")
    else:
        sp = diag.span
        out.append(f"{sp.file}:{sp.line}:{sp.col}: {sev}: {c['bold']}{diag.message}{c['reset']}")
        src = _source_line(sp.file, sp.line, sources)
        if src is not None:
            gutter = " " * len(str(sp.line))
            # Tabs would misalign the caret: show them as single spaces.
            shown = src.replace("\t", " ")
            end = sp.end_col if sp.end_line in (0, sp.line) and sp.end_col > sp.col else sp.col + 1
            end = min(max(end, sp.col + 1), max(len(shown) + 1, sp.col + 1))
            caret = " " * (sp.col - 1) + "^" * (end - sp.col)
            out.append(f"{c['dim']}{gutter} |{c['reset']}")
            out.append(f"{c['dim']}{sp.line} |{c['reset']} {shown}")
            out.append(f"{c['dim']}{gutter} |{c['reset']} {c[diag.severity]}{caret}{c['reset']}")
    for note in diag.notes:
        out.append(f"note: {note}")
    if diag.help:
        out.append(f"{c['help']}help{c['reset']}: {diag.help}")
    return "\n".join(out) + "\n"
