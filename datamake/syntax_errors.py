"""How a Datafile's syntax errors are told: Lark's parse errors turned into one
diagnostic with a location and a hint, tabs in indentation, Python's syntax errors in
recipes at their Datafile lines, and code nested too deeply for Python's parser."""
from __future__ import annotations

from .errors import DatafileError, Diagnostic, Span, error
from .limits import MAX_DEPTH

_KEYWORDS = ("param", "params", "dataset", "include", "cache", "python", "as", "versioned")


def check_tabs(text: str, path: str) -> None:
    for i, line in enumerate(text.split("\n"), 1):
        indent = len(line) - len(line.lstrip(" \t"))
        if "\t" in line[:indent] and line.strip():
            col = line.index("\t") + 1
            raise error("tab-indent", Span(path, i, col, i, col + 1))


_TOKEN_NAMES = {
    "COLON": "`:`", "NAME": "a name", "EQUAL": "`=`", "STRING": "a quoted string",
    "_NL": "the end of the line", "LSQB": "`[`", "RSQB": "`]`", "PYEXPR": "a value",
    "BODY": "an indented recipe", "ARGS": "`(`", "VERSION": "a version", "AT": "`@`",
    "DOT": "`.`", "AS": "`as`", "VERSIONED": "`versioned`", "$END": "the end of the file",
}


def _describe(tok_type: str) -> str:
    return _TOKEN_NAMES.get(tok_type, f"`{tok_type.lower()}`")


def _unclosed_param(lines: list[str], line: int, path: str) -> Diagnostic | None:
    """A parameter value above `line` whose bracket was never closed (its continuation
    lines were not indented, so the value ended early)."""
    start = line - 1
    while start >= 1 and not lines[start - 1].startswith("param "):
        start -= 1
    if start < 1:
        return None
    first = lines[start - 1]
    name = first.split()[1] if len(first.split()) > 1 else "?"
    eq = first.find("=")
    if eq < 0:
        return None
    stack: list[tuple[str, int, int]] = []
    quote = None
    for n in range(start, line):
        text = lines[n - 1]
        for c, ch in enumerate(text, 1):
            if n == start and c <= eq:
                continue
            if quote:
                if ch == quote:
                    quote = None
            elif ch in "\"'":
                quote = ch
            elif ch == "#":
                break
            elif ch in "([{":
                stack.append((ch, n, c))
            elif ch in ")]}" and stack:
                stack.pop()
    if not stack:
        return None
    ch, n, c = stack[0]
    return Diagnostic.of("unclosed-bracket", Span(path, n, c, n, c + 1), bracket=ch, name=name)


def syntax_diagnostic(e, text: str, path: str) -> Diagnostic:
    import lark

    lines = text.split("\n")
    if isinstance(e, lark.exceptions.UnexpectedCharacters):
        line, col = e.line, e.column
        unclosed = _unclosed_param(lines, line, path)
        if unclosed is not None:
            return unclosed
        ch = text[e.pos_in_stream] if e.pos_in_stream < len(text) else ""
        src = lines[line - 1] if 0 < line <= len(lines) else ""
        if not src[:col - 1].strip() and col > 1:
            return Diagnostic.of("unexpected-indent", Span(path, line, 1, line, col))
        return Diagnostic.of("unexpected-character", Span(path, line, col, line, col + 1), char=ch)
    tok = e.token
    expected = {t for t in (getattr(e, "expected", ()) or ()) if not t.startswith("__")}
    kind, value = tok.type, str(tok)
    if kind == "$END":
        line = max(1, len(lines) - 1)
        col = len(lines[line - 1]) + 1
        width, found = 1, "the end of the file"
    elif kind == "_NL" or (kind in ("BODY", "PYEXPR") and value.startswith("\n")):
        line, col, width, found = tok.line, tok.column, 1, "the end of the line"
    elif kind == "BODY":
        skip = len(value) - len(value.lstrip("\n \t"))
        line = tok.line + value.count("\n", 0, skip)
        col, width, found = 1, 1, "an indented block"
    else:
        first = value.split("\n")[0]
        lead = len(first) - len(first.lstrip())
        line, col = tok.line, tok.column + lead
        width = max(1, len(first.strip()))
        found = f"`{first.strip()}`"
    if tok.line and kind != "$END":
        unclosed = _unclosed_param(lines, tok.line, path)
        if unclosed is not None and kind not in ("_NL",):
            return unclosed
    span = Span(path, line, col, line, col + width)
    src = lines[line - 1] if 0 < line <= len(lines) else ""
    head = src.split()[0] if src.split() else ""

    if kind == "BODY" and found == "an indented block":
        return Diagnostic.of("unexpected-block", span)
    if "COLON" in expected and head.rstrip(":") not in _KEYWORDS:
        return Diagnostic.of("expected-colon", span, found=found)
    if expected == {"EQUAL"}:
        return Diagnostic.of("param-expected-equals" if head == "param" else
                             "dataset-expected-equals", span, found=found)
    word = head.split(":")[0]
    if word in _KEYWORDS and (kind == "COLON" or value.lstrip().startswith(":")
                              or head.endswith(":")) and word != "python":
        return Diagnostic.of("keyword-as-name", Span(path, line, 1, line, 1 + len(word)), word=word)
    if "STRING" in expected and head in ("dataset", "params", "include", "cache"):
        shown = value.strip().split("\n")[0]
        return Diagnostic.of("expected-location", span, found=found,
                             shown=shown if kind in ("PYEXPR", "NAME") and shown else None)
    if expected == {"NAME"} and "[" in src and kind in ("_NL", "$END", "RSQB", "BODY"):
        return Diagnostic.of("expected-key", span, found=found)
    exp = sorted(_describe(t) for t in expected)
    listed = (", ".join(exp[:-1]) + (" or " if len(exp) > 1 else "") + exp[-1]) if exp \
        else "something else"
    return Diagnostic.of("unexpected-token", span, found=found, expected=listed)


def python_syntax_error(e: SyntaxError, path: str, where: str) -> DatafileError:
    """A syntax error in `where` (`the recipe of `x``, `the `python:` block`)."""
    line = e.lineno or 1
    col = e.offset or 1
    end = e.end_offset if (e.end_lineno == e.lineno and e.end_offset and e.end_offset > col) else col + 1
    msg = e.msg
    if msg.startswith("expected an indented block"):
        msg = "expected an indented block"
    return error("python-syntax", Span(path, line, col, line, end), where=where, reason=msg)


def too_deep(code: str, span: Span | None, **fields) -> DatafileError:
    """An error of kind `code` for code nested deeper than Python's parser goes."""
    return error(code, span, depth=MAX_DEPTH, **fields)


def deepest_line(text: str, line: int) -> Span | None:
    """The longest line of a block (the likeliest to hold an expression nested too deeply
    for Python's parser, which does not say where it gave up)."""
    best = None
    for n, ln in enumerate(text.split("\n"), line):
        if ln.strip() and (best is None or len(ln) > best[1]):
            best = (n, len(ln), len(ln) - len(ln.lstrip()) + 1)
    return None if best is None else Span("", best[0], best[2], best[0], best[1] + 1)
