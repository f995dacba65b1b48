"""Fingerprints of the code a recipe runs: its own body, the `python:` definitions it
names and the project-local module code those reach, each blind to comments,
docstrings and formatting.

Granularity is one top-level definition: a recipe's fingerprint covers the closure of
definitions it can reach by name, so editing one helper reruns only the recipes that
reach it. Names reached dynamically (getattr, strings) are invisible by design.
"""
from __future__ import annotations

import ast
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from . import model
from .hashing import hash_parts, hash_text
from .pysource import block_source, block_statements, bound_names, chains as _chains, fast_dump, strip_docstrings as _strip_docstrings


def _dump(node: ast.AST) -> str:
    return fast_dump(node)


@dataclass
class _Binding:
    own: str  # hash of the defining statement(s)
    text: str  # their source, for showing a diff
    refs: set[str]  # dotted names read
    imports: list[tuple[str, str | None]] = field(default_factory=list)  # (module, attr)


@dataclass
class _Scope:
    label: str  # "python:" for the Datafile's blocks, else a module name
    module: str | None
    package: str | None
    bindings: dict[str, _Binding]
    side: str  # hash of statements that bind nothing (run for their effect)
    side_refs: set[str]


class CodeIndex:
    """Resolves what recipes reach; remembers every project file it read."""

    def __init__(self, root: Path, blocks: tuple[model.PythonBlock, ...]):
        self.root = root
        self.files: dict[str, tuple[int, int]] = {}  # path -> (mtime_ns, size)
        self.texts: dict[str, str] = {}  # own hash -> source text
        self._modules: dict[str, _Scope | None] = {}
        stmts: list[ast.stmt] = []
        sources: list[str] = []
        for b in blocks:
            try:
                body = block_statements(b.text)
            except (SyntaxError, RecursionError, MemoryError):
                continue
            stmts.extend(body)
            sources.extend([block_source(b.text)] * len(body))
        self.datafile = self._scope("python:", None, None, stmts, sources)

    # -- scopes -----------------------------------------------------------------------

    def _scope(self, label: str, module: str | None, package: str | None,
               stmts: list[ast.stmt], sources: list[str]) -> _Scope:
        bindings: dict[str, _Binding] = {}
        side_dumps: list[str] = []
        side_refs: set[str] = set()
        for st, src in zip(stmts, sources):
            _strip_docstrings(st)
            dump = _dump(st)
            text = ast.get_source_segment(src, st) or ""
            names: list[str] = []
            imports: dict[str, tuple[str, str | None]] = {}
            if isinstance(st, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names = [st.name]
                refs = _chains(st, bound_names(st) - {st.name} if not isinstance(
                    st, ast.ClassDef) else set())
            elif isinstance(st, ast.Import):
                for a in st.names:
                    if a.asname:
                        imports[a.asname] = (a.name, None)
                    else:
                        top = a.name.split(".")[0]
                        imports[top] = (top, None)
                names = list(imports)
                refs = set()
            elif isinstance(st, ast.ImportFrom):
                base = self._absolute(st.module, st.level, package)
                for a in st.names:
                    if a.name == "*":
                        continue
                    imports[a.asname or a.name] = (base, a.name)
                names = list(imports)
                refs = set()
            else:
                for n in ast.walk(st):
                    if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store):
                        names.append(n.id)
                refs = _chains(st, set())
            if not names:
                side_dumps.append(dump)
                side_refs |= refs
                continue
            own = hash_text(dump)
            self.texts.setdefault(own, text)
            for name in names:
                b = bindings.get(name)
                if b is None:
                    b = bindings[name] = _Binding(own, text, set(refs))
                else:  # bound twice (e.g. try/except imports): both count
                    b.own = hash_parts(b.own, own)
                    b.text = b.text + "\n" + text
                    self.texts.setdefault(b.own, b.text)
                    b.refs |= refs
                if name in imports:
                    b.imports.append(imports[name])
        return _Scope(label, module, package, bindings, hash_parts(*side_dumps), side_refs)

    def _absolute(self, module: str | None, level: int, package: str | None) -> str:
        if not level:
            return module or ""
        parts = (package or "").split(".") if package else []
        if level > 1:
            parts = parts[: len(parts) - (level - 1)]
        return ".".join([p for p in parts if p] + ([module] if module else []))

    def _module_file(self, module: str) -> tuple[Path, bool] | None:
        rel = Path(*module.split("."))
        for cand, is_pkg in ((self.root / rel.with_suffix(".py"), False),
                             (self.root / rel / "__init__.py", True)):
            try:
                st = os.stat(cand)
            except OSError:
                continue
            self.files[str(cand)] = (st.st_mtime_ns, st.st_size)
            return cand, is_pkg
        return None

    def module(self, name: str) -> _Scope | None:
        """The scope of project-local module `name`, or None when it is not local."""
        if name in self._modules:
            return self._modules[name]
        self._modules[name] = None
        if not name or not all(p.isidentifier() for p in name.split(".")):
            return None
        found = self._module_file(name)
        if found is None:
            return None
        path, is_pkg = found
        try:
            src = path.read_text(encoding="utf-8")
            tree = ast.parse(src, str(path))
        except (OSError, SyntaxError, UnicodeDecodeError, ValueError):
            # Unreadable code still fingerprints: by its raw bytes.
            try:
                raw = path.read_bytes()
            except OSError:
                raw = b""
            scope = _Scope(name, name, name if is_pkg else name.rpartition(".")[0], {},
                           hash_text(raw.decode("utf-8", "replace")), set())
            self._modules[name] = scope
            return scope
        package = name if is_pkg else name.rpartition(".")[0]
        _strip_docstrings(tree)
        scope = self._scope(name, name, package, tree.body, [src] * len(tree.body))
        self._modules[name] = scope
        return scope

    # -- closures -----------------------------------------------------------------------

    def recipe_closure(self, recipe: model.Recipe, skip: set[str]) -> dict[str, str]:
        """{label: own hash} of every definition the recipe can reach by name."""
        closure: dict[str, str] = {}
        if recipe.kind != "python":
            return closure
        local: _Scope | None = None
        if recipe.imports:
            # Imports written inside the recipe resolve like the python: block's.
            bindings = {}
            for name, mod, attr in recipe.imports:
                mod = mod.lstrip(".")
                text = f"from {mod} import {attr} as {name}" if attr else f"import {mod} as {name}"
                own = hash_text(text)
                self.texts.setdefault(own, text)
                bindings[name] = _Binding(own, text, set(), [(mod, attr)])
            local = _Scope("recipe:", None, None, bindings, hash_parts(), set())
        chains = {u.chain for u in recipe.uses} | set(recipe.import_chains)
        for chain in sorted(chains):
            root = chain.split(".", 1)[0]
            if root in skip:
                continue
            if local is not None and root in local.bindings:
                self._reach(local, chain, closure)
            else:
                self._reach(self.datafile, chain, closure)
        return closure

    def _reach(self, scope: _Scope, chain: str, closure: dict[str, str]) -> None:
        parts = chain.split(".")
        name = parts[0]
        b = scope.bindings.get(name)
        if b is None:
            return  # a builtin or an undefined name
        label = f"{scope.label}.{name}" if scope.module else f"{scope.label}{name}"
        if label in closure:
            return
        closure[label] = b.own
        if scope.module and scope.side != hash_parts():
            closure.setdefault(f"{scope.label}:<module>", scope.side)
        for mod, attr in b.imports:
            rest = parts[1:]
            if attr is None:
                # `import pkg.mod [as x]`: follow the attribute chain through modules.
                cur = mod
                while rest and self.module(f"{cur}.{rest[0]}") is not None:
                    cur, rest = f"{cur}.{rest[0]}", rest[1:]
                sc = self.module(cur)
                if sc is None:
                    continue  # not project code: the import statement itself counts
                if rest:
                    self._reach(sc, ".".join(rest), closure)
                else:
                    self._reach_module(cur, closure)
                continue
            target = self.module(mod)
            sub = f"{mod}.{attr}"
            if target is not None and attr in target.bindings:
                self._reach(target, ".".join([attr] + rest), closure)
            elif self.module(sub) is not None:
                if rest:
                    self._reach(self.module(sub), ".".join(rest), closure)  # type: ignore[arg-type]
                else:
                    self._reach_module(sub, closure)
        for ref in sorted(b.refs):
            self._reach(scope, ref, closure)
        for ref in sorted(scope.side_refs):
            self._reach(scope, ref, closure)

    def _reach_module(self, module: str, closure: dict[str, str]) -> None:
        sc = self.module(module)
        if sc is None:
            return
        mark = f"{module}:<module>"
        if mark in closure:
            return
        closure[mark] = sc.side
        for name in sorted(sc.bindings):
            self._reach(sc, name, closure)


