"""Datafile text -> model: the only user of lark.

Recipe and `python:` bodies are captured whole and compiled by Python's own `ast` at
their real Datafile lines and columns (the source handed to `ast` is padded with blank
lines), so syntax errors and tracebacks point into the Datafile without any line map.

Over 500 lines: one method per construct of the language.
"""
from __future__ import annotations

import ast
import functools
import keyword
import marshal
import re
import types
import warnings
from pathlib import Path
from typing import Any

from . import halves, model
from .errors import DatafileError, Diagnostic, Span, error
from .hashing import hash_text
from .limits import MAX_DEPTH, MAX_NAME, value_problem
from .params_files import read_params
from .pysource import (TooDeep, constant_keys, fast_dump, first_non_literal, nested_too_deep,
                       parse_at, scan_recipe)
from .syntax_errors import (check_tabs, deepest_line, python_syntax_error, syntax_diagnostic,
                            too_deep)



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
        raise error("nul-character", Span(path, line, col, line, col + 1))
    check_tabs(text, path)
    base = base or Path.cwd()
    if text.count("\n") >= halves.PARALLEL_LINES and halves.may_fork():
        _lark()  # built once, before the fork, for both halves
        df = halves.parse_in_halves(text, path, base, _parse)
        if df is not None:
            return df
    return _parse(text, path, base)


def _parse(text: str, path: str, base: Path) -> model.Datafile:
    import lark

    try:
        tree = _lark().parse(text)
    except lark.exceptions.UnexpectedInput as e:
        raise DatafileError(syntax_diagnostic(e, text, path)) from None
    return _Builder(text, path, base).build(tree)


