"""Environments, as Kedro users know them: a project's configuration in `conf/base/`,
and a named environment (`--env NAME`, or `DATAMAKE_ENV`; `local` when neither is
given) whose files lay over it.

- Parameters: a `params "conf/base/parameters.yaml"` line (any path with a `base`
  folder in it) also reads `conf/NAME/parameters.yaml` when that file exists; its
  values replace the base ones, key by key inside dicts.
- Credentials: `conf/NAME/credentials.yaml`, when it exists, is a flat mapping of
  environment variables (`AWS_ACCESS_KEY_ID: ...`) set for the build and the processes
  it starts, where the environment does not set them already. They are never
  parameters, so never printed, logged, fingerprinted, recorded or cached.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

ENV_VAR = "DATAMAKE_ENV"
DEFAULT = "local"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_VARIABLE = re.compile(r"[A-Z_][A-Z0-9_]{0,127}")


def name_problem(name: str) -> bool:
    """Whether `name` cannot name an environment (it becomes one folder's name)."""
    return _NAME.fullmatch(name) is None or name in (".", "..")


def current() -> str:
    """The environment in force: `DATAMAKE_ENV`, else `local`. A name that cannot be a
    folder's is not used (the CLI refuses it before this is asked)."""
    name = os.environ.get(ENV_VAR) or DEFAULT
    return DEFAULT if name_problem(name) else name


def overlay(path: str) -> str | None:
    """The file that lays over params file `path` in the current environment: `path`
    with its last `base` folder replaced by the environment's name; None when `path` is
    in no `base` folder, or the environment is `base` itself."""
    parts = path.replace("\\", "/").split("/")
    at = max((i for i, p in enumerate(parts[:-1]) if p == "base"), default=None)
    env = current()
    if at is None or env == "base":
        return None
    return "/".join(parts[:at] + [env] + parts[at + 1:])


def merged(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """`base` with `over` laid on it: dicts merged key by key, anything else replaced."""
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merged(out[k], v)
        else:
            out[k] = v
    return out


class CredentialsError(Exception):
    """The credentials file cannot be used; the message never holds a value from it."""


def credentials_file(root: Path) -> Path:
    return root / "conf" / current() / "credentials.yaml"


def load_credentials(root: Path) -> list[str]:
    """Set the variables of the environment's credentials file (if there is one) that
    the process's environment does not set; the names set. Raises CredentialsError."""
    path = credentials_file(root)
    if not path.is_file():
        return []
    from .limits import MAX_PARAMS_BYTES, read_regular

    try:
        import yaml

        data = yaml.load(read_regular(path, MAX_PARAMS_BYTES).decode("utf-8"),
                         Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except Exception:  # a parser's message may quote the file: say only where
        raise CredentialsError(f"`{_shown(path, root)}` is not a YAML mapping of "
                               f"environment variables") from None
    if data is None:
        return []
    if not isinstance(data, dict):
        raise CredentialsError(f"`{_shown(path, root)}` is not a YAML mapping of "
                               f"environment variables")
    done = []
    for k, v in data.items():
        if not isinstance(k, str) or not _VARIABLE.fullmatch(k) or \
                not isinstance(v, (str, int)) or isinstance(v, bool):
            shown = k if isinstance(k, str) and _VARIABLE.fullmatch(k) else "a key"
            raise CredentialsError(f"`{_shown(path, root)}`: {shown} is not an environment "
                                   f"variable with a text value")
        if k not in os.environ:
            os.environ[k] = str(v)
            done.append(k)
    return done


def _shown(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)
