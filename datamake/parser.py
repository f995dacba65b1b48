"""Datafile text -> model: the only user of lark.

Recipe and `python:` bodies are captured whole and compiled by Python's own `ast` at
their real Datafile lines and columns (the source handed to `ast` is padded with blank
lines), so syntax errors and tracebacks point into the Datafile without any line map.
"""
from __future__ import annotations

import ast
import dataclasses
import functools
import json
import keyword
import marshal
import os
import re
import sys
import types
import warnings
from pathlib import Path
from typing import Any

from . import locations, model
from .errors import DatafileError, Diagnostic, Span, error
from .hashing import hash_text
from .recipe import parse_at

_KEYWORDS = ("param", "params", "dataset", "include", "cache", "python", "as", "versioned")

# Limits on what a Datafile and the files it names may hold. Each keeps a hostile or
# broken input from exhausting the machine, and ends in an error at its place.
# A Datafile: 100,000 short rules are about 3 MB (0.9 GB of memory to parse; a line of
# nothing but names takes up to 700 bytes of memory per byte).
MAX_DATAFILE_BYTES = 4_000_000
MAX_NAME = 100  # characters in a name: names become file names (`.datamake/data/NAME.pkl`)
MAX_DEPTH = 200  # levels of nesting in a recipe, a `python:` block or a parameter value
MAX_PARAMS_BYTES = 1_000_000  # a params file (YAML is parsed at about 0.5 MB a second)
MAX_PARAMS_VALUES = 1_000_000  # values in a params file, YAML aliases expanded


def _grammar_text() -> str:
    # The grammar ships as package data, datamake/grammar/ (from grammar/ at the top of
    # the repository). Read as a plain file where it is one: importlib.resources costs
    # 2 ms of imports (zipfile among them) on every clean start.
    here = Path(__file__).resolve().parent
    for path in (here / "grammar" / "datafile.lark", here.parent / "grammar" / "datafile.lark"):
        try:
            return path.read_text(encoding="utf-8")
        except OSError:
            continue
    from importlib.resources import files  # e.g. installed in a zip

    return (files("datamake.grammar") / "datafile.lark").read_text(encoding="utf-8")


@functools.lru_cache(maxsize=1)
def _lark():
    import lark

    # cache=True: lark keeps the LALR tables in the temp folder, keyed by the grammar,
    # so a cold parse does not rebuild them (30 ms -> 3 ms).
    return lark.Lark(_grammar_text(), parser="lalr", lexer="contextual",
                     maybe_placeholders=False, cache=True)


def parse_file(path: str | os.PathLike, display: str | None = None) -> model.Datafile:
    """Parse the Datafile at `path`; `display` is the name used in messages.

    Raises DatafileError for anything wrong in it or in a `params` file it names.
    """
    display = display or str(path)
    try:
        data = read_regular(path, MAX_DATAFILE_BYTES)
    except FileNotFoundError:
        raise error(f"no Datafile at `{display}`",
                    help="create one, or name it with `-f FILE`") from None
    except NotRegularError:
        raise error(f"`{display}` is not a regular file",
                    help="a Datafile is a text file") from None
    except TooBigError:
        raise error(f"`{display}` is larger than {MAX_DATAFILE_BYTES // 1_000_000} MB",
                    help="a Datafile this big is not written by hand: generate fewer, "
                         "bigger rules (a pattern rule covers many partitions)") from None
    except OSError as e:
        raise error(f"cannot read `{display}`: {e.strerror or e}",
                    help="check the file's permissions") from None
    try:
        text = data.decode("utf-8-sig")  # a byte-order mark (Windows editors) is dropped
    except UnicodeDecodeError as e:
        start = data.rfind(b"\n", 0, e.start) + 1
        line = data.count(b"\n", 0, start) + 1
        col = len(data[start:e.start].decode("utf-8")) + 1
        raise error(f"`{display}` is not UTF-8 text: byte 0x{data[e.start]:02x} ({e.reason})",
                    Span(display, line, col, line, col + 1),
                    help="a Datafile is UTF-8 text: save it as UTF-8") from None
    return parse_text(text, display, base=Path(path).resolve().parent)


class NotRegularError(OSError):
    """A path names a device, a folder or a pipe, not a regular file."""


class TooBigError(OSError):
    """A file is larger than the limit for what it holds."""


def read_regular(path: str | os.PathLike, limit: int) -> bytes:
    """The bytes of the regular file at `path`, if it holds at most `limit` of them.

    Raises NotRegularError (`/dev/zero`, a folder, a named pipe: never read, and never
    waited on), TooBigError, or OSError.
    """
    import stat

    # O_NONBLOCK: opening a named pipe must not wait for a writer (it is refused below).
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotRegularError(f"{os.fspath(path)}: not a regular file")
        if st.st_size > limit:
            raise TooBigError(f"{os.fspath(path)}: larger than {limit} bytes")
        data = f.read(limit + 1)  # it may grow meanwhile
    if len(data) > limit:
        raise TooBigError(f"{os.fspath(path)}: larger than {limit} bytes")
    return data


def load(path: str | os.PathLike, display: str | None = None) -> model.Datafile:
    """Parse a Datafile and, recursively, the files it includes, into one model.

    An included file's names are prefixed `NS.` (with `include "FILE" as NS`), its
    relative locations are rebased onto the top Datafile's folder, and its recipes keep
    their own `python:` blocks (their scope). Raises DatafileError.
    """
    top = Path(path).resolve()
    df = _load(top, display or str(path), (top,))
    return dataclasses.replace(df, scopes=(("", str(top.parent)),) + df.scopes)


def _display(path: Path) -> str:
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return str(path)
    return str(path) if rel.startswith("..") else rel