class _Builder:
    """Turns the lark tree into model values, checking literal values on the way."""

    def __init__(self, text: str, path: str, base: Path):
        self.text = text
        self.lines = text.split("\n")
        self.path = path
        self.base = base
        self.errors: list[Diagnostic] = []
        self.env_read: list[str] = []  # `${VAR}`s of params paths: the parse depends on them
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
            raise error("name-too-long", self.span(tok), length=len(tok), limit=MAX_NAME)
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
                    pf = self.params_file(tok)
                    params_files.append(pf)
                    params.extend(read_params(pf, self.base))
                elif kind == "dataset":
                    datasets.append(self.dataset(st))
                elif kind == "include":
                    tok = st.children[0]
                    ns = self.name(st.children[1]) if len(st.children) > 1 else None
                    includes.append(model.Include(self.string(tok), ns, self.span(tok)))
                elif kind == "cache":
                    tok = st.children[0]
                    if cache is not None:
                        raise error("cache-twice", self.span(tok))
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
                              tuple(rules), tuple(python), tuple(includes), cache,
                              env=tuple(dict.fromkeys(self.env_read)))

    def params_file(self, tok) -> model.ParamsFile:
        """`params "FILE"`, its `${VAR}`s expanded from the environment as in locations."""
        from .params_files import expand

        from .envs import ENV_VAR, overlay

        written, span = self.string(tok), self.span(tok)
        path, names = expand(written, span)
        self.env_read.extend(names)
        over = overlay(path)
        if over is not None:
            self.env_read.append(ENV_VAR)  # another environment lays another file over it
        return model.ParamsFile(path, span, over)

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
            raise error("bad-escape", self.span(tok), reason=why) from None

    def param(self, st) -> model.Param:
        name_tok, expr_tok = st.children
        value = self.literal(expr_tok, str(name_tok))
        return model.Param(self.name(name_tok), value, self.span(name_tok))

    def literal(self, tok, name: str) -> Any:
        """The value of parameter `name`, a Python literal. Raises DatafileError."""
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
            raise error("param-syntax", at(e.lineno or 1, e.offset or 1,
                        e.end_offset if e.end_lineno == e.lineno else None),
                        name=name, reason=e.msg) from None
        except (RecursionError, MemoryError):  # Python's parser gave up on its depth
            raise too_deep("param-too-deep", at(1, 1, len(src.split("\n", 1)[0]) + 1),
                           name=name) from None
        try:
            value = ast.literal_eval(node)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            bad = first_non_literal(node.body)
            sp = at(bad.lineno, bad.col_offset + 1,
                    bad.end_col_offset + 1 if bad.end_lineno == bad.lineno else None)
            raise error("param-not-literal", sp, name=name) from None
        problem = value_problem(value)
        if problem is not None:
            raise error("param-too-big", at(1, 1, len(src.split("\n", 1)[0]) + 1), name=name,
                        problem=problem)
        return value

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
            raise error("option-syntax", Span(self.path, tok.line, col - 1 + (e.offset or 1) - 1,
                                              tok.line, col + (e.offset or 1) - 1),
                        reason=e.msg) from None
        except (RecursionError, MemoryError):
            raise too_deep("option-too-deep", self.span(tok)) from None
        if call.args:
            raise error("option-positional", sp(call.args[0]))
        out = []
        for kw in call.keywords:
            if kw.arg is None:
                raise error("option-unpacked", sp(kw.value))
            try:
                value = ast.literal_eval(kw.value)
            except (ValueError, TypeError, SyntaxError, RecursionError, MemoryError):
                raise error("option-not-literal", sp(kw.value), option=kw.arg) from None
            problem = value_problem(value)
            if problem is not None:
                raise error("option-too-big", sp(kw.value), option=kw.arg, problem=problem)
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
            raise python_syntax_error(e, self.path, "the `python:` block") from None
        except (RecursionError, MemoryError):  # Python's parser gave up on its depth
            raise too_deep("python-block-too-deep",
                           self.located(deepest_line(text, tok.line))) from None
        deep = nested_too_deep(tree, MAX_DEPTH + 1)  # one level more: `if True:`
        if deep is not None:
            raise too_deep("python-block-too-deep", self.node_span(deep))
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
        if any(_NOTEBOOK_START.match(ln) for _, ln in code_lines):
            return self.notebook_recipe(text, tok.line, code_lines)
        shell = [ln.strip().startswith("$ ") or ln.strip() == "$" for _, ln in code_lines]
        if any(shell):
            if not all(shell):
                n, ln = code_lines[shell.index(False)] if shell[0] else code_lines[shell.index(True)]
                c = len(ln) - len(ln.lstrip()) + 1
                raise error("mixed-recipe", Span(self.path, n, c, n, len(ln) + 1))
            return self.shell_recipe(text, tok.line, first, code_lines)
        return self.python_recipe(text, tok.line, first, outputs, inputs)

    def shell_recipe(self, text, line, first, code_lines) -> model.Recipe:
        commands = [ln.strip()[2:].strip() for _, ln in code_lines]
        uses = []
        for n, ln in code_lines:
            for m in model.SHELL_REF.finditer(ln):
                uses.append(model.NameUse(m.group(1), Span(self.path, n, m.start() + 1, n,
                                                           m.end() + 1)))
        fp = hash_text("shell\0" + "\n".join(commands))
        return model.Recipe("shell", text, line, Span(self.path, first, 1, first, 1), fp,
                            tuple(uses), False)

    def notebook_recipe(self, text, line, code_lines) -> model.Recipe:
        """`notebook "FILE"`: the rule's recipe is a notebook (the loader checks that
        the file is there, the fingerprint reads it)."""
        n, ln = code_lines[0]
        m = _NOTEBOOK.match(ln)
        if m is None or len(code_lines) > 1:
            bad_n, bad = next(((k, x) for k, x in code_lines if not _NOTEBOOK.match(x)),
                              code_lines[-1])
            c = len(bad) - len(bad.lstrip()) + 1
            raise error("notebook-one-line", Span(self.path, bad_n, c, bad_n, len(bad) + 1))
        col = m.start(1) + 1
        span = Span(self.path, n, col, n, m.end(1) + 1)
        raw = m.group(1)
        try:
            path = ast.literal_eval(raw) if "\\" in raw else raw[1:-1]
        except (SyntaxError, ValueError) as e:
            why = str(e.msg if isinstance(e, SyntaxError) else e)
            raise error("bad-escape", span, reason=why) from None
        if not (path.endswith(".py") or path.endswith(".ipynb")):
            raise error("notebook-extension", span, path=path)
        fp = hash_text("notebook\0" + path)
        return model.Recipe("notebook", text, line, Span(self.path, n, 1, n, 1), fp,
                            notebook=path, notebook_span=span)

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
            except (SyntaxError, _Misplaced, TooDeep, RecursionError, MemoryError):
                del said[:]
                for p in pending:
                    rule = p.outputs[0].name
                    try:
                        self._compile([p])
                    except (SyntaxError, _Misplaced) as e:
                        if isinstance(e, _Misplaced):  # not seen: a recipe alone is one def
                            e = SyntaxError("invalid syntax", (self.path, p.first, 1, None))
                        self.errors.extend(python_syntax_error(
                            e, self.path, f"the recipe of `{rule}`").diagnostics)
                    except TooDeep as e:
                        self.errors.extend(too_deep("recipe-too-deep", self.node_span(e.node),
                                                    rule=rule).diagnostics)
                    except (RecursionError, MemoryError):  # Python's parser gave up
                        self.errors.extend(too_deep(
                            "recipe-too-deep", self.located(deepest_line(p.text, p.line)),
                            rule=rule).diagnostics)
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
        for p, (fp, scan, args, keys_read, no_value) in zip(group, found):
            p.made = model.Recipe(
                "python", p.text, p.line, Span(self.path, p.first, 1, p.first, 1), fp,
                tuple(scan.uses), scan.generator, tuple(scan.imports),
                tuple(scan.import_chains), args, marshal.dumps(by_line[p.line - 1]),
                keys_read=keys_read, no_value=no_value)

    def _python_recipe(self, p: "_Pending", fn: ast.FunctionDef) -> tuple:
        """What a recipe reads, its fingerprint and its arguments; `fn` is made the
        function to compile (arguments added, the last expression returned)."""
        outputs, inputs = p.outputs, p.inputs
        candidates = _recipe_args(outputs, inputs)
        scan = scan_recipe(fn, set(candidates), self.path)
        used = {u.chain.split(".", 1)[0] for u in scan.uses}
        keep = {i.local for i in inputs} | {o.key for o in outputs if o.key} | \
            {i.key for i in inputs if i.key} | ({"done"} if scan.generator else set())
        args = [a for a in candidates if a in keep or a in used]
        fp = hash_text(fast_dump(ast.Module(fn.body, [])))
        # Only an input the recipe reads by its plain name can be read as `name[KEY]`
        # (the scan saw every such read): the others need no second walk.
        plain = {u.chain for u in scan.uses}
        keys_read = constant_keys(fn, [i.local for i in inputs if i.local in plain])
        last = fn.body[-1]
        no_value = None
        if isinstance(last, (ast.Assign, ast.AnnAssign, ast.AugAssign)) and not scan.generator:
            no_value = self.node_span(last)
        fn.args = ast.arguments(posonlyargs=[], args=[], kwonlyargs=[
            ast.copy_location(ast.arg(arg=a), fn) for a in args],
            kw_defaults=[None] * len(args), defaults=[])
        last = fn.body[-1]
        if isinstance(last, ast.Expr) and not scan.generator:
            fn.body[-1] = ast.copy_location(ast.Return(last.value), last)
        return fp, scan, tuple(args), keys_read, no_value


class _Misplaced(Exception):
    """Compiled together, recipes did not come out one `def` each, where expected."""


class _Pending:
    """A rule with a Python recipe, waiting for the recipes to be compiled together."""

    __slots__ = ("text", "line", "first", "outputs", "inputs", "rule", "made")

    def __init__(self, text: str, line: int, first: int, outputs: list, inputs: list):
        self.text, self.line, self.first = text, line, first
        self.outputs, self.inputs = outputs, inputs
        self.rule: tuple = ()
        self.made: model.Recipe | None = None


# A notebook recipe: `notebook "FILE"` (a comment may follow). A line that starts so
# but is not that is told as a mistake in it, never taken as Python.
_NOTEBOOK_START = re.compile(r"^\s*notebook\s*[\"']")
_NOTEBOOK = re.compile(r"""^\s*notebook\s+("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')\s*(?:#.*)?$""")


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


def _first_code_line(text: str, line: int) -> int:
    for n, ln in enumerate(text.split("\n"), line):
        if ln.strip() and not ln.strip().startswith("#"):
            return n
    return line


