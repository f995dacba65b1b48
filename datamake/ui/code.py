"""Source code as the page shows it: lines with their own numbers, split into tokens
that Pygments classified (the page sets each token as text, in a span of its class);
and finding a definition's lines in a `python:` block or a module.
"""
from __future__ import annotations

import ast
import os
from pathlib import Path
from typing import Any

from ..pysource import binds, block_source, block_statements

# Pygments token types -> the page's few CSS classes (style.css: .tk-k, .tk-s, ...).
_CLASSES = (("Comment", "c"), ("Literal.String", "s"), ("Literal.Number", "m"),
            ("Keyword", "k"), ("Name.Function", "f"), ("Name.Class", "f"),
            ("Name.Decorator", "d"), ("Name.Builtin", "b"), ("Operator.Word", "k"),
            ("Operator", "o"), ("Name.Variable", "v"))


def _css(ttype: Any) -> str:
    from pygments import token

    for name, css in _CLASSES:
        t = token.string_to_tokentype(name)
        if ttype in t:
            return css
    return ""


def lexer_for(kind: str) -> Any:
    """A Pygments lexer: `python`, `shell` (a shell recipe) or `text`."""
    from pygments.lexers import BashLexer, PythonLexer, TextLexer

    return {"python": PythonLexer, "shell": BashLexer}.get(kind, TextLexer)(
        stripnl=False, ensurenl=False)


def highlight(text: str, first_line: int | None, kind: str = "python") -> list[dict[str, Any]]:
    """`text` as lines of [class, text] tokens, numbered from `first_line` (None: no
    numbers)."""
    lines: list[dict[str, Any]] = [{"n": first_line, "tokens": []}]
    for ttype, value in lexer_for(kind).get_tokens(text):
        css = _css(ttype) if value.strip() else ""
        parts = value.split("\n")
        for i, part in enumerate(parts):
            if i:
                n = lines[-1]["n"]
                lines.append({"n": None if n is None else n + 1, "tokens": []})
            if part:
                toks = lines[-1]["tokens"]
                if toks and toks[-1][0] == css:
                    toks[-1][1] += part
                else:
                    toks.append([css, part])
    if len(lines) > 1 and not lines[-1]["tokens"] and text.endswith("\n"):
        lines.pop()
    return lines


def plain(text: str, first_line: int | None) -> list[dict[str, Any]]:
    """`text` as lines of one plain token each (a rule's header, a declaration)."""
    out = []
    for i, line in enumerate(text.split("\n")):
        out.append({"n": None if first_line is None else first_line + i,
                    "tokens": [["", line]] if line else []})
    return out


def file_lines(path: str | None) -> list[str] | None:
    """A text file's lines, or None when it cannot be read."""
    if not path:
        return None
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read().split("\n")
    except OSError:
        return None


def lines_of(lines: list[str] | None, first: int, last: int) -> str | None:
    """Lines `first` to `last` (1-based, inclusive) of a file; "" for an empty range."""
    if lines is None or first < 1 or last > len(lines):
        return None
    return "\n".join(lines[first - 1:last])


def declaration(file: str | None, line: int) -> dict[str, Any] | None:
    """One line of a file as a code box (a dataset's or parameter's declaration)."""
    text = lines_of(file_lines(file), line, line)
    if text is None or file is None:
        return None
    return {"title": f"{file}:{line}", "file": file, "lines": plain(text, line)}


def in_blocks(blocks: tuple, name: str) -> tuple[str, int, str] | None:
    """(file, first line, text) of the statement of a `python:` block that defines
    `name`, at the Datafile's lines."""
    for text, line, filename in blocks:
        try:
            statements = block_statements(text)
        except (SyntaxError, RecursionError, MemoryError):
            continue
        for st in statements:
            if binds(st, name):
                first = _first_line(st)
                lines = block_source(text).split("\n")[first - 1:st.end_lineno]
                return filename, line + first - 2, "\n".join(lines)
    return None


def in_module(folders: list[Path], label: str) -> tuple[str, int, str] | None:
    """(file, first line, text) of `module.name`'s top-level definition, `label` being
    `module.name` and the module a file under one of `folders`."""
    module, _, name = label.rpartition(".")
    if not module:
        return None
    for folder in folders:
        rel = Path(*module.split("."))
        for cand in (folder / rel.with_suffix(".py"), folder / rel / "__init__.py"):
            try:
                src = cand.read_text(encoding="utf-8")
                tree = ast.parse(src)
            except (OSError, SyntaxError, UnicodeDecodeError, ValueError):
                continue
            for st in tree.body:
                if binds(st, name):
                    first = _first_line(st)
                    text = "\n".join(src.split("\n")[first - 1:st.end_lineno])
                    return _shown_path(cand), first, text
            return None
    return None


def _shown_path(path: Path) -> str:
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return str(path)
    return str(path) if rel.startswith("..") else rel


def _first_line(st: ast.stmt) -> int:
    """A statement's first line, its decorators included."""
    decorators = getattr(st, "decorator_list", None)
    return decorators[0].lineno if decorators else st.lineno

