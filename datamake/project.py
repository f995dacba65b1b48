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
from typing import Any

from . import graph as graph_mod
from .catalog import Catalog, local_stamp, stable
from .diagnostics import did_you_mean
from .errors import CatalogError, Diagnostic, UsageError
from .hashing import hash_file
from .model import Datafile
from .state import STATE_DIR, State

CACHE_FORMAT = 1
GRAPH_CACHE = "graph.pickle"
MODEL_CACHE = "model.pickle"


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
        self._model: Datafile | None = None
        self.code_texts: dict[str, str] = {}
        self.warnings: list[Diagnostic] = []
        self.parsed = False  # whether this load parsed the Datafile (else: from cache)
        self.graph: graph_mod.Graph = self._load()
        self.params = dict(self.graph.params)
        for k, v in (params or {}).items():
            if k not in self.params:
                raise UsageError(f"unknown parameter `{k}`",
                                 help=did_you_mean(k, self.params) or "declare it with `param`")
            self.params[k] = v
        self.catalog = Catalog(self.root, self.graph.datasets, env)
        self._state: State | None = None
        self._namespace = None

    # -- loading, with the parse cache ------------------------------------------------

    def _load(self) -> graph_mod.Graph:
        cached = self._read_cache()
        if cached is not None:
            return cached
        return self._parse()

    def _cache_key(self) -> tuple:
        return (CACHE_FORMAT, _version(), sys.version_info[:2], self.display)

    def _read_cache(self) -> graph_mod.Graph | None:
        try:
            with open(self.state_dir / GRAPH_CACHE, "rb") as f:
                data = pickle.load(f)
        except Exception:  # missing, truncated or from another version: just re-parse
            return None
        if data.get("key") != self._cache_key():
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
        modules_changed = any(local_stamp(p) != s for p, s in data["modules"])
        if modules_changed:
            model = self._read_model(data["sources_digest"])
            if model is None:
                return None
            self._model = model
            return self._fingerprint(g, data["sources"], data["sources_digest"])
        if restamp:
            self._write_cache(g, _restamp(data["sources"]), data["modules"],
                              data["sources_digest"], model=False)
        self._sources_digest = data["sources_digest"]
        return g

    def _read_model(self, digest: str) -> Datafile | None:
        try:
            with open(self.state_dir / MODEL_CACHE, "rb") as f:
                data = pickle.load(f)
        except Exception:
            return None
        if data.get("key") != self._cache_key() or data.get("sources_digest") != digest:
            return None
        self.code_texts = data["texts"]
        return data["model"]

    def _parse(self) -> graph_mod.Graph:
        from . import parser

        model = parser.parse_file(self.path, self.display)
        g, warnings = graph_mod.build(model)
        # Locations and spans of datasets, for messages.
        for d in model.datasets:
            g.spans.setdefault(d.name, (d.span.file, d.span.line, d.span.col))
        self._model = model
        self.warnings = warnings
        self.parsed = True
        sources = [str(self.path)] + [str((self.root / pf.path).resolve())
                                      for pf in model.params_files]
        rows = []
        for p in sources:
            try:
                rows.append((p, local_stamp(p) or "", hash_file(p)))
            except OSError:
                rows.append((p, "", ""))
        from .hashing import hash_parts

        digest = hash_parts(*(d for _, _, d in rows))
        return self._fingerprint(g, rows, digest)

    def _fingerprint(self, g: graph_mod.Graph, sources: list, digest: str) -> graph_mod.Graph:
        from .fingerprint import code_fingerprints

        assert self._model is not None
        index, fps, deps = code_fingerprints(g, self._model, self.root)
        g.code_fp = fps
        g.code_deps = deps
        self.code_texts = index.texts
        modules = [(p, stable(local_stamp(p)) or "?") for p in sorted(index.files)]
        self._sources_digest = digest
        self._write_cache(g, _restamp(sources), modules, digest, model=True)
        return g

    def _write_cache(self, g: graph_mod.Graph, sources: list, modules: list, digest: str,
                     model: bool) -> None:
        key = self._cache_key()
        try:
            self.state_dir.mkdir(exist_ok=True)
            if model:
                _atomic_pickle(self.state_dir / MODEL_CACHE, {
                    "key": key, "sources_digest": digest, "model": self._model,
                    "texts": self.code_texts})
            _atomic_pickle(self.state_dir / GRAPH_CACHE, {
                "key": key, "sources": sources, "modules": modules, "sources_digest": digest,
                "graph": g})
        except OSError:
            pass  # a read-only project still builds; it just parses every time

    @property
    def model(self) -> Datafile:
        """The whole parsed Datafile (recipes included), loaded on first use."""
        if self._model is None:
            model = self._read_model(self._sources_digest)
            if model is None:
                from . import parser

                model = parser.parse_file(self.path, self.display)
            self._model = model
        return self._model

    @property
    def state(self) -> State:
        if self._state is None:
            self._state = State(self.root)
        return self._state

    @property
    def namespace(self):
        if self._namespace is None:
            from .recipe import Namespace

            self._namespace = Namespace(self.model.python, self.root, self.display)
        return self._namespace

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
        try:
            return self.catalog.load(name)
        except CatalogError:
            if kind == "output" and not self.catalog.exists(name):
                raise CatalogError(f"`{name}` has not been built yet",
                                   help=f"build it first: `datamake {name}`") from None
            raise
        except (ModuleNotFoundError, AttributeError) as e:
            # A pickle of a class defined in the `python:` block needs that block run.
            if "__datafile__" not in str(e):
                raise
            self.namespace.globals()
            return self.catalog.load(name)

    def build(self, targets: list[str] | str | None = None, **options: Any):
        """Build `targets` (default: the default target) quietly; returns a BuildResult."""
        from .executor import build
        from .reporter import QuietReporter

        return build(self, self.resolve_targets(targets), QuietReporter(), **options)

    def status(self, targets: list[str] | str | None = None):
        """A dry run: what would run and why (a BuildResult with `planned` steps)."""
        return self.build(targets, dry_run=True)

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
            kind = g.kind_of(t)
            if kind is None:
                raise UsageError(f"no rule or dataset named `{t}`",
                                 help=did_you_mean(t, list(g.producer) + list(g.aliases)
                                                   + list(g.datasets))
                                 or "`datamake --list` shows the targets")
            if kind == "param":
                raise UsageError(f"`{t}` is a parameter, not something to build",
                                 help=f"override it with `{t}=VALUE`")
        return list(targets)


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
