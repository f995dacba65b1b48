"""`params "FILE"`: parameters read from a YAML, TOML or JSON file beside the Datafile,
within the limits on what such a file may hold (a regular file, its size, its values
with YAML aliases counted each time they are used, its nesting)."""
from __future__ import annotations

import json
from pathlib import Path

from . import model
from .errors import DatafileError, error
from .limits import (MAX_DEPTH, MAX_NAME, MAX_PARAMS_BYTES, NotRegularError, TooBigError,
                     read_regular, value_problem)


def _parse_failure(e: Exception) -> str:
    """A YAML, JSON or TOML parser's complaint on one line, with where it is."""
    problem, mark = getattr(e, "problem", None), getattr(e, "problem_mark", None)
    if problem and mark is not None:  # yaml's MarkedYAMLError
        return f"{problem} (line {mark.line + 1}, column {mark.column + 1})"
    if isinstance(e, json.JSONDecodeError):
        return f"{e.msg} (line {e.lineno}, column {e.colno})"
    return " ".join(str(e).split())


def expand(path: str, span) -> tuple[str, list[str]]:
    """A params file's path with `${VAR}` expanded from the environment, and the names
    of the variables it read. Raises DatafileError for an unset one."""
    import os

    from . import locations

    names = locations.env_names(path)
    try:
        return locations.expand_env(path, os.environ), names
    except KeyError as e:
        raise error("params-file-env-unset", span, path=path, var=e.args[0]) from None


def read_params(pf: model.ParamsFile, base: Path) -> list[model.Param]:
    """The parameters a `params "FILE"` line brings, read from `base / FILE` (and the
    current environment's file laid over it, see envs.py) within the limits on what a
    params file may hold. Raises DatafileError at the line."""
    data = _read_mapping(pf, pf.path, base)
    if pf.overlay is not None and (base / pf.overlay).is_file():
        from .envs import merged

        data = merged(data, _read_mapping(pf, pf.overlay, base))
    out = []
    for k, v in data.items():
        if not isinstance(k, str) or not k.isidentifier() or len(k) > MAX_NAME:
            raise error("params-bad-key", pf.span, path=pf.path, key=k, limit=MAX_NAME)
        out.append(model.Param(k, v, pf.span))
    return out


def _read_mapping(pf: model.ParamsFile, rel: str, base: Path) -> dict:
    """The mapping in params file `rel` (told at `pf`'s line). Raises DatafileError."""
    path = base / rel
    try:
        raw = read_regular(path, MAX_PARAMS_BYTES)
    except NotRegularError:
        raise error("params-not-regular", pf.span, path=rel) from None
    except TooBigError:
        raise error("params-too-big", pf.span, path=rel, limit=MAX_PARAMS_BYTES) from None
    except OSError as e:
        raise error("params-unreadable", pf.span, path=rel, reason=e.strerror or e) from None
    suffix = path.suffix.lower()
    try:
        if suffix in (".yaml", ".yml"):
            import yaml

            # libyaml's parser when there is one: the same values, three times faster.
            data = yaml.load(raw.decode("utf-8"),
                             Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        elif suffix == ".toml":
            import tomllib

            data = tomllib.loads(raw.decode("utf-8"))
        elif suffix == ".json":
            data = json.loads(raw.decode("utf-8"))
        else:
            raise error("params-unknown-type", pf.span, path=rel)
    except DatafileError:
        raise
    except (RecursionError, MemoryError):  # the parser's own limit on nesting
        raise error("params-too-deep", pf.span, path=rel, depth=MAX_DEPTH) from None
    except Exception as e:  # each parser has its own error type
        kind = {".toml": "TOML", ".json": "JSON"}.get(suffix, "YAML")
        raise error("params-unparsable", pf.span, path=rel, reason=_parse_failure(e),
                    kind=kind) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise error("params-not-mapping", pf.span, path=rel)
    problem = value_problem(data)
    if problem is not None:
        raise error("params-too-big-value", pf.span, path=rel, problem=problem)
    return data