def _load(path: Path, display: str, chain: tuple[Path, ...]) -> model.Datafile:
    df = parse_file(path, display)
    sources = [str(path)] + [str((path.parent / pf.path).resolve()) for pf in df.params_files]
    scopes: list[tuple[str, str]] = []
    parts: list[model.Datafile] = []
    for inc in df.includes:
        target = (path.parent / inc.path).resolve()
        if target in chain:
            loop = " -> ".join(f"`{_display(p)}`" for p in chain[chain.index(target):] + (target,))
            raise error(f"include cycle: {loop}", inc.span,
                        help="a Datafile cannot include itself, directly or not")
        if not target.is_file():
            raise error(f"no Datafile at `{inc.path}` to include", inc.span,
                        help="the path is relative to the including Datafile's folder")
        child = _load(target, _display(target), chain + (target,))
        if child.cache is not None:
            raise error("`cache` belongs in the top Datafile", child.cache[1],
                        help="move it to the Datafile that includes this one")
        scope = str(target)
        parts.append(_prefixed(child, inc.namespace, target.parent, path.parent, scope))
        scopes.append((scope, str(target.parent)))
        scopes.extend(child.scopes)
        sources.extend(child.sources)
    for part in parts:
        df = dataclasses.replace(
            df, params=df.params + part.params, datasets=df.datasets + part.datasets,
            rules=df.rules + part.rules, python=df.python + part.python)
    return dataclasses.replace(df, includes=(), scopes=tuple(scopes), sources=tuple(sources))




def _prefixed(df: model.Datafile, ns: str | None, folder: Path, top: Path,
              scope: str) -> model.Datafile:
    """An included file's model as the including file sees it."""
    p = f"{ns}." if ns else ""


    params = tuple(dataclasses.replace(x, name=p + x.name) for x in df.params)
    datasets = tuple(dataclasses.replace(
        d, name=p + d.name, location=locations.rebase(d.location, str(folder), str(top)))
                     for d in df.datasets)
    rules = []
    for r in df.rules:
        recipe = r.recipe
        if recipe is not None and not recipe.scope:  # nested includes keep their own
            recipe = dataclasses.replace(recipe, scope=scope)
        rules.append(dataclasses.replace(
            r, outputs=tuple(dataclasses.replace(o, name=p + o.name) for o in r.outputs),
            inputs=tuple(dataclasses.replace(i, name=p + i.name, alias=i.alias or (
                i.name.rsplit(".", 1)[-1] if p else None)) for i in r.inputs),
            recipe=recipe, ns=p + r.ns))
    python = tuple(dataclasses.replace(b, scope=b.scope or scope) for b in df.python)
    return dataclasses.replace(df, params=params, datasets=datasets, rules=tuple(rules),
                               python=python)


# A Datafile this long is parsed in two halves at once, the second in a forked child,
# on a machine with a second CPU: Lark's parse and compiling the recipes are pure
# Python (a 1,000-rule Datafile: 0.10 s in one process, 0.07 s in two).
PARALLEL_LINES = 2000


def parse_text(text: str, path: str = "Datafile", base: Path | None = None) -> model.Datafile:
    """Parse Datafile `text`; `path` names it in messages, `base` resolves `params` files."""
    # Line ends as Python reads them: \r\n, and a lone \r (old Mac files) too.
    text = text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    if not text.endswith("\n"):
        text += "\n"
    nul = text.find("\0")
    if nul >= 0:
        line = text.count("\n", 0, nul) + 1
        col = nul - text.rfind("\n", 0, nul)
        raise error("a NUL character in the Datafile", Span(path, line, col, line, col + 1),
                    help="a Datafile is text; is this a binary file?")
    _check_tabs(text, path)
    base = base or Path.cwd()
    if text.count("\n") >= PARALLEL_LINES and _may_fork():
        df = _parse_in_halves(text, path, base)
        if df is not None:
            return df
    return _parse(text, path, base)


def _parse(text: str, path: str, base: Path) -> model.Datafile:
    import lark

    try:
        tree = _lark().parse(text)
    except lark.exceptions.UnexpectedInput as e:
        raise DatafileError(_syntax_diagnostic(e, text, path)) from None
    return _Builder(text, path, base).build(tree)


def _may_fork() -> bool:
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


def _parse_quietly(text: str, path: str, base: Path) -> tuple | None:
    """(the model, Python's warnings about it, to tell later), or None if it has
    errors (the whole text is parsed again to tell them as one parse would)."""
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        try:
            df = _parse(text, path, base)
        except DatafileError:
            return None
    return df, [(w.message, w.category, w.filename, w.lineno) for w in said]


def _parse_in_halves(text: str, path: str, base: Path) -> model.Datafile | None:
    """The model of `text`, its second half parsed by a forked child meanwhile; None
    when the text has no place to cut, either half has an error, or the child fails."""
    import pickle

    halves = _halves(text)
    if halves is None:
        return None
    first, second = halves
    _lark()  # built once, before the fork, for both
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
                out.write(pickle.dumps(_parse_quietly(second, path, base),
                                       pickle.HIGHEST_PROTOCOL))
            code = 0
        finally:
            os._exit(code)
    os.close(w)
    try:
        with os.fdopen(r, "rb") as f:
            mine = _parse_quietly(first, path, base)
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
                          a.includes + b.includes, a.cache or b.cache)


def _check_tabs(text: str, path: str) -> None:
    for i, line in enumerate(text.split("\n"), 1):
        indent = len(line) - len(line.lstrip(" \t"))
        if "\t" in line[:indent] and line.strip():
            col = line.index("\t") + 1
            raise error("tab in indentation", Span(path, i, col, i, col + 1),
                        help="indent with spaces: recipes are Python, and Python blocks "
                             "in a Datafile are indented with spaces (not tabs as in Make)")


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
    return Diagnostic("error", f"`{ch}` is never closed in the value of parameter `{name}`",
                      Span(path, n, c, n, c + 1),
                      help="indent the continuation lines of a value that spans lines")