class Fingerprints(NamedTuple):
    fps: dict[str, str]  # rule -> fingerprint of its code
    deps: dict[str, dict[str, str]]  # rule -> {label: own hash} behind it
    files: dict[str, tuple[int, int]]  # project files read
    texts: dict[str, str]  # own hash -> source text


def code_fingerprints(graph, df: model.Datafile, root: Path) -> Fingerprints:
    """Each rule's code fingerprint and the closure of definitions behind it. Each file's
    recipes resolve names against their own `python:` blocks and modules beside them."""
    folders = dict(df.scopes) or {"": str(root)}
    indexes: dict[str, CodeIndex] = {}
    fps: dict[str, str] = {}
    deps: dict[str, dict[str, str]] = {}
    for name, node in graph.rules.items():
        rule = df.rules[node.index]
        recipe = rule.recipe
        assert recipe is not None
        index = indexes.get(recipe.scope)
        if index is None:
            index = indexes[recipe.scope] = CodeIndex(
                Path(folders.get(recipe.scope, root)),
                tuple(b for b in df.python if b.scope == recipe.scope))
        closure = index.recipe_closure(recipe, set(recipe.args))
        outs = []
        for o in node.outputs:
            ds = graph.datasets.get(o)
            outs.append(f"{o}={ds.format if ds else ''}{ds.options if ds else ''}")
        fps[name] = hash_parts(recipe.kind, recipe.body_fp, ",".join(outs),
                               ",".join(node.locals), ",".join(node.param_locals),
                               *(f"{k}={v}" for k, v in sorted(closure.items())))
        deps[name] = closure
    files: dict[str, tuple[int, int]] = {}
    texts: dict[str, str] = {}
    for index in indexes.values():
        files.update(index.files)
        texts.update(index.texts)
    return Fingerprints(fps, deps, files, texts)
