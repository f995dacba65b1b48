"""Reading a Datafile from disk, with the files it includes: one model of the whole
pipeline, an included file's names prefixed by its namespace and its locations rebased
onto the top Datafile's folder."""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from . import locations, model
from .errors import Span, error
from .limits import MAX_DATAFILE_BYTES, NotRegularError, TooBigError, read_regular
from .parser import parse_text


def parse_file(path: str | os.PathLike, display: str | None = None) -> model.Datafile:
    """Parse the Datafile at `path`; `display` is the name used in messages.

    Raises DatafileError for anything wrong in it or in a `params` file it names.
    """
    display = display or str(path)
    try:
        data = read_regular(path, MAX_DATAFILE_BYTES)
    except FileNotFoundError:
        raise error("no-datafile", path=display) from None
    except NotRegularError:
        raise error("datafile-not-regular", path=display) from None
    except TooBigError:
        raise error("datafile-too-big", path=display, mb=MAX_DATAFILE_BYTES // 1_000_000) from None
    except OSError as e:
        raise error("datafile-unreadable", path=display, reason=e.strerror or e) from None
    try:
        text = data.decode("utf-8-sig")  # a byte-order mark (Windows editors) is dropped
    except UnicodeDecodeError as e:
        start = data.rfind(b"\n", 0, e.start) + 1
        line = data.count(b"\n", 0, start) + 1
        col = len(data[start:e.start].decode("utf-8")) + 1
        raise error("datafile-not-utf8", Span(display, line, col, line, col + 1),
                    path=display, byte=data[e.start], reason=e.reason) from None
    return parse_text(text, display, base=Path(path).resolve().parent)


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
    sources = [str(path)] + [str((path.parent / p).resolve()) for pf in df.params_files
                             for p in (pf.path, pf.overlay) if p is not None]
    if any(r.recipe is not None and r.recipe.kind == "notebook" for r in df.rules):
        df = _with_notebooks(df, path.parent)
        sources.extend(r.recipe.notebook for r in df.rules  # type: ignore[union-attr]
                       if r.recipe is not None and r.recipe.kind == "notebook")
    scopes: list[tuple[str, str]] = []
    env = list(df.env)
    parts: list[model.Datafile] = []
    for inc in df.includes:
        target = (path.parent / inc.path).resolve()
        if target in chain:
            loop = " -> ".join(f"`{_display(p)}`" for p in chain[chain.index(target):] + (target,))
            raise error("include-cycle", inc.span, loop=loop)
        if not target.is_file():
            raise error("include-missing", inc.span, path=inc.path)
        child = _load(target, _display(target), chain + (target,))
        if child.cache is not None:
            raise error("cache-in-include", child.cache[1])
        scope = str(target)
        parts.append(_prefixed(child, inc.namespace, target.parent, path.parent, scope))
        scopes.append((scope, str(target.parent)))
        scopes.extend(child.scopes)
        sources.extend(child.sources)
        env.extend(child.env)
    for part in parts:
        df = dataclasses.replace(
            df, params=df.params + part.params, datasets=df.datasets + part.datasets,
            rules=df.rules + part.rules, python=df.python + part.python)
    return dataclasses.replace(df, includes=(), scopes=tuple(scopes), sources=tuple(sources),
                               env=tuple(dict.fromkeys(env)))


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


def _with_notebooks(df: model.Datafile, folder: Path) -> model.Datafile:
    """Notebook recipes with their files found (relative to the Datafile's folder) and
    fingerprinted: the code cells, and the page (markdown and code as written), so that
    an edit of either makes the step stale; the step itself tells the two apart (see
    notebook_rule). The files become sources of the pipeline: an edit parses again,
    and --watch watches them."""
    from .errors import DatafileError
    from .hashing import hash_parts
    from .notebook_cells import NotebookFormatError, fingerprints

    rules, errors = [], []
    for r in df.rules:
        recipe = r.recipe
        if recipe is None or recipe.kind != "notebook":
            rules.append(r)
            continue
        target = (folder / recipe.notebook).resolve()
        if not target.is_file():
            errors.append(error("notebook-missing", recipe.notebook_span, path=recipe.notebook,
                                folder=_display(folder)).diagnostics[0])
            continue
        try:
            fps = fingerprints(target)
        except NotebookFormatError as e:
            where = f" (its line {e.line})" if e.line else ""
            errors.append(error("notebook-unreadable", recipe.notebook_span,
                                reason=str(e).replace(str(target), recipe.notebook) + where,
                                hint=e.help).diagnostics[0])
            continue
        recipe = dataclasses.replace(recipe, notebook=str(target),
                                     body_fp=hash_parts("notebook", fps.code, fps.page))
        rules.append(dataclasses.replace(r, recipe=recipe))
    if errors:
        raise DatafileError(errors)
    return dataclasses.replace(df, rules=tuple(rules))
