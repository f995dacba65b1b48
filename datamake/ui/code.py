"""Source code as the page shows it: lines with their own numbers, split into tokens
that Pygments classified (the page sets each token as text, in a span of its class).
"""
from __future__ import annotations

from typing import Any

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