def _syntax_diagnostic(e, text: str, path: str) -> Diagnostic:
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
            return Diagnostic("error", "unexpected indentation", Span(path, line, 1, line, col),
                              help="only a recipe (right below its rule) or a `python:` "
                                   "block is indented")
        return Diagnostic("error", f"unexpected character `{ch}`",
                          Span(path, line, col, line, col + 1),
                          help="names are Python identifiers; locations go in quotes")
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
        return Diagnostic("error", "unexpected indented block", span,
                          help="an indented block must follow a rule (`OUT: IN`) or `python:`")
    if "COLON" in expected and head.rstrip(":") not in _KEYWORDS:
        return Diagnostic("error", f"expected `:` after the outputs of a rule, found {found}",
                          span, help="a rule is written `OUTPUTS: INPUTS`, e.g. "
                                     "`model_input: companies shuttles`")
    if expected == {"EQUAL"}:
        if head == "param":
            hint = "write `param NAME = VALUE`"
        else:
            hint = 'write `dataset NAME = "LOCATION"`'
        what = "parameter" if head == "param" else "dataset"
        return Diagnostic("error", f"expected `=` after the {what} name, found {found}", span,
                          help=hint)
    word = head.split(":")[0]
    if word in _KEYWORDS and (kind == "COLON" or value.lstrip().startswith(":")
                              or head.endswith(":")) and word != "python":
        return Diagnostic("error", f"`{word}` is a keyword and cannot name a rule's output",
                          Span(path, line, 1, line, 1 + len(word)),
                          help="choose another name")
    if "STRING" in expected and head in ("dataset", "params", "include", "cache"):
        shown = value.strip().split("\n")[0]
        hint = (f'put it in quotes: `"{shown}"`' if kind in ("PYEXPR", "NAME") and shown
                else "put the file name or URL in quotes")
        return Diagnostic("error", f"expected a quoted location, found {found}", span, help=hint)
    if expected == {"NAME"} and "[" in src and kind in ("_NL", "$END", "RSQB", "BODY"):
        return Diagnostic("error", f"expected a partition key name, found {found}", span,
                          help="a partition is written `name[key]`")
    exp = sorted(_describe(t) for t in expected)
    listed = (", ".join(exp[:-1]) + (" or " if len(exp) > 1 else "") + exp[-1]) if exp \
        else "something else"
    return Diagnostic("error", f"unexpected {found}", span, help=f"expected {listed}")


