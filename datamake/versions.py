"""Versions of `versioned` datasets: naming, resolving `NAME@VERSION`, and comparing
the metrics of two versions (`--diff`). Storage goes through the catalog.

A dataset's versions sit beside it, in `.versions/<file name>/` in the same folder or
bucket prefix, one file per version named `<UTC time>-<content digest>-<step
signature><ext>`: one listing gives the whole history, and the versions travel with
the data (a report of last month sits beside today's, on S3 as on disk).
"""
from __future__ import annotations

import datetime as _dt
import json
import re
from typing import Any, NamedTuple

# The content digest: 64 hex (BLAKE3), or 32 (the xxh3 digests of older datamakes: their
# versions still list, and resolve by id).
_NAME = re.compile(r"^(\d{8}T\d{6}\.\d{3}Z)-([0-9a-f]{64}|[0-9a-f]{32})-([0-9a-f]{16}|none)(\..*)?$")


class Version(NamedTuple):
    id: str  # e.g. 20261126T100405.123Z
    digest: str
    sig: str
    url: str
    size: int | None

    @property
    def time(self) -> _dt.datetime:
        return _dt.datetime.strptime(self.id, "%Y%m%dT%H%M%S.%fZ").replace(tzinfo=_dt.timezone.utc)


def new_id(now: float) -> str:
    t = _dt.datetime.fromtimestamp(now, _dt.timezone.utc)
    return t.strftime("%Y%m%dT%H%M%S.") + f"{t.microsecond // 1000:03d}Z"


def file_name(vid: str, digest: str, sig: str | None, ext: str) -> str:
    return f"{vid}-{digest}-{(sig or 'none')[:16]}{ext}"


def parse(name: str, url: str, size: int | None) -> Version | None:
    m = _NAME.match(name)
    if not m:
        return None
    return Version(m.group(1), m.group(2), m.group(3), url, size)


class VersionError(Exception):
    """No one saved version is named: a kind of `messages.MESSAGES` and its fields, told
    about a subject (`told("`out`")`)."""

    def __init__(self, code: str, **fields: Any):
        super().__init__(code)
        self.code = code
        self.fields = fields

    def told(self, what: str) -> str:
        """The message, about `what` (e.g. "`out`" or "input `out@v1`")."""
        from .messages import text

        return text(self.code, what=what, name="", **self.fields)[0]

    def __str__(self) -> str:
        return self.told("it")


def resolve(versions: list[Version], spec: str) -> Version:
    """The version `spec` names: `latest`, `previous`, its number (1 to 3 digits: `1` is
    the oldest, as `--history` lists them), a prefix of its id (written with or without
    the `-` and `:` of an ISO time) or of its content digest. Raises VersionError."""
    if not versions:
        raise VersionError("no-versions")
    if spec.isdigit() and len(spec) <= 3 and spec.isascii():
        n = int(spec)
        if not 1 <= n <= len(versions):
            raise VersionError("no-version-number", number=n, count=len(versions))
        return versions[n - 1]
    if spec == "latest":
        return versions[-1]
    if spec == "previous":
        if len(versions) < 2:
            raise VersionError("one-version")
        return versions[-2]
    norm = spec.replace("-", "").replace(":", "").upper()
    hits = [v for v in versions if v.id.upper().startswith(norm) or v.digest.startswith(spec)]
    if not hits:
        raise VersionError("no-version-matches", spec=spec)
    if len({v.id for v in hits}) > 1:
        raise VersionError("version-ambiguous", spec=spec, count=len(hits),
                           listed=", ".join(v.id for v in hits[:5]))
    return hits[0]


def metrics_of(data: bytes, fmt: str) -> dict[str, Any]:
    """The numbers of a version: a report's embedded metrics, or a json dataset's
    numeric leaves (nested keys joined with `.`)."""
    if fmt == "html":
        text = data.decode("utf-8", "replace")
        m = re.search(r'<script type="application/json" id="datamake-metrics">(.*?)</script>',
                      text, re.S)
        obj = json.loads(m.group(1).replace("<\\/", "</")) if m else {}
    else:
        obj = json.loads(data.decode("utf-8"))
    flat: dict[str, Any] = {}

    def walk(prefix: str, v: Any) -> None:
        if isinstance(v, dict):
            for k, x in v.items():
                walk(f"{prefix}.{k}" if prefix else str(k), x)
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            flat[prefix or "value"] = v

    walk("", obj)
    return flat


def diff(before: dict[str, Any], after: dict[str, Any]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for k in sorted(set(before) | set(after)):
        b, a = before.get(k), after.get(k)
        change = None if a is None or b is None else a - b
        rel = None if change is None or not b else change / abs(b)
        out[k] = {"before": b, "after": a, "change": change, "relative": rel}
    return out
