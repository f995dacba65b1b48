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
        raise error(f"no Datafile at `{display}`",
                    help="create one, or name it with `-f FILE`") from None
    except NotRegularError:
        raise error(f"`{display}` is not a regular file",
                    help="a Datafile is a text file") from None
    except TooBigError:
        raise error(f"`{display}` is larger than {MAX_DATAFILE_BYTES // 1_000_000} MB",
                    help="a Datafile this big is not written by hand: generate fewer, "
                         "bigger rules (a pattern rule covers many partitions)") from None
    except OSError as e:
        raise error(f"cannot read `{display}`: {e.strerror or e}",
                    help="check the file's permissions") from None
    try:
        text = data.decode("utf-8-sig")  # a byte-order mark (Windows editors) is dropped
    except UnicodeDecodeError as e:
        start = data.rfind(b"\n", 0, e.start) + 1
        line = data.count(b"\n", 0, start) + 1
        col = len(data[start:e.start].decode("utf-8")) + 1
        raise error(f"`{display}` is not UTF-8 text: byte 0x{data[e.start]:02x} ({e.reason})",
                    Span(display, line, col, line, col + 1),
                    help="a Datafile is UTF-8 text: save it as UTF-8") from None
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
    sources = [str(path)] + [str((path.parent / pf.path).resolve()) for pf in df.params_files]
    scopes: list[tuple[str, str]] = []
    env = list(df.env)
    parts: list[model.Datafile] = []
    for inc in df.includes:
        target = (path.parent / inc.path).resolve()
        if target in chain:
            loop = " -> ".join(f"`{_display(p)}`" for p in chain[chain.index(target):] + (target,))
            raise error(f"include cycle: {loop}", inc.span,
                        help="a Datafile cannot include itself, directly or not")
        if not target.is_file():
            raise error(f"no Datafile at `{inc.path}` to include", inc.span,
                        help="the path is relative to the including Datafile's folder")
        child = _load(target, _display(target), chain + (target,))
        if child.cache is not None:
            raise error("`cache` belongs in the top Datafile", child.cache[1],
                        help="move it to the Datafile that includes this one")
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