class _Builder:
    """Turns the lark tree into model values, checking literal values on the way."""

    def __init__(self, text: str, path: str, base: Path):
        self.text = text
        self.lines = text.split("\n")
        self.path = path
        self.base = base
        self.errors: list[Diagnostic] = []
        # Python recipes wait here to be parsed and compiled together, once the rules
        # around them are read (see `python_recipes`).
        self.pending: list[_Pending] = []

    def span(self, tok, width: int | None = None) -> Span:
        w = len(tok) if width is None else width
        return Span(self.path, tok.line, tok.column, tok.line, tok.column + w)

    def located(self, span: Span | None) -> Span | None:
        return None if span is None else span._replace(file=self.path)

    def node_span(self, node: ast.AST) -> Span:
        """Where a node of code compiled at its Datafile lines is."""
        line = getattr(node, "lineno", 1)
        col = getattr(node, "col_offset", 0) + 1
        end = getattr(node, "end_col_offset", None)
        same = getattr(node, "end_lineno", None) == line and end is not None and end + 1 > col
        return Span(self.path, line, col, line, end + 1 if same else col + 1)

    def name(self, tok) -> str:
        """A name token's text. Raises DatafileError for a name too long to be a file's."""
        if len(tok) > MAX_NAME:
            raise error(f"a name of {len(tok)} characters (at most {MAX_NAME})", self.span(tok),
                        help="a name becomes a file name (`.datamake/data/NAME.pkl`): "
                             "choose a shorter one")
        return str(tok)

    def build(self, tree) -> model.Datafile:
        params: list[model.Param] = []
        params_files: list[model.ParamsFile] = []
        datasets: list[model.Dataset] = []
        rules: list[model.Rule] = []
        python: list[model.PythonBlock] = []
        includes: list[model.Include] = []
        cache = None
        for st in tree.children:
            kind = st.data
            try:
                if kind == "param":
                    params.append(self.param(st))
                elif kind == "params":
                    tok = st.children[0]
                    pf = model.ParamsFile(self.string(tok), self.span(tok))
                    params_files.append(pf)
                    params.extend(self.params_file(pf))
                elif kind == "dataset":
                    datasets.append(self.dataset(st))
                elif kind == "include":
                    tok = st.children[0]
                    ns = self.name(st.children[1]) if len(st.children) > 1 else None
                    includes.append(model.Include(self.string(tok), ns, self.span(tok)))
                elif kind == "cache":
                    tok = st.children[0]
                    if cache is not None:
                        raise error("a second `cache` line", self.span(tok),
                                    help="a Datafile names at most one shared cache")
                    cache = (self.string(tok), self.span(tok))
                elif kind == "python":
                    python.append(self.python(st.children[0]))
                elif kind == "rule":
                    rules.append(self.rule(st))
            except DatafileError as e:
                self.errors.extend(e.diagnostics)
        if self.pending:
            rules = self.with_recipes(rules)
        if self.errors:
            self.errors.sort(key=lambda d: (d.span.line, d.span.col) if d.span else (0, 0))
            raise DatafileError(self.errors)
        return model.Datafile(self.path, tuple(params), tuple(params_files), tuple(datasets),
                              tuple(rules), tuple(python), tuple(includes), cache)

    # -- literals -------------------------------------------------------------------

    def string(self, tok) -> str:
        raw = str(tok)
        if "\\" not in raw:
            return raw[1:-1]
        try:
            return ast.literal_eval(raw)
        except (SyntaxError, ValueError) as e:  # `"\N{nope}"`, `"\x"`
            why = re.sub(r"^\(unicode error\) '\w+' codec can't decode bytes in position "
                         r"[\d-]+: ", "", str(e.msg if isinstance(e, SyntaxError) else e))
            raise error(f"invalid escape in a quoted string: {why}", self.span(tok),
                        help="write a backslash as `\\\\` (or `/` in a path)") from None

    def param(self, st) -> model.Param:
        name_tok, expr_tok = st.children
        value = self.literal(expr_tok, f"parameter `{name_tok}`")
        return model.Param(self.name(name_tok), value, self.span(name_tok))

    def literal(self, tok, what: str) -> Any:
        raw = str(tok)
        lead = len(raw) - len(raw.lstrip())
        src = raw.lstrip()
        line, col = tok.line, tok.column + lead

        def at(lineno: int, offset: int, end: int | None = None) -> Span:
            # Only the expression's first line is shifted by its column.
            real_line = line + lineno - 1
            c = offset + (col - 1 if lineno == 1 else 0)
            e = (end + (col - 1 if lineno == 1 else 0)) if end and end > offset else c + 1
            return Span(self.path, real_line, c, real_line, e)

        try:
            node = ast.parse(src, self.path, mode="eval")
        except SyntaxError as e:
            raise error(f"invalid value for {what}: {e.msg}", at(e.lineno or 1, e.offset or 1,
                        e.end_offset if e.end_lineno == e.lineno else None),
                        help="a parameter's value is a Python literal; continuation lines "
                             "are indented") from None
        except (RecursionError, MemoryError):  # Python's parser gave up on its depth
            raise _too_deep(f"the value of {what}", at(1, 1, len(src.split("\n", 1)[0]) + 1),
                            "a parameter's value is a Python literal; compute anything "
                            "deeper in a rule") from None
        try:
            value = ast.literal_eval(node)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            bad = _first_non_literal(node.body)
            sp = at(bad.lineno, bad.col_offset + 1,
                    bad.end_col_offset + 1 if bad.end_lineno == bad.lineno else None)
            raise error(f"the value of {what} is not a Python literal", sp,
                        help="use numbers, strings, lists, dicts, tuples, booleans or None; "
                             "compute anything else in a rule") from None
        problem = value_problem(value)
        if problem is not None:
            raise error(f"the value of {what} {problem}", at(1, 1, len(src.split("\n", 1)[0]) + 1),
                        help="a parameter holds settings; compute anything bigger in a rule")
        return value

    def params_file(self, pf: model.ParamsFile) -> list[model.Param]:
        path = self.base / pf.path
        try:
            raw = read_regular(path, MAX_PARAMS_BYTES)
        except NotRegularError:
            raise error(f"params file `{pf.path}` is not a regular file", pf.span,
                        help="name a YAML, TOML or JSON file") from None
        except TooBigError:
            raise error(f"params file `{pf.path}` is larger than {MAX_PARAMS_BYTES:,} bytes",
                        pf.span, help=_PLAIN) from None
        except OSError as e:
            raise error(f"cannot read params file `{pf.path}`: {e.strerror or e}", pf.span,
                        help="the path is relative to the Datafile's folder") from None
        suffix = path.suffix.lower()
        try:
            if suffix in (".yaml", ".yml"):
                import yaml

                # libyaml's parser when there is one: the same values, three times faster.
                data = yaml.load(raw.decode("utf-8"),
                                 Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
            elif suffix == ".toml":
                import tomllib

                data = tomllib.loads(raw.decode("utf-8"))
            elif suffix == ".json":
                data = json.loads(raw.decode("utf-8"))
            else:
                raise error(f"params file `{pf.path}` is not YAML, TOML or JSON", pf.span,
                            help="name it `.yaml`, `.yml`, `.toml` or `.json`")
        except DatafileError:
            raise
        except (RecursionError, MemoryError):  # the parser's own limit on nesting
            raise error(f"params file `{pf.path}` is nested more than {MAX_DEPTH} levels deep",
                        pf.span, help=_PLAIN) from None
        except Exception as e:  # each parser has its own error type
            kind = {".toml": "TOML", ".json": "JSON"}.get(suffix, "YAML")
            raise error(f"params file `{pf.path}` cannot be parsed: {_parse_failure(e)}",
                        pf.span, help=f"it is read as {kind}, from its extension") from None
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise error(f"params file `{pf.path}` must hold a mapping of names to values",
                        pf.span)
        problem = value_problem(data)
        if problem is not None:
            raise error(f"params file `{pf.path}` {problem}", pf.span,
                        help=_PLAIN)
        out = []
        for k, v in data.items():
            if not isinstance(k, str) or not k.isidentifier() or len(k) > MAX_NAME:
                raise error(f"params file `{pf.path}`: key `{k}` is not a valid name", pf.span,
                            help=f"top-level keys become parameter names (Python identifiers "
                                 f"of at most {MAX_NAME} characters)")
            out.append(model.Param(k, v, pf.span))
        return out

    # -- datasets ---------------------------------------------------------------------

    def dataset(self, st) -> model.Dataset:
        name_tok, loc_tok = st.children[0], st.children[1]
        fmt = None
        options: tuple = ()
        fmt_span = None
        versioned = False
        for ch in st.children[2:]:
            if getattr(ch, "data", None) == "format":
                fmt_tok = ch.children[0]
                fmt = str(fmt_tok)
                fmt_span = self.span(fmt_tok)
                if len(ch.children) > 1:
                    options = self.options(ch.children[1])
            elif getattr(ch, "data", None) == "versioned":
                versioned = True
        return model.Dataset(self.name(name_tok), self.string(loc_tok), fmt, options, versioned,
                             self.span(name_tok), self.span(loc_tok), fmt_span)

    def options(self, tok) -> tuple[tuple[str, Any], ...]:
        col = tok.column  # of "("; the fake call name sits one column before it
        src = "f" + str(tok)
        sp = lambda n: Span(self.path, tok.line, col - 1 + n.col_offset,  # noqa: E731
                            tok.line, col - 1 + n.end_col_offset)
        try:
            call = ast.parse(src, self.path, mode="eval").body
        except SyntaxError as e:
            raise error(f"invalid format options: {e.msg}",
                        Span(self.path, tok.line, col - 1 + (e.offset or 1) - 1,
                             tok.line, col + (e.offset or 1) - 1),
                        help="options are written `(KEY=VALUE, ...)`") from None
        except (RecursionError, MemoryError):
            raise _too_deep("a format option", self.span(tok),
                            "options are written `(KEY=VALUE, ...)` with literal values") from None
        if call.args:
            raise error("format options must be named", sp(call.args[0]),
                        help="write `KEY=VALUE`, e.g. `as csv(sep=\";\")`")
        out = []
        for kw in call.keywords:
            if kw.arg is None:
                raise error("format options must be named", sp(kw.value))
            try:
                value = ast.literal_eval(kw.value)
            except (ValueError, TypeError, SyntaxError, RecursionError, MemoryError):
                raise error(f"the value of option `{kw.arg}` is not a Python literal",
                            sp(kw.value)) from None
            problem = value_problem(value)
            if problem is not None:
                raise error(f"the value of option `{kw.arg}` {problem}", sp(kw.value),
                            help="options are written `(KEY=VALUE, ...)` with literal values")
            out.append((kw.arg, value))
        return tuple(out)

    # -- code -------------------------------------------------------------------------

    def python(self, tok) -> model.PythonBlock:
        text = str(tok)
        first = _first_code_line(text, tok.line)
        span = Span(self.path, first, 1, first, 1)
        try:
            tree = parse_at("if True:\n" + text + "\n", tok.line - 1, self.path)
        except SyntaxError as e:
            raise _python_syntax_error(e, self.path, "in the `python:` block") from None
        except (RecursionError, MemoryError):  # Python's parser gave up on its depth
            raise _too_deep("the `python:` block", self.located(_deepest_line(text, tok.line)),
                            "split the expression into several statements") from None
        deep = _nested_too_deep(tree, MAX_DEPTH + 1)  # one level more: `if True:`
        if deep is not None:
            raise _too_deep("the `python:` block", self.node_span(deep),
                            "split the expression into several statements")
        return model.PythonBlock(text, tok.line, span)

    def rule(self, st) -> model.Rule:
        outs_tree, ins_tree = st.children[0], st.children[1]
        outputs = []
        for o in outs_tree.children:
            name_tok = o.children[0]
            key = self.name(o.children[1].children[0]) if len(o.children) > 1 else None
            outputs.append(model.Output(self.name(name_tok), key, self.span(name_tok)))
        inputs = []
        for i in ins_tree.children:
            ref = i.children[0]
            parts = [self.name(t) for t in ref.children]
            first, last = ref.children[0], ref.children[-1]
            span = Span(self.path, first.line, first.column, last.line, last.column + len(last))
            key = version = alias = None
            for ch in i.children[1:]:
                if ch.data == "key":
                    key = self.name(ch.children[0])
                elif ch.data == "version":
                    version = str(ch.children[0])
                elif ch.data == "alias":
                    alias = self.name(ch.children[0])
            inputs.append(model.Input(".".join(parts), key, version, alias, span))
        recipe = None
        if len(st.children) > 2:
            recipe = self.recipe(st.children[2], outputs, inputs)
        header_line = outs_tree.children[0].children[0].line
        doc = self.doc_above(header_line)
        if isinstance(recipe, _Pending):  # made into a Rule once its recipe is compiled
            recipe.rule = (tuple(outputs), tuple(inputs), doc, outputs[0].span)
            return recipe
        return model.Rule(tuple(outputs), tuple(inputs), recipe, doc, outputs[0].span)

    def with_recipes(self, rules: list) -> list[model.Rule]:
        """The rules, their Python recipes compiled (those that compile)."""
        self.python_recipes(self.pending)
        out = []
        for r in rules:
            if isinstance(r, _Pending):
                if r.made is None:
                    continue  # its error is told
                outputs, inputs, doc, span = r.rule
                r = model.Rule(outputs, inputs, r.made, doc, span)
            out.append(r)
        return out

    def doc_above(self, line: int) -> str | None:
        docs = []
        i = line - 2
        while i >= 0 and self.lines[i].startswith("##"):
            docs.append(self.lines[i][2:].strip())
            i -= 1
        return " ".join(reversed(docs)) if docs else None

    def recipe(self, tok, outputs, inputs) -> model.Recipe | None:
        text = str(tok)
        code_lines = [(n, ln) for n, ln in enumerate(text.split("\n"), tok.line)
                      if ln.strip() and not ln.strip().startswith("#")]
        if not code_lines:
            return None  # only comments: an alias
        first = code_lines[0][0]
        shell = [ln.strip().startswith("$ ") or ln.strip() == "$" for _, ln in code_lines]
        if any(shell):
            if not all(shell):
                n, ln = code_lines[shell.index(False)] if shell[0] else code_lines[shell.index(True)]
                c = len(ln) - len(ln.lstrip()) + 1
                raise error("a recipe mixes shell lines (`$ ...`) and Python lines",
                            Span(self.path, n, c, n, len(ln) + 1),
                            help="start every line of a shell recipe with `$ `, or write the "
                                 "whole recipe in Python")
            return self.shell_recipe(text, tok.line, first, code_lines)
        return self.python_recipe(text, tok.line, first, outputs, inputs)

    def shell_recipe(self, text, line, first, code_lines) -> model.Recipe:
        commands = [ln.strip()[2:].strip() for _, ln in code_lines]
        uses = []
        for n, ln in code_lines:
            for m in _SHELL_REF.finditer(ln):
                uses.append(model.NameUse(m.group(1), Span(self.path, n, m.start() + 1, n,
                                                           m.end() + 1)))
        fp = hash_text("shell\0" + "\n".join(commands))
        return model.Recipe("shell", text, line, Span(self.path, first, 1, first, 1), fp,
                            tuple(uses), False)

    def python_recipe(self, text, line, first, outputs, inputs) -> "_Pending":
        p = _Pending(text, line, first, outputs, inputs)
        self.pending.append(p)
        return p

    def python_recipes(self, pending: list["_Pending"]) -> None:
        """Parse and compile the Python recipes all together (one `ast.parse`, one
        `compile`), or, when that fails, each alone to tell its own error."""
        # Python's warnings about the code (`is` with a literal, invalid escapes) are
        # held, so that only those of the pass that counts are told.
        with warnings.catch_warnings(record=True) as said:
            warnings.simplefilter("always")
            try:
                self._compile(pending)
            except (SyntaxError, _Misplaced, _Deep, RecursionError, MemoryError):
                del said[:]
                for p in pending:
                    what = f"the recipe of `{p.outputs[0].name}`"
                    try:
                        self._compile([p])
                    except (SyntaxError, _Misplaced) as e:
                        if isinstance(e, _Misplaced):  # not seen: a recipe alone is one def
                            e = SyntaxError("invalid syntax", (self.path, p.first, 1, None))
                        self.errors.extend(_python_syntax_error(
                            e, self.path, f"in {what}").diagnostics)
                    except _Deep as e:
                        self.errors.extend(_too_deep(what, self.node_span(e.node), _SPLIT)
                                           .diagnostics)
                    except (RecursionError, MemoryError):  # Python's parser gave up
                        self.errors.extend(_too_deep(
                            what, self.located(_deepest_line(p.text, p.line)), _SPLIT).diagnostics)
        for w in said:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)

    def _compile(self, group: list["_Pending"]) -> None:
        """Compile recipes as one module in which each is the body of a `def` on the
        line above it, every line where it is in the Datafile: code objects, tracebacks
        and syntax errors carry the Datafile's own lines with no line map."""
        parts: list[str] = []
        at = 1  # the line the source has reached
        for p in group:
            parts.append("\n" * (p.line - 1 - at))
            name = p.outputs[0].name  # the function's name, shown in tracebacks
            parts.append(f"def {name}{'_' if keyword.iskeyword(name) else ''}():\n{p.text}\n")
            at = p.line + p.text.count("\n") + 1
        tree = ast.parse("".join(parts), self.path)
        fns = tree.body
        if len(fns) != len(group) or any(
                not isinstance(fn, ast.FunctionDef) or fn.lineno != p.line - 1
                for fn, p in zip(fns, group)):
            raise _Misplaced  # a body that did not stay inside its def
        found = [self._python_recipe(p, fn) for p, fn in zip(group, fns)]
        code = compile(tree, self.path, "exec")
        by_line = {c.co_firstlineno: c for c in code.co_consts if isinstance(c, types.CodeType)}
        for p, (fp, scan, args) in zip(group, found):
            p.made = model.Recipe(
                "python", p.text, p.line, Span(self.path, p.first, 1, p.first, 1), fp,
                tuple(scan.uses), scan.generator, tuple(scan.imports),
                tuple(scan.import_chains), args, marshal.dumps(by_line[p.line - 1]))

    def _python_recipe(self, p: "_Pending", fn: ast.FunctionDef) -> tuple:
        """What a recipe reads, its fingerprint and its arguments; `fn` is made the
        function to compile (arguments added, the last expression returned)."""
        outputs, inputs = p.outputs, p.inputs
        candidates = _recipe_args(outputs, inputs)
        scan = _scan(fn, set(candidates), self.path)
        used = {u.chain.split(".", 1)[0] for u in scan.uses}
        keep = {i.local for i in inputs} | {o.key for o in outputs if o.key} | \
            {i.key for i in inputs if i.key} | ({"done"} if scan.generator else set())
        args = [a for a in candidates if a in keep or a in used]
        fp = hash_text(fast_dump(ast.Module(fn.body, [])))
        fn.args = ast.arguments(posonlyargs=[], args=[], kwonlyargs=[
            ast.copy_location(ast.arg(arg=a), fn) for a in args],
            kw_defaults=[None] * len(args), defaults=[])
        last = fn.body[-1]
        if isinstance(last, ast.Expr) and not scan.generator:
            fn.body[-1] = ast.copy_location(ast.Return(last.value), last)
        return fp, scan, tuple(args)


