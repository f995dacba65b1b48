"""What a dataset's location means: `{key}` placeholders, `${VAR}` from the
environment, URLs against local paths, rebasing an included file's paths, and the
pattern a partitioned location's files match. Pure text; the catalog does the I/O.

A location is written relative to its Datafile's folder, or as an absolute path, `~`,
or any fsspec URL (`s3://bucket/key.csv`, `memory://x`); `file://` is a local path.
"""
from __future__ import annotations

import os
import posixpath
import re
from typing import Mapping

PLACEHOLDER = re.compile(r"(?<!\$)\{([A-Za-z_][A-Za-z0-9_]*)\}")
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_ENV_REF = re.compile(r"\$\{(?:[A-Za-z_][A-Za-z0-9_]*\})?")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*)://")
_ONLY_PLACEHOLDERS = re.compile(r"(?:/|\./|(?<!\$)\{[A-Za-z_][A-Za-z0-9_]*\})+")


def placeholders(location: str) -> tuple[str, ...]:
    """The `{name}` placeholders of a location (not `${VAR}`), in order."""
    return tuple(PLACEHOLDER.findall(location))


def expand_env(location: str, env: Mapping[str, str]) -> str:
    """`${VAR}` replaced from `env`. Raises KeyError(VAR) for an unset variable."""
    return _ENV.sub(lambda m: env[m.group(1)], location)


def env_names(location: str) -> list[str]:
    """The `${VAR}` names in a location or path, in order."""
    return _ENV.findall(location)


def is_url(location: str) -> bool:
    """Whether a location is a URL of a remote filesystem (not a local path, not
    `file://`)."""
    m = _SCHEME.match(location)
    return m is not None and m.group(1).lower() != "file"


def resolve(location: str, root: str) -> tuple[str, bool]:
    """(url, local) of a location whose `${VAR}`s are expanded: an absolute, normal
    path under `root` (the Datafile's folder) for a local one, the URL itself else."""
    if location.startswith("file://"):
        location = location[len("file://"):]
    if is_url(location):
        return location, False
    if location[0] in "/~." or "/." in location or "//" in location:
        return os.path.normpath(os.path.join(root, os.path.expanduser(location))), True
    return root + "/" + location.rstrip("/"), True  # already normal: no normpath needed


def extension(location: str) -> str:
    """The extension of a location's last part, lower case (`.csv`), or ""."""
    base = location.rstrip("/").rsplit("/", 1)[-1]
    dot = base.rfind(".")
    return base[dot:].lower() if dot > 0 else ""


def rebase(location: str, folder: str, top: str) -> str:
    """A location written in an included Datafile (in `folder`) as the including one
    (in `top`) sees it: relative paths are rebased, the rest kept."""
    if is_url(location) or location.startswith(("/", "~", "${", "file://")):
        return location
    return os.path.relpath(os.path.join(folder, location), top)


# -- partitioned locations ----------------------------------------------------------

def template(url: str) -> tuple[list[str], list[str]]:
    """A partitioned URL as pieces (text, and `\\0NAME` for each placeholder) and its
    placeholder names (each once, in order), for `fill`."""
    pieces: list[str] = []
    pos = 0
    for m in PLACEHOLDER.finditer(url):
        pieces.append(url[pos:m.start()])
        pieces.append("\0" + m.group(1))
        pos = m.end()
    pieces.append(url[pos:])
    return pieces, list(dict.fromkeys(placeholders(url)))


def fill(pieces: list[str], names: list[str], key: str) -> str | None:
    """The URL of partition `key` (one part per placeholder, joined by `/`), or None
    when `key` is not a key of it: a key never climbs (`..`), is never empty, and never
    holds a `/` or a NUL inside a part."""
    parts = key.split("/") if len(names) > 1 else [key]
    if len(parts) != len(names) or any(p in ("", ".", "..") or "/" in p or "\0" in p
                                       for p in parts):
        return None
    values = dict(zip(names, parts))
    return "".join(values[p[1:]] if p[:1] == "\0" else p for p in pieces)


def listing_base(url: str) -> tuple[str, str]:
    """(the folder or prefix to list, ending in `/`; the rest of the location, holding
    every placeholder) of a partitioned URL."""
    first = PLACEHOLDER.search(url)
    assert first is not None, url
    base = url[: url.rfind("/", 0, first.start()) + 1]
    return base, url[len(base):]


def pattern_regex(rest: str) -> str:
    """A regular expression matching the rest of a partitioned location (below its
    listing base), each placeholder a named group matching one path part."""
    out, seen, pos = [], set(), 0
    for m in PLACEHOLDER.finditer(rest):
        out.append(re.escape(rest[pos:m.start()]))
        name = m.group(1)
        out.append(f"(?P={name})" if name in seen else f"(?P<{name}>[^/]+)")
        seen.add(name)
        pos = m.end()
    out.append(re.escape(rest[pos:]))
    return "".join(out)


# -- what a location may be ---------------------------------------------------------

def problem(location: str) -> tuple[str, str] | None:
    """Why a dataset's location cannot be used, as (message, hint), or None: the text of
    `problem_of`'s kind."""
    found = problem_of(location)
    if found is None:
        return None
    from .messages import text

    message, hint, _ = text(found[0], **found[1])
    return message, hint or ""


def problem_of(location: str) -> tuple[str, dict[str, str]] | None:
    """Why a dataset's location cannot be used, as (a code of `messages.MESSAGES`, its
    fields), or None.

    Checked on the location as written (before `${VAR}` is expanded) and again by the
    catalog on what the environment made of it: a location must name something of its
    own, never the project's folder, a folder above it, a filesystem's root or
    datamake's own `.datamake/`.
    """
    at = {"location": location}
    if not location.strip():
        return "location-empty", at
    for m in _ENV_REF.finditer(location):
        if not m.group(0).endswith("}"):
            return "location-bad-variable", at
    scheme = _SCHEME.match(location)
    path = location
    if scheme:
        rest = location[scheme.end():]
        if scheme.group(1).lower() != "file":
            if not rest.strip("/") or _ONLY_PLACEHOLDERS.fullmatch("/" + rest):
                return ("location-url-placeholders" if rest.strip("/") else "location-no-path",
                        {**at, "scheme": scheme.group(0)})
            return _placeholder_problem(location)
        path = rest
    if path.startswith("~") and (len(path) == 1 or path[1] == "/"):
        path = path[1:] or "/"
        if not posixpath.normpath(path).strip("/"):
            return "location-home", at
    norm = posixpath.normpath(path)
    if norm == "/" or norm == "//":
        return "location-root", at
    if norm == ".":
        return "location-project", at
    if all(part == ".." for part in norm.split("/")):
        return "location-above", at
    if norm == ".datamake" or norm.startswith(".datamake/"):
        return "location-in-state", at
    if _ONLY_PLACEHOLDERS.fullmatch(path):
        return "location-placeholders-only", at
    return _placeholder_problem(location)


def _placeholder_problem(location: str) -> tuple[str, dict[str, str]] | None:
    for m in PLACEHOLDER.finditer(location):
        if PLACEHOLDER.match(location, m.end()):
            return "location-adjacent-placeholders", {"location": location}
    return None
