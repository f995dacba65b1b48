"""Names resolved into a graph of rules: unknown names, cycles, two producers of one
output, undeclared uses, and slicing to what a target needs.

The `Graph` is made of plain tuples and dicts so that it unpickles fast: the no-op path
loads it from `.datamake/` instead of re-parsing the Datafile.
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, NamedTuple

from .errors import DatafileError, Diagnostic, Span

if TYPE_CHECKING:
    from . import model

DATA_DIR = ".datamake/data"


class DatasetInfo(NamedTuple):
    """Where a dataset lives and how it is stored, as the catalog needs it."""

    name: str
    location: str  # as written (relative to the Datafile, ${VAR} not yet expanded)
    format: str | None
    options: tuple[tuple[str, Any], ...]
    versioned: bool
    declared: bool  # False for the implicit home of an undeclared output


class RuleNode(NamedTuple):
    """One rule, with its inputs split into data and parameters."""

    name: str  # the first output
    outputs: tuple[str, ...]
    inputs: tuple[str, ...]  # datasets and other rules' outputs, full names
    locals: tuple[str, ...]  # the variable each data input is bound to
    keys: tuple[str | None, ...]  # each data input's partition key (pattern rules)
    versions: tuple[str | None, ...]  # each data input's pinned version
    params: tuple[str, ...]  # parameters used, full names
    param_locals: tuple[str, ...]
    key: str | None  # the partition key of a pattern rule
    kind: str  # "python" or "shell"
    generator: bool
    index: int  # position in the Datafile's rules, to find the recipe


class Graph:
    """The pipeline: rules in a topological order, aliases, datasets and parameters."""

    def __init__(self) -> None:
        self.rules: dict[str, RuleNode] = {}  # topological order
        self.producer: dict[str, str] = {}  # output name -> rule name
        self.aliases: dict[str, tuple[str, ...]] = {}
        self.datasets: dict[str, DatasetInfo] = {}
        self.params: dict[str, Any] = {}
        self.default: str | None = None
        self.docs: dict[str, str] = {}
        self.code_fp: dict[str, str] = {}  # rule -> fingerprint of its code
        self.code_deps: dict[str, dict[str, str]] = {}  # rule -> {symbol: fingerprint}
        self.spans: dict[str, tuple[str, int, int]] = {}  # name -> (file, line, col)
        self.listed: list[str] = []  # rule and alias names in Datafile order
        self.locations: dict[str, Any] = {}  # resolved catalog Locations, when env-free
        self._needed: dict[tuple[str, ...], list[str]] = {}

    def kind_of(self, name: str) -> str | None:
        """"param", "output", "alias", "dataset", or None for an unknown name."""
        if name in self.params:
            return "param"
        if name in self.producer:
            return "output"
        if name in self.aliases:
            return "alias"
        if name in self.datasets:
            return "dataset"
        return None

    def targets(self) -> list[str]:
        """Every rule and alias name, in Datafile order."""
        return list(self.listed)

    def needed(self, targets: list[str]) -> list[RuleNode]:
        """The rules that `targets` need, in topological order (aliases expanded)."""
        memo = self._needed.get(tuple(targets))
        if memo is not None:
            return [self.rules[n] for n in memo]
        want: set[str] = set()
        stack = list(targets)
        seen: set[str] = set()
        while stack:
            name = stack.pop()
            if name in seen:
                continue
            seen.add(name)
            if name in self.aliases:
                stack.extend(self.aliases[name])
                continue
            rule = self.producer.get(name)
            if rule is not None and rule not in want:
                want.add(rule)
                stack.extend(self.rules[rule].inputs)
        if len(want) == len(self.rules):
            out = list(self.rules.values())
        else:
            out = [r for n, r in self.rules.items() if n in want]
        self._needed[tuple(targets)] = [r.name for r in out]
        return out

    def downstream(self, names: set[str]) -> set[str]:
        """Rules that read any of `names`, directly or through other rules."""
        out: set[str] = set()
        frontier = set(names)
        for r in self.rules.values():
            if frontier.intersection(r.inputs) or frontier.intersection(r.params):
                out.add(r.name)
                frontier.update(r.outputs)
        return out


def build(df: "model.Datafile") -> tuple[Graph, list[Diagnostic]]:
    """Resolve a Datafile into a Graph and its warnings.

    Raises DatafileError with every error found (unknown names, cycles, duplicates,
    undeclared uses).
    """
    return _Checker(df).run()


def _python_defines(df: "model.Datafile") -> set[str]:
    import ast

    names: set[str] = set()
    for block in df.python:
        try:
            tree = ast.parse("if True:\n" + block.text + "\n")
        except SyntaxError:
            continue
        for st in tree.body[0].body:
            if isinstance(st, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(st.name)
            elif isinstance(st, (ast.Import, ast.ImportFrom)):
                for a in st.names:
                    names.add((a.asname or a.name).split(".")[0])
            else:
                for n in ast.walk(st):
                    if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store):
                        names.add(n.id)
    return names


class _Checker:
    def __init__(self, df: "model.Datafile"):
        from .diagnostics import did_you_mean

        self.did_you_mean = did_you_mean
        self.df = df
        self.errors: list[Diagnostic] = []
        self.warnings: list[Diagnostic] = []
        self.g = Graph()
        self.defined: dict[str, tuple[str, Span]] = {}  # name -> (kind, span)

    def err(self, message: str, span: Span | None, help: str | None = None,
            notes: tuple[str, ...] = ()) -> None:
        self.errors.append(Diagnostic("error", message, span, help, notes))

    def define(self, name: str, kind: str, span: Span) -> bool:
        prev = self.defined.get(name)
        if prev is not None:
            pkind, pspan = prev
            if kind == "output" and pkind == "output":
                self.err(f"two rules write `{name}`", span,
                         help="each output has exactly one rule; rename one of them",
                         notes=(f"`{name}` is also written by the rule at {pspan}",))
            elif kind == "dataset" and pkind == "output" or kind == "output" and pkind == "dataset":
                return True  # a rule writing a declared dataset: the normal case
            else:
                self.err(f"`{name}` is defined twice", span,
                         help="every parameter, dataset and output has one name in one "
                              "namespace; rename one of them",
                         notes=(f"first defined as a {pkind} at {pspan}",))
            return False
        self.defined[name] = (kind, span)
        return True

    def run(self) -> tuple[Graph, list[Diagnostic]]:
        df, g = self.df, self.g
        for p in df.params:
            if self.define(p.name, "param", p.span):
                g.params[p.name] = p.value
        declared: dict[str, "model.Dataset"] = {}
        for d in df.datasets:
            if self.define(d.name, "dataset", d.span):
                declared[d.name] = d
        rule_by_name: dict[str, tuple[int, "model.Rule"]] = {}
        for i, r in enumerate(df.rules):
            if r.recipe is None:
                for o in r.outputs:
                    if self.define(o.name, "alias", o.span):
                        pass
            for o in r.outputs if r.recipe is not None else ():
                prev = self.defined.get(o.name)
                if prev and prev[0] == "param":
                    self.err(f"`{o.name}` is a parameter; a rule cannot write it", o.span,
                             help="give the rule's output another name")
                    continue
                if prev and prev[0] == "alias":
                    self.err(f"two rules write `{o.name}`", o.span,
                             help="each output has exactly one rule; rename one of them",
                             notes=(f"`{o.name}` is also a rule at {prev[1]}",))
                    continue
                if prev and prev[0] == "output":
                    self.define(o.name, "output", o.span)
                    continue
                self.defined[o.name] = ("output", o.span)
                g.producer[o.name] = r.name
            if r.recipe is None and len(r.outputs) > 1:
                self.err("a rule without a recipe has one name", r.outputs[1].span,
                         help="an alias (a rule with no recipe) is written `NAME: INPUTS`")
            rule_by_name.setdefault(r.name, (i, r))
        names = set(self.defined)
        py_defs = _python_defines(df)

        # Datasets: declared ones, then the implicit homes of undeclared outputs.
        for d in df.datasets:
            if d.name in declared and declared[d.name] is d:
                g.datasets[d.name] = DatasetInfo(d.name, d.location, d.format, d.options,
                                                 d.versioned, True)
        for i, r in enumerate(df.rules):
            if r.recipe is None:
                continue
            for o in r.outputs:
                if o.name in g.datasets or g.producer.get(o.name) != r.name:
                    continue
                if r.recipe.kind == "shell":
                    loc, fmt = f"{DATA_DIR}/{o.name}", "path"
                else:
                    loc, fmt = f"{DATA_DIR}/{o.name}.pkl", "pickle"
                if o.key:
                    loc = loc.replace(f"{DATA_DIR}/{o.name}", f"{DATA_DIR}/{o.name}/{{{o.key}}}")
                g.datasets[o.name] = DatasetInfo(o.name, loc, fmt, (), False, False)

        nodes: dict[str, RuleNode] = {}
        deps: dict[str, list[tuple[str, Span]]] = {}
        for i, r in enumerate(df.rules):
            ins, locs, keys, vers, params, plocs = [], [], [], [], [], []
            for inp in r.inputs:
                if inp.name not in names:
                    self.err(f"unknown name `{inp.name}`", inp.span,
                             help=self.did_you_mean(inp.name, names)
                             or "declare it with `dataset`, `param`, or a rule that writes it")
                    continue
                kind = self.defined[inp.name][0]
                if kind == "param":
                    if inp.key or inp.version:
                        self.err(f"`{inp.name}` is a parameter; it has no "
                                 f"{'partitions' if inp.key else 'versions'}", inp.span)
                    params.append(inp.name)
                    plocs.append(inp.local)
                else:
                    ins.append(inp.name)
                    locs.append(inp.local)
                    keys.append(inp.key)
                    vers.append(inp.version)
            deps[r.name] = [(inp.name, inp.span) for inp in r.inputs if inp.name in names]
            if r.recipe is None:
                if r.name not in g.aliases:
                    g.aliases[r.name] = tuple(ins)
                g.spans[r.name] = (r.span.file, r.span.line, r.span.col)
                if r.doc:
                    g.docs[r.name] = r.doc
                continue
            if any(g.producer.get(o.name) != r.name for o in r.outputs):
                continue  # a duplicate already reported
            self.check_uses(r, names, py_defs)
            keys_out = {o.key for o in r.outputs}
            key = r.outputs[0].key
            if len(keys_out) > 1:
                self.err("the outputs of a pattern rule share one key", r.outputs[0].span,
                         help="write every output as `name[key]` with the same key")
            nodes[r.name] = RuleNode(r.name, tuple(o.name for o in r.outputs), tuple(ins),
                                     tuple(locs), tuple(keys), tuple(vers), tuple(params),
                                     tuple(plocs), key, r.recipe.kind, r.recipe.generator, i)
            for o in r.outputs:
                g.spans[o.name] = (o.span.file, o.span.line, o.span.col)
            if r.doc:
                g.docs[r.name] = r.doc

        self.check_cycles(deps, rule_by_name)
        if self.errors:
            raise DatafileError(self.errors)

        # Topological order: depth-first from rules in file order, dependencies first.
        order: list[str] = []
        state: dict[str, int] = {}
        for start in nodes:
            if start in state:
                continue
            stack = [(start, iter(nodes[start].inputs))]
            state[start] = 1
            while stack:
                name, it = stack[-1]
                for dep in it:
                    prod = g.producer.get(dep)
                    if prod is not None and prod in nodes and prod not in state:
                        state[prod] = 1
                        stack.append((prod, iter(nodes[prod].inputs)))
                        break
                else:
                    stack.pop()
                    order.append(name)
        g.rules = {n: nodes[n] for n in order}
        g.default = df.rules[0].name if df.rules else None
        g.listed = list(dict.fromkeys(r.name for r in df.rules))

        used: set[str] = set()
        for r in df.rules:
            used.update(i.name for i in r.inputs)
            used.update(o.name for o in r.outputs)
        for d in df.datasets:
            if d.name not in used:
                self.warnings.append(Diagnostic(
                    "warning", f"dataset `{d.name}` is neither read nor written by any rule",
                    d.span, help="remove it, or use it as a rule's input or output"))
        self.warnings.sort(key=lambda d: (d.span.line, d.span.col) if d.span else (0, 0))
        return g, self.warnings

    def check_uses(self, r: "model.Rule", names: set[str], py_defs: set[str]) -> None:
        recipe = r.recipe
        assert recipe is not None
        bound = {i.local for i in r.inputs}
        outs = {o.name for o in r.outputs}
        keys = {o.key for o in r.outputs if o.key} | {i.key for i in r.inputs if i.key}
        used_roots: set[str] = set()
        if recipe.kind == "shell":
            allowed = bound | outs | keys | {"out"}
            for u in recipe.uses:
                used_roots.add(u.chain)
                if u.chain in allowed:
                    continue
                if u.chain in names:
                    self.err(f"the recipe of `{r.name}` uses `{u.chain}`, which is not one "
                             f"of its inputs", u.span,
                             help=f"add `{u.chain}` to the inputs: `{' '.join(o.name for o in r.outputs)}: "
                                  f"{' '.join([i.name for i in r.inputs] + [u.chain])}`")
                else:
                    self.err(f"unknown name `{{{u.chain}}}` in a shell recipe", u.span,
                             help=self.did_you_mean(u.chain, allowed)
                             or "write `{{` and `}}` for literal braces")
        else:
            extra = {"done"} if recipe.generator else set()
            for u in recipe.uses:
                root = u.chain.split(".")[0]
                used_roots.add(root)
                if root in bound or root in py_defs or root in extra or root in keys:
                    continue
                span = Span(u.span.file, u.span.line, u.span.col, u.span.line,
                            u.span.col + len(root))
                if root in outs:
                    if self.is_path(root):
                        continue
                    self.err(f"the recipe of `{r.name}` reads its own output `{root}`", span,
                             help="a recipe returns its outputs' values; only `as path` "
                                  "outputs are bound in the recipe (to the path to write)")
                elif root in names:
                    self.err(f"the recipe of `{r.name}` uses `{root}`, which is not one of "
                             f"its inputs", span,
                             help=f"add `{root}` to the inputs: `{' '.join(o.name for o in r.outputs)}: "
                                  f"{' '.join([i.name for i in r.inputs] + [root])}`")
        locals_seen: dict[str, "model.Input"] = {}
        for inp in r.inputs:
            prev = locals_seen.get(inp.local)
            if prev is not None and prev.name != inp.name:
                self.err(f"two inputs of `{r.name}` are both called `{inp.local}` in the recipe",
                         inp.span, help=f"rename one with `as`, e.g. `{inp.name} as other`")
            locals_seen[inp.local] = inp
        for inp in r.inputs:
            if inp.local not in used_roots and inp.name in names:
                self.warnings.append(Diagnostic(
                    "warning", f"the recipe of `{r.name}` never uses its input `{inp.local}`",
                    inp.span, help="remove it from the inputs, or use it in the recipe"))

    def is_path(self, name: str) -> bool:
        """Whether dataset `name` is stored as a path the recipe writes itself."""
        from . import formats

        ds = self.g.datasets.get(name)
        if ds is None:
            return False
        if ds.format:
            return ds.format == formats.PATH
        base = ds.location.rstrip("/").rsplit("/", 1)[-1]
        return formats.for_extension(os.path.splitext(base)[1]) == formats.PATH

    def check_cycles(self, deps: dict[str, list[tuple[str, Span]]],
                     rules: dict[str, tuple[int, "model.Rule"]]) -> None:
        g = self.g

        def rule_of(name: str) -> str | None:
            if name in g.producer:
                return g.producer[name]
            if name in g.aliases:
                return name
            return None

        color: dict[str, int] = {}
        for start in deps:
            if color.get(start):
                continue
            path: list[str] = [start]
            color[start] = 1
            stack = [iter(deps.get(start, ()))]
            while stack:
                for dep, span in stack[-1]:
                    nxt = rule_of(dep)
                    if nxt is None:
                        continue
                    if color.get(nxt) == 1:
                        loop = path[path.index(nxt):] + [nxt]
                        self.err("cycle: " + " -> ".join(f"`{n}`" for n in loop), span,
                                 help="a rule cannot depend, directly or not, on its own "
                                      "output; break the loop")
                        continue
                    if not color.get(nxt):
                        color[nxt] = 1
                        path.append(nxt)
                        stack.append(iter(deps.get(nxt, ())))
                        break
                else:
                    stack.pop()
                    color[path.pop()] = 2