class _Misplaced(Exception):
    """Compiled together, recipes did not come out one `def` each, where expected."""


class _Deep(Exception):
    """A recipe nests more than MAX_DEPTH levels deep, at `node`."""

    def __init__(self, node: ast.AST):
        super().__init__()
        self.node = node


_SPLIT = "split the expression into several statements"
_PLAIN = "a params file holds plain settings; keep data in datasets, which rules read"


class _Pending:
    """A rule with a Python recipe, waiting for the recipes to be compiled together."""

    __slots__ = ("text", "line", "first", "outputs", "inputs", "rule", "made")

    def __init__(self, text: str, line: int, first: int, outputs: list, inputs: list):
        self.text, self.line, self.first = text, line, first
        self.outputs, self.inputs = outputs, inputs
        self.rule: tuple = ()
        self.made: model.Recipe | None = None


def _recipe_args(outputs, inputs) -> list[str]:
    """What a recipe may be called with: its inputs, partition keys, `done` (when it
    yields) and its own outputs (bound only when they are `path` outputs, which the
    recipe writes itself)."""
    args: list[str] = []
    for name in [i.local for i in inputs] + [o.key for o in outputs if o.key] + \
            [i.key for i in inputs if i.key] + ["done"] + [o.name for o in outputs]:
        if name and name not in args:
            args.append(name)
    return args


