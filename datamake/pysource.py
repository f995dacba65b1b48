"""Python source in a Datafile, read with `ast`: recipes and `python:` blocks parsed at
their real Datafile lines, what a recipe reads and binds, code dumped blind to
comments and formatting (for fingerprints), and nesting measured without recursing.
Every module that looks at Python source asks this one."""
from __future__ import annotations

import ast
from typing import TYPE_CHECKING

from .errors import Span
from .limits import MAX_DEPTH

if TYPE_CHECKING:  # recipes are loaded by a no-op build; the Datafile model is not
    from . import model


class TooDeep(Exception):
    """A recipe nests more than MAX_DEPTH levels deep, at `node`."""

    def __init__(self, node: ast.AST):
        super().__init__()
        self.node = node


def nested_too_deep(tree: ast.AST, limit: int = MAX_DEPTH) -> ast.AST | None:
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


def first_non_literal(node: ast.AST) -> ast.AST:
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


class Scan:
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


def scan_recipe(fn: ast.FunctionDef, args: set[str], path: str) -> Scan:
    """One walk over a recipe: the global names it reads (first use of each dotted
    chain), whether it yields, and what it imports itself."""
    from .model import NameUse
    scan = Scan()
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
            raise TooDeep(at)
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
                    raise TooDeep(n)
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
        scan.uses.append(NameUse(chain, Span(path, n.lineno, n.col_offset + 1,
                                                   n.end_lineno or n.lineno,
                                                   (n.end_col_offset or n.col_offset) + 1)))
    scan.uses.sort(key=lambda u: (u.span.line, u.span.col, u.chain))
    return scan


def parse_at(source: str, line: int, filename: str) -> ast.Module:
    """Parse `source` as if its first line were line `line` of `filename`: node positions
    and syntax errors carry the Datafile's own lines. (Padding the source with blank
    lines would do the same at a cost that grows with the line number.)"""
    try:
        tree = ast.parse(source, filename)
    except SyntaxError as e:
        if e.lineno is not None:
            e.lineno += line - 1
        if getattr(e, "end_lineno", None) is not None:
            e.end_lineno += line - 1  # type: ignore[operator]
        raise
    return ast.increment_lineno(tree, line - 1) if line != 1 else tree


def parse_block(text: str, line: int, filename: str) -> list[ast.stmt]:
    """The statements of an indented block (a `python:` block) whose first line is line
    `line` of `filename`. Raises SyntaxError, RecursionError or MemoryError."""
    return parse_at(block_source(text), line - 1, filename).body[0].body  # type: ignore[attr-defined]


def strip_docstrings(node: ast.AST) -> ast.AST:
    for n in ast.walk(node):
        if isinstance(n, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            body = n.body
            if body and isinstance(body[0], ast.Expr) and isinstance(
                    getattr(body[0], "value", None), ast.Constant) and isinstance(
                    body[0].value.value, str):
                n.body = body[1:] or [ast.Pass()]
    return node


def chains(node: ast.AST, exclude: set[str]) -> set[str]:
    """Dotted names read in `node` whose root is not in `exclude`."""
    out: set[str] = set()
    for n in ast.walk(node):
        if isinstance(n, ast.Attribute) and isinstance(n.ctx, ast.Load):
            parts = []
            cur: ast.AST = n
            while isinstance(cur, ast.Attribute):
                parts.append(cur.attr)
                cur = cur.value
            if isinstance(cur, ast.Name):
                parts.append(cur.id)
                if cur.id not in exclude:
                    out.add(".".join(reversed(parts)))
        elif isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load) and n.id not in exclude:
            out.add(n.id)
    # A chain's prefixes are implied by it.
    return out


def block_source(text: str) -> str:
    """A `python:` block's text as the source its statements are parsed from (an
    `if True:` above it, so that its indentation parses): `ast` positions and
    `ast.get_source_segment` refer to this text, one line below the block's own."""
    return "if True:\n" + text + "\n"


def block_statements(text: str) -> list[ast.stmt]:
    """The statements of a `python:` block, positioned in `block_source(text)`.
    Raises SyntaxError, RecursionError or MemoryError."""
    return ast.parse(block_source(text)).body[0].body  # type: ignore[attr-defined]


def block_defines(texts: list[str]) -> set[str] | None:
    """The names `python:` blocks (their texts) define at their top level (also inside
    `if`, `try`, `for`, `with`...), or None when they may define any name
    (`from m import *`, or names made at run time through `globals()`, `vars()`, `exec`)."""
    names: set[str] = set()
    for text in texts:
        try:
            stack: list[ast.AST] = list(block_statements(text))
        except (SyntaxError, RecursionError, MemoryError):
            continue
        while stack:
            n = stack.pop()
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(n.name)
                # Its own names are local to it, but `global x` in it defines `x`.
                names.update(x for sub in ast.walk(n) if isinstance(sub, ast.Global)
                             for x in sub.names)
                continue
            if isinstance(n, ast.Lambda):
                continue
            if isinstance(n, ast.Name) and not isinstance(n.ctx, ast.Load):
                names.add(n.id)
            elif isinstance(n, ast.Name) and n.id in ("globals", "vars", "exec"):
                return None
            elif isinstance(n, (ast.Import, ast.ImportFrom)):
                for a in n.names:
                    if a.name == "*":
                        return None
                    names.add((a.asname or a.name).split(".")[0])
            elif isinstance(n, (ast.MatchAs, ast.MatchStar)) and n.name:
                names.add(n.name)
            elif isinstance(n, ast.MatchMapping) and n.rest:
                names.add(n.rest)
            elif isinstance(n, ast.ExceptHandler) and n.name:
                names.add(n.name)
            stack.extend(ast.iter_child_nodes(n))
    return names


def binds(stmt: ast.stmt, name: str) -> bool:
    """Whether a top-level statement binds `name` (def, class, import, assignment)."""
    if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return stmt.name == name
    if isinstance(stmt, (ast.Import, ast.ImportFrom)):
        return any((a.asname or a.name).split(".")[0] == name for a in stmt.names)
    return any(isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store) and n.id == name
               for n in ast.walk(stmt))


def constant_keys(fn: ast.AST, names: list[str]) -> tuple[tuple[str, tuple], ...]:
    """For each of `names` that `fn` reads only as `name[CONSTANT]` (a string or integer
    key, never the whole value, never assigned or changed), the keys it reads, sorted.
    A step that reads `model["depth"]` depends on that key of `model`, not on the rest.
    (One walk; callers pass only the names the recipe reads at all.)"""
    if not names:
        return ()
    want = set(names)
    keys: dict[str, set] = {}
    whole: set[str] = set()
    subscripted: set[int] = set()  # ids of Name nodes read as `name[CONSTANT]`
    named: list[ast.Name] = []
    for n in ast.walk(fn):
        if isinstance(n, ast.Subscript):
            v = n.value
            if isinstance(v, ast.Name) and v.id in want:
                sl = n.slice
                if isinstance(n.ctx, ast.Load) and isinstance(sl, ast.Constant) \
                        and type(sl.value) in (str, int):
                    keys.setdefault(v.id, set()).add(sl.value)
                    subscripted.add(id(v))
                else:
                    whole.add(v.id)
        elif isinstance(n, ast.Name):
            if n.id in want:
                named.append(n)
        elif isinstance(n, ast.arg) and n.arg in want:
            whole.add(n.arg)  # a nested function's own argument of that name
    for n in named:
        if id(n) not in subscripted:
            whole.add(n.id)  # read whole, passed on, assigned or deleted
    return tuple((name, tuple(sorted(keys[name], key=repr))) for name in names
                 if name not in whole and name in keys)
