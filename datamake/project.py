"""A Datafile loaded for use: model, graph, catalog, state and parameters, with the
parsed result cached in `.datamake/` so that a no-op build never re-parses.

This is also the Python API: `datamake.Project("path/to/Datafile")` gives the same
catalog, parameters and values the build uses.
"""
from __future__ import annotations

import os
import pickle
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import graph as graph_mod
from .catalog import Catalog, local_stamp, stable
from .diagnostics import did_you_mean
from .errors import CatalogError, Diagnostic, UsageError
from .hashing import hash_file
from .state import STATE_DIR, State
from .steps import split_step

if TYPE_CHECKING:
    from .model import Datafile

CACHE_FORMAT = 5  # 4: source digests are BLAKE3; 5: rules know the keys they read
GRAPH_CACHE = "graph.pickle"
MODEL_CACHE = "model.pickle"
RECIPES_CACHE = "recipes.pickle"


def find_datafile(start: str | os.PathLike | None = None) -> Path:
    """The nearest `Datafile` in `start` (default: the current folder) or above it."""
    here = Path(start or os.getcwd()).resolve()
    for d in (here, *here.parents):
        if (d / "Datafile").is_file():
            return d / "Datafile"
    raise UsageError(f"no Datafile in `{here}` or any folder above it",
                     help="pass the path: datamake.Project(\"path/to/Datafile\")")


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
        self.graph: graph_mod.Graph = self._load()
        from .overrides import apply

        self.params = apply(self.graph.params, params or {})
        self.catalog = Catalog(self.root, self.graph.datasets, env, self.graph.locations)
        self._state: State | None = None
        self._namespaces: dict[str, Any] = {}

    # -- loading, with the parse cache ------------------------------------------------
    #
    # graph.pickle: what a no-op build needs (plain tuples: unpickles in milliseconds),
    #   with the stamps and digests of the files it came from.
    # recipes.pickle: compiled recipes and `python:` blocks, loaded when a step runs.
    # model.pickle: the whole model, loaded only to re-fingerprint when project modules
    #   changed but the Datafile did not.

    def _load(self) -> graph_mod.Graph:
        cached = self._read_cache()
        if cached is not None:
            return cached
        return self._parse()

    def _cache_key(self) -> tuple:
        return (CACHE_FORMAT, _version(), sys.version_info[:2], self.display, str(self.root))

    def _read_pickle(self, name: str) -> dict | None:
        try:
            with open(self.state_dir / name, "rb") as f:
                data = pickle.load(f)
        except Exception:  # missing, truncated or from another version: just re-parse
            return None
        if not isinstance(data, dict) or data.get("key") != self._cache_key():
            return None
        return data

    def _read_cache(self) -> graph_mod.Graph | None:
        data = self._read_pickle(GRAPH_CACHE)
        if data is None:
            return None
        restamp = False
        for path, stamp, digest in data["sources"]:
            now = local_stamp(path)
            if now == stamp:
                continue
            if now is None or hash_file(path) != digest:
                return None
            restamp = True
        g: graph_mod.Graph = data["graph"]
        if not isinstance(g, graph_mod.Graph) or vars(g).keys() != _GRAPH_FIELDS:
            return None  # written by another build of datamake: parse again
        if any(os.environ.get(k) != v for k, v in g.env_read.items()):
            return None  # a `params "${VAR}/..."` names another file now
        self.warnings = data.get("warnings", [])
        self._sources = data["sources"]
        self._sources_digest = data["sources_digest"]
        if any(local_stamp(p) != s for p, s in data["modules"]):
            full = self._read_pickle(MODEL_CACHE)
            if full is None or full.get("sources_digest") != self._sources_digest:
                return None
            self._model = full["model"]
            self._fingerprint(g)
            return g
        if restamp:
            self._sources = _restamp(data["sources"])
            self._write_graph(g, data["modules"])
        return g

    def _parse(self) -> graph_mod.Graph:
        from . import loader
        from .hashing import hash_parts

        model = loader.load(self.path, self.display)
        g, warnings = graph_mod.build(model)
        for d in model.datasets:
            g.spans.setdefault(d.name, (d.span.file, d.span.line, d.span.col))
        self._model = model
        self.warnings = warnings
        rows = []
        for p in model.sources:
            try:
                rows.append((p, local_stamp(p) or "", hash_file(p)))
            except OSError:
                rows.append((p, "", ""))
        self._sources = _restamp(rows)
        self._sources_digest = hash_parts(*(d for _, _, d in rows))
        self._fingerprint(g)
        return g

    def _fingerprint(self, g: graph_mod.Graph) -> None:
        """Fingerprint the recipes' code, then write all three caches."""
        from .fingerprint import code_fingerprints
        from .recipe import recipe_info

        model = self._model
        assert model is not None
        found = code_fingerprints(g, model, self.root)
        g.code_fp = found.fps
        g.code_deps = found.deps
        self.code_texts = found.texts
        self._recipes = {name: recipe_info(model.rules[node.index])
                         for name, node in g.rules.items()}
        self._python = tuple((b.text, b.line, b.scope, b.span.file) for b in model.python)
        self._scopes = dict(model.scopes)
        self._blocks, self._folders = {}, {}
        modules = [(p, stable(local_stamp(p)) or "?") for p in sorted(found.files)]
        try:
            self.state_dir.mkdir(exist_ok=True)
            key, digest = self._cache_key(), self._sources_digest
            if found.files:  # read back only to re-fingerprint after a module changed
                _atomic_pickle(self.state_dir / MODEL_CACHE,
                               {"key": key, "sources_digest": digest, "model": model})
            _atomic_pickle(self.state_dir / RECIPES_CACHE, {
                "key": key, "sources_digest": digest, "recipes": self._recipes,
                "python": self._python, "scopes": self._scopes, "texts": self.code_texts})
        except OSError:
            pass  # a read-only project still builds; it just parses every time
        self._write_graph(g, modules)

    def _write_graph(self, g: graph_mod.Graph, modules: list) -> None:
        # Work every no-op would otherwise repeat: resolving locations (those that do
        # not read the environment) and slicing the graph for the default target.
        from .errors import CatalogError

        cat = Catalog(self.root, g.datasets, {})
        g.locations = {}
        for name, ds in g.datasets.items():
            if "${" not in ds.location and "{" not in ds.location:
                try:
                    g.locations[name] = cat.location(name)
                except CatalogError:
                    pass
        if g.default:
            g.needed([g.default])
        try:
            self.state_dir.mkdir(exist_ok=True)
            _atomic_pickle(self.state_dir / GRAPH_CACHE, {
                "key": self._cache_key(), "sources": self._sources, "modules": modules,
                "sources_digest": self._sources_digest, "graph": g,
                "warnings": self.warnings})
        except OSError:
            pass

    def _load_recipes(self) -> None:
        data = self._read_pickle(RECIPES_CACHE)
        if data is None or data.get("sources_digest") != self._sources_digest:
            # The cache went missing under us: parse again (same Datafile, same result).
            self._parse()
            return
        self._recipes = data["recipes"]
        self._python = data["python"]
        self._scopes = data["scopes"]
        self._blocks, self._folders = {}, {}
        self.code_texts = data["texts"]

    @property
    def recipes(self):
        """Rule name -> RecipeInfo (compiled code and text), loaded on first use."""
        if self._recipes is None:
            self._load_recipes()
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
                self._load_recipes()
            blocks = self._blocks[scope] = tuple(
                (t, line, f) for t, line, s, f in self._python if s == scope)  # type: ignore[union-attr]
        return blocks

    def scope_folder(self, scope: str) -> Path:
        """The folder of the file whose recipes see `scope`'s python: blocks."""
        folder = self._folders.get(scope)
        if folder is None:
            if self._scopes is None:
                self._load_recipes()
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
            raise UsageError(f"unknown name `{name}`",
                             help=did_you_mean(name, list(self.graph.datasets) + list(self.params)))
        if kind == "param":
            return self.params[name]
        if kind == "alias":
            raise UsageError(f"`{name}` is an alias (a rule with no recipe); it has no value")
        if kind == "output":
            from .status import warn_if_built_with_other_params

            warn_if_built_with_other_params(self, name)
        if self.catalog.is_partitioned(name):
            from .catalog import PartitionMap

            # As a recipe sees it whole: a lazy mapping, one partition loaded at a time.
            return PartitionMap(self.catalog, name, self.catalog.partitions(name))
        try:
            return self.catalog.load(name)
        except CatalogError:
            if kind == "output" and not self.catalog.exists(name):
                raise CatalogError(f"`{name}` has not been built yet",
                                   help=f"build it first: `datamake {name}`") from None
            raise
        except (ModuleNotFoundError, AttributeError) as e:
            # A pickle of a class defined in a `python:` block needs that block run.
            if "__datafile_" not in str(e):
                raise
            if self._scopes is None:
                self._load_recipes()
            for scope in list(self._scopes or {""}):
                self.namespace(scope).globals()
            return self.catalog.load(name)

    def build(self, targets: list[str] | str | None = None, **options: Any):
        """Build `targets` (default: the default target) quietly; returns a BuildResult."""
        from .executor import build
        from .reporter import QuietReporter

        return build(self, self.resolve_targets(targets), QuietReporter(), **options)

    def status(self, targets: list[str] | str | None = None):
        """A dry run: what would run and why, as a table (text, and HTML in Jupyter); it
        has all a BuildResult has (`names("planned")`, `outcomes`...)."""
        from .status import Status

        return Status(self.build(targets, dry_run=True))

    def resolve_targets(self, targets: list[str] | str | None) -> list[str]:
        """Targets checked against the graph. Raises UsageError for unknown ones."""
        if isinstance(targets, str):
            targets = [targets]
        if not targets:
            if self.graph.default is None:
                raise UsageError("the Datafile has no rules, so there is nothing to build")
            return [self.graph.default]
        g = self.graph
        for t in targets:
            name, key = split_step(t)
            kind = g.kind_of(name)
            if kind is None or key == "":
                raise UsageError(f"no rule or dataset named `{t}`",
                                 help=did_you_mean(name, list(g.producer) + list(g.aliases)
                                                   + list(g.datasets))
                                 or "`datamake --list` shows the targets")
            if kind == "param":
                raise UsageError(f"`{name}` is a parameter, not something to build",
                                 help=f"override it with `{name}=VALUE`")
            if key is not None:
                self._check_partition_target(t, name, kind)
        return list(targets)

    def _check_partition_target(self, target: str, name: str, kind: str) -> None:
        """`name[key]` names one partition of a pattern rule's output. Raises UsageError."""
        g = self.graph
        if kind == "dataset":
            raise UsageError(f"`{target}`: no rule writes `{name}`",
                             help="it is a source: datamake reads it and never builds it")
        if kind == "alias":
            raise UsageError(f"`{target}`: `{name}` is an alias, not a partitioned output",
                             help=f"build `{name}`, or one partition of what it names")
        if g.rules[g.producer[name]].key is None:
            ds = g.datasets.get(name)
            if ds is not None and ds.placeholders:
                hint = (f"rule `{g.producer[name]}` writes all of `{name}` in one run "
                        f"(it yields its partitions): build `{name}`")
            else:
                hint = ("one partition is built by itself when a pattern rule writes "
                        "it (`name[key]: input[key]`)")
            raise UsageError(f"`{target}`: `{name}` is not the output of a pattern rule",
                             help=hint)


_GRAPH_FIELDS = vars(graph_mod.Graph()).keys()


def _restamp(sources: list) -> list:
    return [(p, stable(local_stamp(p)), d) for p, _, d in sources]


def _atomic_pickle(path: Path, obj: Any) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        pickle.dump(obj, f, protocol=pickle.HIGHEST_PROTOCOL)
    os.replace(tmp, path)


def _version() -> str:
    from . import __version__

    return __version__