# `{name}` in a shell line, but not `${VAR}` (shell) nor `{{` (a literal brace).
_SHELL_REF = re.compile(r"(?<![\${])\{([A-Za-z_][A-Za-z0-9_]*)\}(?!\})")


def _first_code_line(text: str, line: int) -> int:
    for n, ln in enumerate(text.split("\n"), line):
        if ln.strip() and not ln.strip().startswith("#"):
            return n
    return line


def _python_syntax_error(e: SyntaxError, path: str, where: str) -> DatafileError:
    line = e.lineno or 1
    col = e.offset or 1
    end = e.end_offset if (e.end_lineno == e.lineno and e.end_offset and e.end_offset > col) else col + 1
    msg = e.msg
    if msg.startswith("expected an indented block"):
        msg = "expected an indented block"
    return error(f"Python syntax error {where}: {msg}", Span(path, line, col, line, end))


def _parse_failure(e: Exception) -> str:
    """A YAML, JSON or TOML parser's complaint on one line, with where it is."""
    problem, mark = getattr(e, "problem", None), getattr(e, "problem_mark", None)
    if problem and mark is not None:  # yaml's MarkedYAMLError
        return f"{problem} (line {mark.line + 1}, column {mark.column + 1})"
    if isinstance(e, json.JSONDecodeError):
        return f"{e.msg} (line {e.lineno}, column {e.colno})"
    return " ".join(str(e).split())


