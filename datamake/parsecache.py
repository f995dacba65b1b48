"""The parse cache: what a no-op build needs from a Datafile without parsing it.

In `.datamake/`:
- graph.pickle: what a no-op build needs (plain tuples: unpickles in milliseconds),
  with the stamps and digests of the files it came from;
- recipes.pickle: compiled recipes and `python:` blocks, loaded when a step runs;
- model.pickle: the whole model, loaded only to re-fingerprint when project modules
  changed but the Datafile did not.
Each is keyed by the cache format, datamake's version, Python's version and the
Datafile's path; anything unreadable or from another version is parsed again.
"""
from __future__ import annotations

import os
import pickle
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import graph as graph_mod
from .catalog import Catalog, local_stamp, stable
from .hashing import hash_file

if TYPE_CHECKING:
    from .project import Project

CACHE_FORMAT = 6  # 4: source digests are BLAKE3; 5: diagnostics carry codes; 6: rules
# know the keys of the dict parameters they read
GRAPH_CACHE = "graph.pickle"
MODEL_CACHE = "model.pickle"
RECIPES_CACHE = "recipes.pickle"

_GRAPH_FIELDS = vars(graph_mod.Graph()).keys()


def load(proj: "Project") -> graph_mod.Graph:
    cached = read_cache(proj)
    if cached is not None:
        return cached
    return parse(proj)


def cache_key(proj: "Project") -> tuple:
    return (CACHE_FORMAT, _version(), sys.version_info[:2], proj.display, str(proj.root))


def read_pickle(proj: "Project", name: str) -> dict | None:
    try:
        with open(proj.state_dir / name, "rb") as f:
            data = pickle.load(f)
    except Exception:  # missing, truncated or from another version: just re-parse
        return None
    if not isinstance(data, dict) or data.get("key") != cache_key(proj):
        return None
    return data


def read_cache(proj: "Project") -> graph_mod.Graph | None:
    data = read_pickle(proj, GRAPH_CACHE)
    if data is None:
        return None
    restamp = False
    for path, stamp, digest in data["sources"]:
        now = local_stamp(path)
        if now == stamp or (now is None and not stamp and not digest):
            continue  # unchanged, or still missing (an environment's file not written)
        if now is None or hash_file(path) != digest:
            return None
        restamp = True
    g: graph_mod.Graph = data["graph"]
    if not isinstance(g, graph_mod.Graph) or vars(g).keys() != _GRAPH_FIELDS:
        return None  # written by another build of datamake: parse again
    if any(os.environ.get(k) != v for k, v in g.env_read.items()):
        return None  # a `params "${VAR}/..."` names another file now
    proj.warnings = data.get("warnings", [])
    proj._sources = data["sources"]
    proj._sources_digest = data["sources_digest"]
    if any(local_stamp(p) != s for p, s in data["modules"]):
        full = read_pickle(proj, MODEL_CACHE)
        if full is None or full.get("sources_digest") != proj._sources_digest:
            return None
        proj._model = full["model"]
        fingerprint(proj, g)
        return g
    if restamp:
        proj._sources = _restamp(data["sources"])
        write_graph(proj, g, data["modules"])
    return g


def parse(proj: "Project") -> graph_mod.Graph:
    from . import loader
    from .hashing import hash_parts

    model = loader.load(proj.path, proj.display)
    g, warnings = graph_mod.build(model)
    for d in model.datasets:
        g.spans.setdefault(d.name, (d.span.file, d.span.line, d.span.col))
    proj._model = model
    proj.warnings = warnings
    rows = []
    for p in model.sources:
        try:
            rows.append((p, local_stamp(p) or "", hash_file(p)))
        except OSError:
            rows.append((p, "", ""))
    proj._sources = _restamp(rows)
    proj._sources_digest = hash_parts(*(d for _, _, d in rows))
    fingerprint(proj, g)
    return g


def fingerprint(proj: "Project", g: graph_mod.Graph) -> None:
    """Fingerprint the recipes' code, then write all three caches."""
    from .fingerprint import code_fingerprints
    from .recipe import recipe_info

    model = proj._model
    assert model is not None
    found = code_fingerprints(g, model, proj.root)
    g.code_fp = found.fps
    g.code_deps = found.deps
    proj.code_texts = found.texts
    proj._recipes = {name: recipe_info(model.rules[node.index])
                     for name, node in g.rules.items()}
    proj._python = tuple((b.text, b.line, b.scope, b.span.file) for b in model.python)
    proj._scopes = dict(model.scopes)
    proj._blocks, proj._folders = {}, {}
    modules = [(p, stable(local_stamp(p)) or "?") for p in sorted(found.files)]
    try:
        proj.state_dir.mkdir(exist_ok=True)
        key, digest = cache_key(proj), proj._sources_digest
        if found.files:  # read back only to re-fingerprint after a module changed
            _atomic_pickle(proj.state_dir / MODEL_CACHE,
                           {"key": key, "sources_digest": digest, "model": model})
        _atomic_pickle(proj.state_dir / RECIPES_CACHE, {
            "key": key, "sources_digest": digest, "recipes": proj._recipes,
            "python": proj._python, "scopes": proj._scopes, "texts": proj.code_texts})
    except OSError:
        pass  # a read-only project still builds; it just parses every time
    write_graph(proj, g, modules)


def write_graph(proj: "Project", g: graph_mod.Graph, modules: list) -> None:
    # Work every no-op would otherwise repeat: resolving locations (those that do
    # not read the environment) and slicing the graph for the default target.
    from .errors import CatalogError

    cat = Catalog(proj.root, g.datasets, {})
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
        proj.state_dir.mkdir(exist_ok=True)
        _atomic_pickle(proj.state_dir / GRAPH_CACHE, {
            "key": cache_key(proj), "sources": proj._sources, "modules": modules,
            "sources_digest": proj._sources_digest, "graph": g,
            "warnings": proj.warnings})
    except OSError:
        pass


def load_recipes(proj: "Project") -> None:
    data = read_pickle(proj, RECIPES_CACHE)
    if data is None or data.get("sources_digest") != proj._sources_digest:
        # The cache went missing under us: parse again (same Datafile, same result).
        parse(proj)
        return
    proj._recipes = data["recipes"]
    proj._python = data["python"]
    proj._scopes = data["scopes"]
    proj._blocks, proj._folders = {}, {}
    proj.code_texts = data["texts"]


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
