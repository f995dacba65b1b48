"""Target names for shell completion, read from the Datafile's text with one regular
expression: completion runs on every Tab, so it neither parses nor imports the layers,
and a missing or broken Datafile completes nothing instead of failing."""
from __future__ import annotations

import os
import re

# A rule's header at the start of a line: its outputs (`a b`, `counts[book]`) then `:`.
_HEADER = re.compile(r"^([A-Za-z_][\w]*(?:\[[^\]\n]*\])?(?:[ \t]+[A-Za-z_]\w*(?:\[[^\]\n]*\])?)*)"
                     r"[ \t]*:(?!\S)", re.M)
_KEYWORDS = {"python", "param", "dataset", "include", "params", "cache", "default"}
_LIMIT = 5_000_000  # bytes read at most: a Tab never waits on a huge file


def target_names(file: str, directory: str | None = None) -> list[str]:
    """The rule outputs a Datafile names, in order of appearance (none when unreadable)."""
    path = os.path.join(directory, file) if directory else file
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read(_LIMIT)
    except OSError:
        return []
    names: dict[str, None] = {}
    for m in _HEADER.finditer(text):
        for word in m.group(1).split():
            name = word.split("[", 1)[0]
            if name not in _KEYWORDS:
                names[name] = None
    return list(names)