def _too_deep(what: str, span: Span | None, fix: str) -> DatafileError:
    return error(f"{what} is nested more than {MAX_DEPTH} levels deep", span, help=fix)


def _deepest_line(text: str, line: int) -> Span | None:
    """The longest line of a block (the likeliest to hold an expression nested too deeply
    for Python's parser, which does not say where it gave up)."""
    best = None
    for n, ln in enumerate(text.split("\n"), line):
        if ln.strip() and (best is None or len(ln) > best[1]):
            best = (n, len(ln), len(ln) - len(ln.lstrip()) + 1)
    return None if best is None else Span("", best[0], best[2], best[0], best[1] + 1)


def _nested_too_deep(tree: ast.AST, limit: int = MAX_DEPTH) -> ast.AST | None:
    """The first node of `tree` nested more than `limit` levels deep (a node with a
    position: its own or its nearest ancestor's), or None. Walks with a list, never
    recursing, so any depth is measured."""
    stack: list[tuple[ast.AST, int, ast.AST]] = [(tree, 0, tree)]
    while stack:
        node, depth, at = stack.pop()
        if hasattr(node, "lineno"):
            at = node
        if depth > limit:
            return at
        stack.extend((child, depth + 1, at) for child in reversed(list(ast.iter_child_nodes(node))))
    return None


def value_problem(value: Any) -> str | None:
    """What makes a parameter's value unsafe to fingerprint and store, as the end of a
    sentence, or None: more than MAX_PARAMS_VALUES values once shared parts are counted
    each time they appear (a YAML alias bomb), nesting deeper than MAX_DEPTH, a value
    that contains itself (a recursive YAML alias), or an integer too long to print.

    Iterative, and each shared part is walked once, so a billion-laughs file is judged
    in the time it took to load."""
    def kids(v: Any) -> list | None:
        if isinstance(v, dict):
            return [*v.keys(), *v.values()]
        if isinstance(v, (list, tuple, set, frozenset)):
            return list(v)
        return None

    def scalar_problem(v: Any) -> str | None:
        if isinstance(v, int) and v.bit_length() > 10_000:
            try:
                str(v)
            except ValueError:  # more digits than Python prints (4300 by default)
                return "holds an integer too long to print"
        return None

    top = kids(value)
    if top is None:
        return scalar_problem(value)
    too_deep = f"is nested more than {MAX_DEPTH} levels deep"
    too_many = (f"holds more than {MAX_PARAMS_VALUES:,} values once shared parts (YAML "
                f"aliases) are counted each time they appear")
    done: dict[int, tuple[int, int]] = {}  # id -> (values, height) of a container walked
    path = {id(value)}  # the containers being walked, to find one inside itself
    # Per container being walked: itself, its children left, [its values, its height].
    stack: list[tuple[Any, Any, list[int]]] = [(value, iter(top), [1, 1])]
    total = 1  # values met so far, shared parts counted each time
    while stack:
        v, children, acc = stack[-1]
        entered = False
        for child in children:
            grand = kids(child)
            if grand is None:
                problem = scalar_problem(child)
                if problem:
                    return problem
                acc[0] += 1
                total += 1
            elif id(child) in done:
                n, height = done[id(child)]
                if len(stack) + height > MAX_DEPTH:
                    return too_deep
                acc[0] += n
                acc[1] = max(acc[1], height + 1)
                total += n
            elif id(child) in path:
                return "contains itself (a YAML alias inside its own anchor)"
            else:
                if len(stack) >= MAX_DEPTH:
                    return too_deep
                path.add(id(child))
                stack.append((child, iter(grand), [1, 1]))
                total += 1
                entered = True
            if total > MAX_PARAMS_VALUES:
                return too_many
            if entered:
                break
        if entered:
            continue
        stack.pop()
        path.discard(id(v))
        done[id(v)] = (acc[0], acc[1])
        if stack:
            parent = stack[-1][2]
            parent[0] += acc[0]
            parent[1] = max(parent[1], acc[1] + 1)
    return None


