"""What the pipeline page asks of a pipeline: the `Source` protocol, and the JSON
documents its answers are. The server, the page and the static export use nothing else
of datamake; `source.py` answers these questions for a Datafile on this machine.

Every document is plain JSON (str, int, float, bool, None, lists, dicts). Every string
in them is text for the page to show as text (names, locations, descriptions, recipe
lines, values, tracebacks all come from the user's files): the page never reads one as
HTML, except `Preview.html`, which it shows in a sandboxed frame that runs no script.

Node ids are the pipeline's names: a rule by its first output (`model_input`), an alias,
a source dataset, a parameter. A step is a node id, or `name[key]` for one partition of
a pattern rule. Names of an included file's namespace are dotted (`features.clean`).

Graph (`Source.graph()`):

    {"title": str,                     # the Datafile, as the user named it
     "default": str | None,            # the default target
     "error": str | None,              # why the Datafile does not load (then no nodes)
     "nodes": [Node, ...], "edges": [{"from": id, "to": id, "pinned": str | None}, ...],
     "namespaces": [{"id": "a.b", "label": "b", "parent": "a" | None}, ...]}

    Node = {"id": str, "kind": "rule" | "alias" | "dataset" | "param",
            "label": str,                 # `counts[4]` for a pattern rule of 4 partitions
            "ns": str,                    # its namespace ("" at the top)
            "status": "fresh" | "cached" | "stale" | "failed" | "missing" | "source"
                      | "param" | "alias",
            "reasons": [str, ...],        # stale: the reason codes (`param-changed`, ...)
            "outputs": [str, ...],        # a rule's outputs
            "partitions": {"total": int, "stale": int, "failed": int} | None,
            "pattern": bool,              # a pattern rule (one step per partition)
            "description": str | None,    # a rule's `## text`
            "detail": str | None}         # a short line: a parameter's value, a format

Panel (`Source.panel(id)`): everything shown when a node is clicked.

    {"id", "kind", "status", "reasons", "description", "label",
     "target": str | None,               # what its build button builds (None: no button)
     "code": Code | None,                # the rule (or declaration) at its Datafile lines
     "helpers": [Code, ...],             # the `python:` definitions its fingerprint follows
     "inputs": [Data, ...], "outputs": [Data, ...],
     "params": [{"name": str, "value": str}, ...],
     "explain": [{"step": str, "lines": [str, ...]}, ...],   # as --explain words it
     "failure": {"step": str, "text": str} | None,           # the last failure's traceback
     "partitions": [{"key": str, "status": str}, ...] | None,
     "history": [{"started": float, "status": str, "seconds": float,
                  "peak_mb": float | None}, ...],
     "readers": [id, ...],               # the rules that read it
     "value": str | None}                # a parameter's value

    Code = {"title": str, "file": str | None, "lines": [{"n": int | None,
            "tokens": [[css class, text], ...]}, ...]}   # highlighted, line numbers the file's
    Data = {"name": str, "location": str | None, "format": str | None,
            "exists": bool, "size": int | None, "modified": float | None,
            "built_at": float | None, "seconds": float | None,
            "partitions": int | None, "versioned": bool, "pinned": str | None,
            "preview": bool}               # whether `preview(name)` has something to show

Preview (`Source.preview(name, key, version)`):

    {"name": str, "key": str | None, "location": str, "format": str,
     "kind": "table" | "value" | "image" | "html" | "files" | "none",
     "columns": [{"name": str, "dtype": str}], "rows": [[str, ...]],   # table
     "total_rows": int | None,                                         # table
     "text": str, "truncated": bool,                                   # value, none (why)
     "src": "data:image/...;base64,...",                               # image
     "html": str,                                                      # html (sandboxed)
     "files": [{"name": str, "size": int}],                            # files
     "keys": [str, ...] | None, "total_keys": int | None,              # partitions
     "versions": [{"id": str, "time": str, "digest": str, "size": int | None,
                   "metrics": {name: number}}, ...] | None}            # versioned

Events (`Source.events(cursor)`): the lines builds write, as `events.py` lists them.
"""
from __future__ import annotations

from typing import Any, Protocol


class NotFound(Exception):
    """No such node or dataset (the page asked for a name the pipeline lacks)."""


class Busy(Exception):
    """A build started from the page is still running; the message says so."""


class Unavailable(Exception):
    """The pipeline cannot answer now (its Datafile does not load, its state cannot be
    read); the message says why, as datamake would print it."""


class Source(Protocol):
    """The pipeline as the page sees it. Methods may be called from several threads."""

    title: str

    def graph(self) -> dict[str, Any]:
        """The Graph document: every node with its status now (a dry run)."""

    def panel(self, node: str) -> dict[str, Any]:
        """The Panel document of one node. Raises NotFound, Unavailable."""

    def preview(self, name: str, key: str | None = None,
                version: str | None = None) -> dict[str, Any]:
        """The Preview document of a dataset (a partition `key`, a saved `version`).
        Raises NotFound, Unavailable."""

    def build(self, target: str | None) -> dict[str, Any]:
        """Start a build of `target` (None: the default target) in the background,
        through the same engine and lock as any build; returns {"target": ..., "pid":
        ...}. Raises NotFound for an unknown target, Busy while the page's last build
        is still running, Unavailable when the Datafile does not load."""

    def follow(self) -> None:
        """Start (or keep) telling builds on this Datafile that a page follows them;
        called once a second while the server runs."""

    def unfollow(self) -> None:
        """Stop: builds no longer write events for the page."""

    def events(self, cursor: Any) -> tuple[list[dict[str, Any]], Any]:
        """The events builds wrote since `cursor` (None: from now on), and the next
        cursor."""
