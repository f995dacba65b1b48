"""A Datafile loaded for use: its graph, catalog, state, parameters and recipes, and
the values it names. Loading goes through the parse cache (parsecache.py), so a no-op
build never parses. Building sits above this (executor.py); the Python API's
`datamake.Project` (api.py) adds `build` and `status` to it.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import graph as graph_mod, parsecache
from .catalog import Catalog
from .diagnostics import suggest
from .errors import CatalogError, Diagnostic, UsageError
from .state import STATE_DIR, State
from .steps import split_step

if TYPE_CHECKING:
    from .model import Datafile

def find_datafile(start: str | os.PathLike | None = None) -> Path:
    """The nearest `Datafile` in `start` (default: the current folder) or above it."""
    here = Path(start or os.getcwd()).resolve()
    for d in (here, *here.parents):
        if (d / "Datafile").is_file():
            return d / "Datafile"
    raise UsageError("no-datafile-above", folder=here)


class Project:
    """A Datafile, ready to plan, build and load from."""

    def __init__(self, path: str | os.PathLike = "Datafile", params: dict[str, Any] | None = None,
                 env: dict[str, str] | None = None):
        given = Path(path)
        self.path = given.resolve()
        self.root = self.path.parent
        try:
            rel = os.path.relpath(self.path)
        except ValueError:
            rel = str(self.path)
        self.display = str(given) if given.is_absolute() or rel.startswith("..") else rel
        self.state_dir = self.root / STATE_DIR
        self._model: "Datafile | None" = None
        self._recipes: dict | None = None
        self._python: tuple | None = None
        self._scopes: dict[str, str] | None = None
        self._blocks: dict[str, tuple] = {}  # scope -> its python: blocks
        self._folders: dict[str, Path] = {}  # scope -> its folder
        self._sources: list = []
        self._sources_digest = ""
        self.code_texts: dict[str, str] = {}
        self.warnings: list[Diagnostic] = []
        self.credentials: list[str] = []
        if (self.root / "conf").is_dir():  # environments live in conf/
            from .envs import CredentialsError, load_credentials

            try:  # before anything reads storage; names only, never values, are kept
                self.credentials = load_credentials(self.root)
            except CredentialsError as e:
                raise UsageError("credentials-invalid", reason=str(e)) from None
        self.graph: graph_mod.Graph = parsecache.load(self)
        if params:
            from .overrides import apply

            self.params = apply(self.graph.params, params)
        else:
            self.params = dict(self.graph.params)
        self.catalog = Catalog(self.root, self.graph.datasets, env, self.graph.locations)
        self._state: State | None = None
        self._namespaces: dict[str, Any] = {}

    @property
    def recipes(self):
        """Rule name -> RecipeInfo (compiled code and text), loaded on first use."""
        if self._recipes is None:
            parsecache.load_recipes(self)
        return self._recipes

    @property
    def sources(self) -> list[str]:
        """Every file the pipeline was read from: Datafiles, included ones, params files."""
        return [p for p, _, _ in self._sources]

    def python_blocks(self, scope: str = "") -> tuple:
        """The `python:` blocks of one file (`scope`) as (text, line, filename)."""
        blocks = self._blocks.get(scope)
        if blocks is None:
            if self._python is None:
                parsecache.load_recipes(self)
            blocks = self._blocks[scope] = tuple(
                (t, line, f) for t, line, s, f in self._python if s == scope)  # type: ignore[union-attr]
        return blocks

    def scope_folder(self, scope: str) -> Path:
        """The folder of the file whose recipes see `scope`'s python: blocks."""
        folder = self._folders.get(scope)
        if folder is None:
            if self._scopes is None:
                parsecache.load_recipes(self)
            folder = self._folders[scope] = Path(self._scopes.get(scope, str(self.root)))  # type: ignore[union-attr]
        return folder

    @property
    def model(self) -> "Datafile":
        """The whole parsed Datafile, parsed again if it is not in memory."""
        if self._model is None:
            from . import loader

            self._model = loader.load(self.path, self.display)
        return self._model

    @property
    def state(self) -> State:
        if self._state is None:
            self._state = State(self.root)
        return self._state

    def namespace(self, scope: str = ""):
        """The globals of the recipes of one file: its python: blocks, run once."""
        ns = self._namespaces.get(scope)
        if ns is None:
            from .recipe import Namespace, module_name

            ns = self._namespaces[scope] = Namespace(self.python_blocks(scope),
                                                     self.scope_folder(scope),
                                                     module_name(scope, self.root))
        return ns

    def close(self) -> None:
        if self._state is not None:
            self._state.close()

    # -- the Python API -------------------------------------------------------------------

    def load(self, name: str) -> Any:
        """The value of a parameter, dataset or rule output, as a recipe would see it.

        Raises UsageError for an unknown name and CatalogError for one not built yet.
        """
        kind = self.graph.kind_of(name)
        if kind is None:
            raise UsageError("load-unknown", name=name,
                             best=suggest(name, list(self.graph.datasets) + list(self.params)))
        if kind == "param":
            return self.params[name]
        if kind == "alias":
            raise UsageError("load-alias", name=name)
        if self.catalog.is_partitioned(name):
            from .catalog import PartitionMap

            # As a recipe sees it whole: a lazy mapping, one partition loaded at a time.
            return PartitionMap(self.catalog, name, self.catalog.partitions(name))
        try:
            return self.catalog.load(name)
        except CatalogError:
            if kind == "output" and not self.catalog.exists(name):
                raise CatalogError.of("not-built", name=name) from None
            raise
        except (ModuleNotFoundError, AttributeError) as e:
            # A pickle of a class defined in a `python:` block needs that block run.
            if "__datafile_" not in str(e):
                raise
            if self._scopes is None:
                parsecache.load_recipes(self)
            for scope in list(self._scopes or {""}):
                self.namespace(scope).globals()
            return self.catalog.load(name)

    def resolve_targets(self, targets: list[str] | str | None) -> list[str]:
        """Targets checked against the graph. Raises UsageError for unknown ones."""
        if isinstance(targets, str):
            targets = [targets]
        if not targets:
            if self.graph.default is None:
                raise UsageError("no-rules")
            return [self.graph.default]
        g = self.graph
        for t in targets:
            name, key = split_step(t)
            kind = g.kind_of(name)
            if kind is None or key == "":
                raise UsageError("unknown-target", target=t,
                                 best=suggest(name, list(g.producer) + list(g.aliases)
                                              + list(g.datasets)))
            if kind == "param":
                raise UsageError("target-is-param", name=name)
            if key is not None:
                self._check_partition_target(t, name, kind)
        return list(targets)

    def _check_partition_target(self, target: str, name: str, kind: str) -> None:
        """`name[key]` names one partition of a pattern rule's output. Raises UsageError."""
        g = self.graph
        if kind == "dataset":
            raise UsageError("key-target-source", target=target, name=name)
        if kind == "alias":
            raise UsageError("key-target-alias", target=target, name=name)
        if g.rules[g.producer[name]].key is None:
            ds = g.datasets.get(name)
            yields = ds is not None and ds.placeholders
            raise UsageError("key-target-not-pattern", target=target, name=name,
                             rule=g.producer[name] if yields else None)
