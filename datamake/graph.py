"""Names resolved into a graph of rules: unknown names, cycles, two producers of one
output, undeclared uses, and slicing to what a target needs.

The `Graph` is made of plain tuples and dicts so that it unpickles fast: the no-op path
loads it from `.datamake/` instead of re-parsing the Datafile.

Over 500 lines: every static check of a Datafile, made in one pass over its names.
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, NamedTuple

from .errors import DatafileError, Diagnostic, Span
from . import locations
from .steps import split_step

if TYPE_CHECKING:
    from . import model

DATA_DIR = ".datamake/data"
_FORMATS = frozenset({"csv", "parquet", "excel", "json", "yaml", "pickle", "text", "html",
                      "image", "bytes", "path", "feather", "jsonl"})  # built in: no plugin lookup needed
_BUILTINS = frozenset(__builtins__ if isinstance(__builtins__, dict) else dir(__builtins__))


class DatasetInfo(NamedTuple):
    """Where a dataset lives and how it is stored, as the catalog needs it."""

    name: str
    location: str  # as written (relative to the Datafile, ${VAR} not yet expanded)
    format: str | None
    options: tuple[tuple[str, Any], ...]
    versioned: bool
    declared: bool  # False for the implicit home of an undeclared output
    placeholders: tuple[str, ...] = ()  # {key} names: a partitioned dataset when any


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
    kind: str  # "python", "shell" or "notebook"
    generator: bool
    index: int  # position in the Datafile's rules, to find the recipe
    # For each parameter: the keys the recipe reads of it (`model["depth"]`), None when
    # it reads it whole; the step depends on those keys only.
    param_keys: tuple[tuple | None, ...] = ()


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
        self.cache_url: str | None = None  # the Datafile's `cache "URL"`
        self.locations: dict[str, Any] = {}  # resolved catalog Locations, when env-free
        # Environment variables the parse read (in `params "${VAR}/..."`), with their
        # values then: when one changes, the Datafile is parsed again.
        self.env_read: dict[str, str | None] = {}
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
        stack = [split_step(t)[0] for t in targets]
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
                node = self.rules[rule]
                # A pinned version (`name@v`) is read as saved: its rule need not run.
                stack.extend(n for n, v in zip(node.inputs, node.versions) if v is None)
        if len(want) == len(self.rules):
            out = list(self.rules.values())
        else:
            out = [r for n, r in self.rules.items() if n in want]
        self._needed[tuple(targets)] = [r.name for r in out]
        return out

    def partial(self, targets: list[str]) -> dict[str, set[str]]:
        """The pattern rules of which `targets` need only some partitions: rule -> keys.

        `name[key]` asks its pattern rule for one key; a pattern rule asked for some keys
        asks the pattern rules that write its keyed inputs for the same keys (partitions
        map one to one). Whatever is read whole, or reached from a whole target, is
        needed whole and is not in the answer.
        """
        keys: dict[str, set[str]] = {}
        for t in targets:
            name, key = split_step(t)
            if key is not None:
                keys.setdefault(self.producer[name], set()).add(key)
        if not keys:
            return {}
        whole = {r.name for r in self.needed([t for t in targets if split_step(t)[1] is None])}
        for node in reversed(self.needed(targets)):  # every reader before what it reads
            ks = keys.get(node.name)
            if ks is None or node.name in whole:
                continue
            for name, k, v in zip(node.inputs, node.keys, node.versions):
                rule = self.producer.get(name) if v is None else None
                if rule is None or rule in whole:
                    continue
                if k and self.rules[rule].key:
                    keys.setdefault(rule, set()).update(ks)
                else:
                    whole.update(r.name for r in self.needed([name]))
        return {r: ks for r, ks in keys.items() if r not in whole}


def build(df: "model.Datafile") -> tuple[Graph, list[Diagnostic]]:
    """Resolve a Datafile into a Graph and its warnings.

    Raises DatafileError with every error found (unknown names, cycles, duplicates,
    undeclared uses).
    """
    return _Checker(df).run()


def check_format_options(df: "model.Datafile") -> list[Diagnostic]:
    """Format options no reader or writer of the format takes (`csv(sepp=";")`), as
    errors at the dataset's format. Imports the formats' libraries (pandas): `--check`
    runs it; a build finds the same when the dataset is first read or written."""
    from . import formats
    from .diagnostics import suggest

    found = []
    for d in df.datasets:
        if not d.options:
            continue
        name = d.format or formats.for_extension(formats.split_extension(d.location)[0])
        try:
            allowed = formats.options_of(name)
        except Exception:  # a format's library missing or broken: told when it is used
            continue
        if allowed is None:
            continue
        for key, _ in d.options:
            if key not in allowed:
                found.append(Diagnostic.of(
                    "format-option-unknown", d.format_span or d.location_span, format=name,
                    name=d.name, key=key, best=suggest(key, allowed),
                    options=", ".join(sorted(allowed)) if allowed else None))
    return found


def _header(r: "model.Rule", extra: str) -> str:
    """Rule `r`'s `OUTPUTS: INPUTS` line with one more input, as its own file writes it
    (an included file's names without their namespace)."""
    def own(name: str) -> str:
        return name[len(r.ns):] if r.ns and name.startswith(r.ns) else name

    return (f"{' '.join(own(o.name) for o in r.outputs)}: "
            f"{' '.join([own(i.name) for i in r.inputs] + [extra])}")


# What a recipe's globals hold besides the `python:` blocks' names: its module's own.
_MODULE_NAMES = frozenset({"__name__", "__file__", "__doc__", "__builtins__", "__loader__",
                           "__spec__", "__package__"})


class _Checker:
    def __init__(self, df: "model.Datafile"):
        from .diagnostics import suggest

        self.suggest = suggest
        self.df = df
        self.errors: list[Diagnostic] = []
        self.warnings: list[Diagnostic] = []
        self.g = Graph()
        self.defined: dict[str, tuple[str, Span]] = {}  # name -> (kind, span)

    def err(self, code: str, span: Span | None, **fields) -> None:
        self.errors.append(Diagnostic.of(code, span, **fields))

    def warn(self, code: str, span: Span | None, **fields) -> None:
        self.warnings.append(Diagnostic.of(code, span, **fields))

    def define(self, name: str, kind: str, span: Span) -> bool:
        prev = self.defined.get(name)
        if prev is not None:
            pkind, pspan = prev
            if kind == "output" and pkind == "output":
                self.err("two-rules-write", span, name=name, other=pspan)
            elif kind == "dataset" and pkind == "output" or kind == "output" and pkind == "dataset":
                return True  # a rule writing a declared dataset: the normal case
            else:
                self.err("defined-twice", span, name=name, kind=pkind, other=pspan)
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
                    self.define(o.name, "alias", o.span)
            for o in r.outputs if r.recipe is not None else ():
                prev = self.defined.get(o.name)
                if prev and prev[0] == "param":
                    self.err("rule-writes-param", o.span, name=o.name)
                    continue
                if prev and prev[0] == "alias":
                    self.err("rule-writes-alias", o.span, name=o.name, other=prev[1])
                    continue
                if prev and prev[0] == "output":
                    self.define(o.name, "output", o.span)
                    continue
                self.defined[o.name] = ("output", o.span)
                g.producer[o.name] = r.name
            if r.recipe is None and len(r.outputs) > 1:
                self.err("alias-names", r.outputs[1].span)
            rule_by_name.setdefault(r.name, (i, r))
        names = set(self.defined)
        from .pysource import block_defines  # parsing only: a no-op build never needs it
        py_defs = {scope: block_defines([b.text for b in df.python if b.scope == scope])
                   for scope in
                   {""} | {r.recipe.scope for r in df.rules if r.recipe is not None}}

        # Datasets: declared ones, then the implicit homes of undeclared outputs.
        # What Python recipes write: their value is stored in the dataset's format.
        in_python = {o.name for r in df.rules if r.recipe is not None
                     and r.recipe.kind == "python" for o in r.outputs}
        at: dict[str, "model.Dataset"] = {}  # where each location is -> its dataset
        for d in df.datasets:
            if d.format and d.format not in _FORMATS:
                self.check_format(d)
            elif not d.format and d.name in in_python:
                self.check_extension(d)
            problem = locations.problem_of(d.location)
            if problem is not None:
                self.err(problem[0], d.location_span, **problem[1])
            elif d.name in declared and declared[d.name] is d:
                self.check_location_unique(d, at)
            if d.name in declared and declared[d.name] is d:
                g.datasets[d.name] = DatasetInfo(d.name, d.location, d.format, d.options,
                                                 d.versioned, True, locations.placeholders(d.location))
                if d.versioned and g.datasets[d.name].placeholders:
                    self.err("versioned-partitioned", d.span, name=d.name)
        for i, r in enumerate(df.rules):
            if r.recipe is None:
                continue
            for o in r.outputs:
                if o.name in g.datasets or g.producer.get(o.name) != r.name:
                    continue
                # An undeclared output lives in .datamake/data: one file, or a folder of
                # partitions for a pattern rule or a recipe that yields.
                key = o.key or ("key" if r.recipe.generator else None)
                stem = f"{DATA_DIR}/{o.name}" + (f"/{{{key}}}" if key else "")
                if r.recipe.kind == "shell":
                    loc, fmt = stem, "path"
                elif r.recipe.kind == "notebook":
                    loc, fmt = stem + ".html", "html"
                else:
                    loc, fmt = stem + ".pkl", "pickle"
                g.datasets[o.name] = DatasetInfo(o.name, loc, fmt, (), False, False,
                                                 locations.placeholders(loc))

        nodes: dict[str, RuleNode] = {}
        deps: dict[str, list[tuple[str, Span]]] = {}
        for i, r in enumerate(df.rules):
            ins, locs, keys, vers, params, plocs = [], [], [], [], [], []
            for inp in r.inputs:
                if inp.name not in names:
                    self.err("unknown-name", inp.span, name=inp.name,
                             best=self.suggest(inp.name, names))
                    continue
                kind = self.defined[inp.name][0]
                if kind == "param":
                    if inp.key or inp.version:
                        self.err("param-has-no-partitions" if inp.key else
                                 "param-has-no-versions", inp.span, name=inp.name)
                    params.append(inp.name)
                    plocs.append(inp.local)
                else:
                    ins.append(inp.name)
                    locs.append(inp.local)
                    keys.append(inp.key)
                    vers.append(inp.version)
            deps[r.name] = [(inp.name, inp.span) for inp in r.inputs
                            if inp.name in names and inp.version is None]
            if r.recipe is None:
                if r.name not in g.aliases:
                    g.aliases[r.name] = tuple(ins)
                g.spans[r.name] = (r.span.file, r.span.line, r.span.col)
                if r.doc:
                    g.docs[r.name] = r.doc
                continue
            if any(g.producer.get(o.name) != r.name for o in r.outputs):
                continue  # a duplicate already reported
            if r.recipe.kind == "notebook":
                self.check_notebook(r)
            else:
                self.check_uses(r, names, py_defs[r.recipe.scope])
            self.check_partitions(r)
            self.check_value(r)
            key = r.outputs[0].key
            read = dict(r.recipe.keys_read)
            nodes[r.name] = RuleNode(r.name, tuple(o.name for o in r.outputs), tuple(ins),
                                     tuple(locs), tuple(keys), tuple(vers), tuple(params),
                                     tuple(plocs), key, r.recipe.kind, r.recipe.generator, i,
                                     tuple(read.get(loc) for loc in plocs))
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
        g.cache_url = df.cache[0] if df.cache else None
        g.env_read = {n: os.environ.get(n) for n in df.env}

        used: set[str] = set()
        for r in df.rules:
            used.update(i.name for i in r.inputs)
            used.update(o.name for o in r.outputs)
        for d in df.datasets:
            if d.name not in used:
                self.warn("unused-dataset", d.span, name=d.name)
        self.warnings.sort(key=lambda d: (d.span.line, d.span.col) if d.span else (0, 0))
        return g, self.warnings

    def check_uses(self, r: "model.Rule", names: set[str], py_defs: set[str] | None) -> None:
        recipe = r.recipe
        assert recipe is not None
        if r.ns:
            # An included file's recipe sees its own file's names, unprefixed.
            names = {n[len(r.ns):] for n in names if n.startswith(r.ns)}
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
                    self.err("not-an-input", u.span, rule=r.name, name=u.chain,
                             header=_header(r, u.chain))
                else:
                    self.err("unknown-shell-name", u.span, name=u.chain,
                             best=self.suggest(u.chain, allowed))
        else:
            extra = {"done"} if recipe.generator else set()
            for u in recipe.uses:
                root = u.chain.split(".")[0]
                used_roots.add(root)
                if root in bound or root in extra or root in keys or \
                        (py_defs is not None and root in py_defs):
                    continue
                span = Span(u.span.file, u.span.line, u.span.col, u.span.line,
                            u.span.col + len(root))
                if root in outs:
                    if self.is_path(root):
                        continue
                    self.err("reads-own-output", span, rule=r.name, name=root)
                elif root in names and self.defined[r.ns + root][0] != "alias":
                    if root in _BUILTINS:
                        self.warn("builtin-shadows", span, name=root, rule=r.name)
                        continue
                    self.err("not-an-input", span, rule=r.name, name=root,
                             header=_header(r, root))
                elif root in _BUILTINS or root in _MODULE_NAMES:
                    continue  # `all` is Python's, even beside an alias named `all`
                elif root in names:
                    self.err("uses-alias", span, rule=r.name, name=root)
                elif py_defs is not None:
                    # Neither an input, nor the `python:` blocks' own, nor a builtin: the
                    # recipe would fail with a NameError when it runs.
                    self.err("defined-nowhere", span, rule=r.name, name=root,
                             best=self.suggest(root, bound | keys | extra | py_defs))
        locals_seen: dict[str, "model.Input"] = {}
        for inp in r.inputs:
            prev = locals_seen.get(inp.local)
            if prev is not None and prev.name != inp.name:
                self.err("same-local-name", inp.span, rule=r.name, local=inp.local,
                         name=inp.name)
            locals_seen[inp.local] = inp
        for inp in r.inputs:
            if inp.local not in used_roots and inp.name in names:
                self.warn("unused-input", inp.span, rule=r.name, local=inp.local)

    def check_notebook(self, r: "model.Rule") -> None:
        """A notebook recipe writes one page: one whole output, stored as html. Its
        inputs and parameters are all variables of the notebook (none unused is told:
        the notebook is not read here)."""
        seen: dict[str, "model.Input"] = {}
        for inp in r.inputs:
            prev = seen.get(inp.local)
            if prev is not None and prev.name != inp.name:
                self.err("notebook-same-local", inp.span, rule=r.name, local=inp.local,
                         name=inp.name)
            seen[inp.local] = inp
        if len(r.outputs) > 1:
            self.err("notebook-one-output", r.outputs[1].span, rule=r.name)
        first = r.outputs[0]
        if first.key:
            self.err("notebook-keyed-output", first.span, name=first.name, key=first.key)
        ds = self.g.datasets.get(first.name)
        if ds is not None and ds.declared:
            from . import formats

            fmt = ds.format or formats.for_extension(
                os.path.splitext(ds.location.rstrip("/").rsplit("/", 1)[-1])[1])
            if fmt != "html":
                self.err("notebook-not-html", first.span, name=first.name,
                         format=fmt or "an unknown format")

    def check_format(self, d: "model.Dataset") -> None:
        """A format that neither datamake nor an installed plugin knows."""
        from . import formats

        try:
            known = formats.known()
        except formats.PluginError as e:  # a broken plugin: say so where it is used
            self.err("format-plugin-broken", d.format_span, plugin=e.plugin, reason=e.reason)
            return
        if d.format not in known:
            self.err("unknown-format", d.format_span, format=d.format,
                     best=self.suggest(d.format, known), known=", ".join(known))

    def check_location_unique(self, d: "model.Dataset", at: dict) -> None:
        """Two datasets at one location: one would overwrite the other (a source too).
        Asked only of a location that has no problem of its own."""
        if "${" in d.location:
            return  # known only once the environment is read
        where = locations.resolve(d.location, "/r")[0].rstrip("/")
        if not locations.is_url(where):
            where = os.path.normpath(where)
        where = locations.PLACEHOLDER.sub("{}", where)  # `{id}` and `{key}`: the same files
        prev = at.setdefault(where, d)
        if prev is not d:
            self.err("same-location", d.location_span, name=d.name, other=prev.name,
                     location=d.location, where=str(prev.span))

    def check_extension(self, d: "model.Dataset") -> None:
        """A location whose extension names no format, written by a Python recipe: it
        would be taken for a file the recipe writes itself (`as path`), and the value
        it returns would be lost."""
        from . import formats

        ext, _ = formats.split_extension(d.location)
        if not ext or "{" in ext or "$" in ext:
            return  # a folder, or a name made by placeholders: the recipe's own files
        try:
            if formats.for_extension(ext) != formats.PATH:
                return
            known = formats.extensions()
        except formats.PluginError as e:  # a broken plugin: say so where it is used
            self.err("format-plugin-broken", d.location_span, plugin=e.plugin, reason=e.reason)
            return
        self.err("extension-unknown", d.location_span, ext=ext, name=d.name,
                 known=", ".join(known), compressions=", ".join(formats.COMPRESSIONS))

    def check_partitions(self, r: "model.Rule") -> None:
        """Pattern rules map partitions one to one; a yielding recipe writes one
        partitioned output; nothing else writes a partitioned dataset."""
        g = self.g
        recipe = r.recipe
        assert recipe is not None
        key = r.outputs[0].key
        if len({o.key for o in r.outputs}) > 1:
            self.err("pattern-keys-differ", r.outputs[0].span)
            return
        if key and recipe.generator:
            self.err("pattern-yields", recipe.span, rule=r.name)
            return
        if recipe.generator and len(r.outputs) != 1:
            self.err("yield-outputs", r.outputs[1].span)
            return
        for o in r.outputs:
            ds = g.datasets.get(o.name)
            if ds is None:
                continue
            parted = bool(ds.placeholders)
            if (key or recipe.generator) and not parted:
                self.err("output-not-partitioned", o.span, name=o.name, key=key or "key")
            elif parted and not (key or recipe.generator):
                self.err("output-written-whole", o.span, name=o.name,
                         placeholder=ds.placeholders[0])
        for i in r.inputs:
            if i.version is None:
                continue
            ds = g.datasets.get(i.name)
            if ds is None or not ds.versioned:
                self.err("version-not-versioned", i.span, name=i.name, version=i.version)
            elif ds.placeholders:
                self.err("version-partitioned", i.span, name=i.name)
        keyed = [i for i in r.inputs if i.key]
        for i in keyed:
            if not key:
                self.err("key-outside-pattern", i.span, name=i.name, key=i.key, rule=r.name)
                continue
            if i.key != key:
                self.err("key-differs", i.span, key=i.key, rule_key=key, name=i.name)
                continue
            ds = g.datasets.get(i.name)
            if ds is not None and not ds.placeholders:
                self.err("key-not-partitioned", i.span, name=i.name, key=i.key, rule_key=key)
        counts = {len(g.datasets[n].placeholders) for n in
                  [o.name for o in r.outputs] + [i.name for i in keyed] if n in g.datasets}
        if key and len(counts) > 1:
            self.err("placeholder-counts", r.outputs[0].span, rule=r.name)
        if key and not keyed:
            self.err("pattern-without-input", r.outputs[0].span, rule=r.name, key=key)

    def check_value(self, r: "model.Rule") -> None:
        """A Python recipe gives its outputs' value with its last expression: one that
        ends with an assignment gives None (unless it writes `as path` outputs itself)."""
        recipe = r.recipe
        assert recipe is not None
        if recipe.kind != "python" or recipe.no_value is None:
            return
        if all(self.is_path(o.name) for o in r.outputs):
            return
        self.err("no-value", recipe.no_value, rule=r.name)

    def is_path(self, name: str) -> bool:
        """Whether dataset `name` is stored as a path the recipe writes itself."""
        from . import formats

        ds = self.g.datasets.get(name)
        if ds is None:
            return False
        if ds.format:
            return ds.format == formats.PATH
        return formats.for_extension(formats.split_extension(ds.location)[0]) == formats.PATH

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
                        self.err("cycle", span, loop=" -> ".join(f"`{n}`" for n in loop))
                        continue
                    if not color.get(nxt):
                        color[nxt] = 1
                        path.append(nxt)
                        stack.append(iter(deps.get(nxt, ())))
                        break
                else:
                    stack.pop()
                    color[path.pop()] = 2