def _first_non_literal(node: ast.AST) -> ast.AST:
    ok = (ast.Constant, ast.List, ast.Tuple, ast.Set, ast.Dict, ast.UnaryOp, ast.BinOp,
          ast.USub, ast.UAdd, ast.Add, ast.Sub, ast.Load)
    for sub in ast.walk(node):
        if not isinstance(sub, ok) and not isinstance(sub, (ast.expr_context,)):
            return sub if hasattr(sub, "lineno") else node
    return node


def fast_dump(node: ast.AST) -> str:
    """An AST as text, blind to positions (so to comments and formatting); about twice
    as fast as `ast.dump`."""
    out: list[str] = []
    _dump_into(node, out)
    return "".join(out)


def _dump_into(node: ast.AST, out: list[str]) -> None:
    out.append(node.__class__.__name__)
    out.append("(")
    for f in node._fields:
        v = getattr(node, f, None)
        if isinstance(v, ast.AST):
            _dump_into(v, out)
        elif isinstance(v, list):
            out.append("[")
            for x in v:
                if isinstance(x, ast.AST):
                    _dump_into(x, out)
                else:
                    out.append(repr(x))
                out.append(",")
            out.append("]")
        else:
            out.append(repr(v))
        out.append(",")
    out.append(")")


class _Scan:
    def __init__(self) -> None:
        self.uses: list[model.NameUse] = []
        self.generator = False
        self.imports: list[tuple[str, str, str | None]] = []
        self.import_chains: list[str] = []


_NESTED = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)


def bound_names(node: ast.AST) -> set[str]:
    """Every name a body binds anywhere (assignments, imports, defs, args...)."""
    bound: set[str] = set()
    for n in ast.walk(node):
        _bind(n, bound)
    return bound


def _bind(n: ast.AST, bound: set[str]) -> None:
    if isinstance(n, ast.Name):
        if not isinstance(n.ctx, ast.Load):
            bound.add(n.id)
    elif isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        bound.add(n.name)
    elif isinstance(n, ast.arg):
        bound.add(n.arg)
    elif isinstance(n, (ast.Import, ast.ImportFrom)):
        for a in n.names:
            bound.add((a.asname or a.name).split(".")[0])
    elif isinstance(n, ast.ExceptHandler) and n.name:
        bound.add(n.name)
    elif isinstance(n, (ast.MatchAs, ast.MatchStar)) and n.name:
        bound.add(n.name)


def _scan(fn: ast.FunctionDef, args: set[str], path: str) -> _Scan:
    """One walk over a recipe: the global names it reads (first use of each dotted
    chain), whether it yields, and what it imports itself."""
    scan = _Scan()
    bound: set[str] = set()
    loads: list[tuple[str, ast.AST]] = []
    # Each node with whether it is inside a nested function, how deep it is, and the
    # nearest node with a position (its own, or an ancestor's): to say where a recipe
    # nests too deeply, before anything recurses over it (`fast_dump`, `compile`).
    stack: list[tuple[ast.AST, bool, int, ast.AST]] = [(st, False, 1, st)
                                                       for st in reversed(fn.body)]
    while stack:
        n, nested, depth, at = stack.pop()
        if depth > MAX_DEPTH:
            raise _Deep(at)
        _bind(n, bound)
        if isinstance(n, (ast.Yield, ast.YieldFrom)) and not nested:
            scan.generator = True
        elif isinstance(n, (ast.Import, ast.ImportFrom)):
            for a in n.names:
                if isinstance(n, ast.Import):
                    name = a.asname or a.name.split(".")[0]
                    scan.imports.append((name, a.name if a.asname else name, None))
                elif a.name != "*":
                    mod = ("." * n.level) + (n.module or "")
                    scan.imports.append((a.asname or a.name, mod, a.name))
        if isinstance(n, ast.Attribute) and isinstance(n.ctx, ast.Load):
            parts = [n.attr]
            cur = n.value
            while isinstance(cur, ast.Attribute):
                parts.append(cur.attr)
                cur = cur.value
            if isinstance(cur, ast.Name):
                if depth + len(parts) > MAX_DEPTH:
                    raise _Deep(n)
                parts.append(cur.id)
                loads.append((".".join(reversed(parts)), n))
                continue  # the chain's inner parts are implied by it
        elif isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load):
            loads.append((n.id, n))
            continue
        inner = nested or isinstance(n, _NESTED)
        if hasattr(n, "lineno"):
            at = n
        stack.extend((c, inner, depth + 1, at) for c in reversed(list(ast.iter_child_nodes(n))))
    imported = {name for name, _, _ in scan.imports}
    seen: set[str] = set()
    for chain, n in loads:
        root = chain.split(".", 1)[0]
        if root in imported:
            if chain not in scan.import_chains:
                scan.import_chains.append(chain)
            continue
        if chain in seen or (root in bound and root not in args):
            continue
        seen.add(chain)
        scan.uses.append(model.NameUse(chain, Span(path, n.lineno, n.col_offset + 1,
                                                   n.end_lineno or n.lineno,
                                                   (n.end_col_offset or n.col_offset) + 1)))
    scan.uses.sort(key=lambda u: (u.span.line, u.span.col, u.chain))
    return scan
