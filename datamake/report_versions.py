"""What each version of a `versioned` report (html) or json dataset was built from, and
the pages beside a versioned report.

When a step saves a new version, its record is written beside the versions:
`.versions/<file name>.records/<version id>.json`, `{"params", "inputs", "metrics"}`
(the step's parameter values, its inputs' content digests, the version's metrics). For
an html dataset the index `<stem>.versions.html` is then written again beside the
report, and the comparison of each version with the one before it where it is missing
(see report_index for the pages and where they go). Like the versions, records travel
with the data (a folder, or a bucket prefix).

`--diff` reads two records (`records`); a version saved before records were kept has
its metrics, read from the version itself, and no parameters or inputs.
"""
from __future__ import annotations

import json
import posixpath
from typing import TYPE_CHECKING, Any, Mapping, Sequence

if TYPE_CHECKING:
    from .catalog import Catalog
    from .graph import Graph, RuleNode
    from .report_index import VersionRecord
    from .versions import Version

RECORDED = ("html", "json")  # the formats whose versions have metrics


def _file_name(cat: "Catalog", name: str) -> str:
    return cat.location(name).url.rstrip("/").rpartition("/")[2]


def _record_rel(file_name: str, vid: str) -> str:
    return f".versions/{file_name}.records/{vid}.json"


def saved(cat: "Catalog", graph: "Graph", values: Mapping[str, Any], node: "RuleNode",
          name: str, version: "Version", digests: Sequence[str | None] | None) -> None:
    """After `version` of dataset `name` was saved by the step of `node`, whose inputs
    had `digests`, with the parameter `values`: its record, and for a report the pages
    beside it. Raises CatalogError."""
    fmt = cat.format_of(name)
    if fmt not in RECORDED:
        return
    params = {p: values[p] for p in upstream_params(graph, node) if p in values}
    inputs = dict(zip(node.inputs, digests or ()))
    from .report import _jsonable
    from .versions import metrics_of

    try:
        metrics = metrics_of(cat.read_version(name, version.url), fmt)
    except ValueError:  # not JSON: no metrics
        metrics = {}
    record = {"params": {str(k): _jsonable(v) for k, v in params.items()},
              "inputs": {str(k): v for k, v in inputs.items() if v is not None},
              "metrics": metrics}
    file_name = _file_name(cat, name)
    cat.write_beside(name, _record_rel(file_name, version.id),
                     json.dumps(record, sort_keys=True, indent=1).encode())
    if fmt == "html":
        write_pages(cat, name)


def upstream_params(graph: "Graph", node: "RuleNode") -> list[str]:
    """The parameters a step's result depends on: its own and those of the rules that
    make its inputs, all the way up (an input pinned to a saved version is read as it
    is: the walk stops there)."""
    found: list[str] = []
    seen: set[str] = set()
    stack = [node]
    while stack:
        n = stack.pop()
        if n.name in seen:
            continue
        seen.add(n.name)
        found.extend(p for p in n.params if p not in found)
        for inp, pinned in zip(n.inputs, n.versions):
            producer = graph.producer.get(inp)
            if producer is not None and pinned is None:
                stack.append(graph.rules[producer])
    return sorted(found)


def records(cat: "Catalog", name: str, versions: Sequence["Version"]) -> list["VersionRecord"]:
    """The record of each of `versions` of dataset `name`."""
    from .report_index import VersionRecord
    from .versions import metrics_of

    file_name = _file_name(cat, name)
    fmt = cat.format_of(name)
    out = []
    for v in versions:
        data = _read_record(cat, name, _record_rel(file_name, v.id))
        if data is None:  # saved before records were kept: the metrics it carries
            try:
                metrics = metrics_of(cat.read_version(name, v.url), fmt) if fmt in RECORDED else {}
            except ValueError:
                metrics = {}
            out.append(VersionRecord(v, metrics))
        else:
            out.append(VersionRecord(v, data["metrics"], data["params"], data["inputs"]))
    return out


def _read_record(cat: "Catalog", name: str, rel: str) -> dict[str, Any] | None:
    raw = cat.read_beside(name, rel)
    if raw is None:
        return None
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    parts = {k: data.get(k) for k in ("params", "inputs", "metrics")}
    # A record is data read from storage: anything but the expected shape is dropped.
    return {k: v if isinstance(v, dict) else {} for k, v in parts.items()}


def write_pages(cat: "Catalog", name: str) -> None:
    """The index of the versions of report `name`, and the comparisons not yet written."""
    from .report_index import Layout, comparison_page, index_page

    file_name = _file_name(cat, name)
    lay = Layout(file_name)
    recs = records(cat, name, cat.versions(name))
    cat.write_beside(name, lay.index, index_page(file_name, recs).encode())
    if len(recs) < 2:
        return
    folder = posixpath.dirname(lay.comparison(recs[0].version, recs[1].version))
    have = cat.listed_beside(name, folder)
    for a, b in zip(recs, recs[1:]):
        rel = lay.comparison(a.version, b.version)
        if posixpath.basename(rel) not in have:
            cat.write_beside(name, rel, comparison_page(file_name, a, b).encode())
