"""The pages beside a `versioned` report: an index of its versions (time, parameters,
input digests, metrics, links, metric trends) and comparison pages of two versions
(metrics with deltas, what changed, the two pages side by side).

Pure: it makes HTML from values; the build reads the versions and writes the pages
through the catalog. Every page is self-contained (inline style and SVG, no script
needed), and every name and value in it is escaped.

Where the pages go, relative to the folder of the report (`Layout`):
    report.html                              the report
    .versions/report.html/<version file>     its versions (see versions.py)
    report.versions.html                     the index
    .versions/report.html.compare/A..B.html  a comparison of versions A and B
so all links are relative and the folder can move (or be synced to S3) as a whole.
"""
from __future__ import annotations

import html
import posixpath
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence
from urllib.parse import quote

from .report import BuildContext, _fmt, json_script, page, short
from .versions import Version, diff


@dataclass(frozen=True)
class VersionRecord:
    """One version and what it was built from: its metrics (name -> number), the
    parameters (name -> value) and the digests of its inputs (name -> digest)."""

    version: Version
    metrics: Mapping[str, Any] = field(default_factory=dict)
    params: Mapping[str, Any] = field(default_factory=dict)
    inputs: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Layout:
    """The relative paths of the pages of the report file `file_name` (e.g.
    `report.html`), from the report's folder."""

    file_name: str

    @property
    def index(self) -> str:
        stem = self.file_name.rsplit(".", 1)[0] if "." in self.file_name else self.file_name
        return f"{stem}.versions.html"

    def version(self, v: Version) -> str:
        return f".versions/{self.file_name}/{posixpath.basename(v.url.rstrip('/'))}"

    def comparison(self, a: Version, b: Version) -> str:
        return f".versions/{self.file_name}.compare/{a.id}..{b.id}.html"

    def link(self, from_page: str, to: str) -> str:
        """`to` as an href from the page at `from_page` (both from the report folder)."""
        rel = posixpath.relpath(to, posixpath.dirname(from_page) or ".")
        return quote(rel, safe="/.-_~")


def compare(a: VersionRecord, b: VersionRecord) -> dict[str, Any]:
    """What changed from `a` to `b`, as data (for `--diff --json`): metrics with their
    change (versions.diff), and the parameters and inputs that differ."""
    return {"from": a.version.id, "to": b.version.id,
            "metrics": diff(dict(a.metrics), dict(b.metrics)),
            "params": differing(a.params, b.params), "inputs": differing(a.inputs, b.inputs)}


_MISSING = object()


def differing(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The keys whose values differ between two mappings (parameters, input digests),
    each with its value before and after (None where it was absent)."""
    out = {}
    for k in sorted(set(before) | set(after), key=str):
        x, y = before.get(k, _MISSING), after.get(k, _MISSING)
        if x is _MISSING or y is _MISSING or x != y:
            out[str(k)] = {"before": None if x is _MISSING else x,
                           "after": None if y is _MISSING else y}
    return out


def pages(file_name: str, records: Sequence[VersionRecord], *,
          context: BuildContext | None = None) -> dict[str, str]:
    """The index and the comparison of each version with the one before it:
    {path relative to the report's folder: page}. `records` oldest first."""
    lay = Layout(file_name)
    out = {lay.index: index_page(file_name, records, context=context)}
    for a, b in zip(records, records[1:]):
        out[lay.comparison(a.version, b.version)] = comparison_page(file_name, a, b,
                                                                    context=context)
    return out


_CSS = """
table.versions td,table.versions th{vertical-align:top}
table.versions td.l,table.versions th.l{text-align:left}
.changed{background:#fef3c7}
.up{color:#047857}.down{color:#b91c1c}
.trends{display:flex;flex-wrap:wrap;gap:1rem}
.trend{border:1px solid #e5e7eb;border-radius:6px;padding:.3rem .6rem}
.trend .name{font-size:.85rem;color:#374151}
.side{display:flex;gap:1rem;margin-top:1rem}.side>div{flex:1;min-width:0}
.side iframe{width:100%;height:80vh;border:1px solid #e5e7eb;border-radius:6px}
code.digest{font-size:.8rem}
ul.kv{list-style:none;padding:0;margin:0;text-align:left}
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _when(v: Version) -> str:
    return v.time.strftime("%Y-%m-%d %H:%M:%S UTC")


def _metric_names(records: Sequence[VersionRecord]) -> list[str]:
    names: list[str] = []
    for r in records:
        for k in r.metrics:
            if str(k) not in names:
                names.append(str(k))
    return names


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v == v


def index_page(file_name: str, records: Sequence[VersionRecord], *,
               context: BuildContext | None = None) -> str:
    """The index of the versions in `records` (oldest first): trends, then a table
    of every version, newest first, with links to its page and to its comparison
    with the version before."""
    lay = Layout(file_name)
    here = lay.index
    names = _metric_names(records)
    body = [f'<p class="meta">{len(records)} version{"s" * (len(records) != 1)} of '
            f'<a href="{lay.link(here, file_name)}"><code>{_e(file_name)}</code></a>, '
            f"newest first.</p>"]
    trends = [_trend(n, records) for n in names]
    if any(trends):
        body.append('<h2 id="trends">Metrics across versions</h2><div class="trends">'
                    + "".join(t for t in trends if t) + "</div>")
    head = ("<tr><th class=l>version</th><th class=l>built</th><th class=l>parameters</th>"
            "<th class=l>inputs</th>" + "".join(f"<th>{_e(n)}</th>" for n in names)
            + "<th class=l>compare</th></tr>")
    rows = []
    for i in range(len(records) - 1, -1, -1):
        r, prev = records[i], records[i - 1] if i else None
        v = r.version
        link = lay.link(here, lay.version(v))
        cells = [f'<td class=l><a href="{link}"><code>{_e(v.id)}</code></a></td>',
                 f"<td class=l>{_e(_when(v))}</td>",
                 f"<td class=l>{_kv(r.params, prev.params if prev else None)}</td>",
                 f"<td class=l>{_kv(r.inputs, prev.inputs if prev else None, digest=True)}</td>"]
        for n in names:
            value = r.metrics.get(n)
            before = prev.metrics.get(n) if prev else None
            cells.append(f"<td>{_e(_fmt(value)) if value is not None else ''}"
                         f"{_delta(before, value)}</td>")
        if prev:
            cmp_link = lay.link(here, lay.comparison(prev.version, v))
            cells.append(f'<td class=l><a href="{cmp_link}">with {_e(prev.version.id)}</a></td>')
        else:
            cells.append("<td class=l></td>")
        rows.append(f'<tr id="v-{_e(v.id)}">' + "".join(cells) + "</tr>")
    body.append('<h2 id="versions">Versions</h2><div class="table"><table class="versions">'
                f"<thead>{head}</thead><tbody>{''.join(rows)}</tbody></table></div>")
    body.append(json_script("datamake-versions", [_record_json(r, lay, here) for r in records]))
    return page(f"{file_name}: versions", "".join(body), context=context, css=_CSS)


def comparison_page(file_name: str, a: VersionRecord, b: VersionRecord, *,
                    context: BuildContext | None = None) -> str:
    """Version `a` against version `b`: the metrics with their change, the parameters
    and inputs that differ, and the two pages side by side. Its links are relative to
    where `Layout.comparison(a, b)` puts it."""
    lay = Layout(file_name)
    here = lay.comparison(a.version, b.version)
    c = compare(a, b)
    body = [f'<p class="meta"><a href="{lay.link(here, lay.index)}">all versions of '
            f"<code>{_e(file_name)}</code></a></p>"]
    rows = []
    for name, d in c["metrics"].items():
        rel = "" if d["relative"] is None else f" ({d['relative']:+.1%})"
        change = "" if d["change"] is None else f"{d['change']:+.4g}{rel}"
        cls = "" if not d["change"] else (' class="up"' if d["change"] > 0 else ' class="down"')
        before = "" if d["before"] is None else _fmt(d["before"])
        after = "" if d["after"] is None else _fmt(d["after"])
        rows.append(f"<tr><th class=l>{_e(name)}</th><td>{_e(before)}</td>"
                    f"<td>{_e(after)}</td><td{cls}>{_e(change)}</td></tr>")
    ids = f"<th>{_e(a.version.id)}</th><th>{_e(b.version.id)}</th>"
    body.append('<h2 id="metrics">Metrics</h2>' + (
        f'<table class="versions"><thead><tr><th class=l>metric</th>{ids}<th>change</th></tr>'
        f"</thead><tbody>{''.join(rows)}</tbody></table>" if rows else
        '<p class="meta">no metrics in either version</p>'))
    for key, title in (("params", "Parameters"), ("inputs", "Inputs")):
        changed = c[key]
        if not changed:
            body.append(f'<h2 id="{key}">{title}</h2><p class="meta">the same in both</p>')
            continue
        fmt = (lambda x: f'<code class="digest">{_e(x)}</code>' if x is not None else "") \
            if key == "inputs" else (lambda x: _e(short(x)) if x is not None else "<i>none</i>")
        trs = "".join(f"<tr><th class=l>{_e(k)}</th><td class=l>{fmt(d['before'])}</td>"
                      f"<td class=l>{fmt(d['after'])}</td></tr>" for k, d in changed.items())
        body.append(f'<h2 id="{key}">{title} that changed</h2><table class="versions"><thead>'
                    f"<tr><th class=l>name</th>{ids}</tr></thead><tbody>{trs}</tbody></table>")
    frames = []
    for r in (a, b):
        src = lay.link(here, lay.version(r.version))
        frames.append(f'<div><h3><a href="{src}">{_e(r.version.id)}</a> '
                      f'<span class="meta">{_e(_when(r.version))}</span></h3>'
                      f'<iframe src="{src}" title="version {_e(r.version.id)}" loading="lazy" '
                      f'sandbox="allow-scripts"></iframe></div>')
    body.append('<h2 id="pages">The two pages</h2><div class="side">' + "".join(frames) + "</div>")
    body.append(json_script("datamake-comparison", c))
    return page(f"{file_name}: {a.version.id} \u2192 {b.version.id}", "".join(body),
                context=context, css=_CSS)


def _record_json(r: VersionRecord, lay: Layout, here: str) -> dict[str, Any]:
    v = r.version
    return {"id": v.id, "digest": v.digest, "sig": v.sig, "size": v.size,
            "href": lay.link(here, lay.version(v)), "metrics": dict(r.metrics),
            "params": dict(r.params), "inputs": dict(r.inputs)}


def _kv(values: Mapping[str, Any], before: Mapping[str, Any] | None, digest: bool = False) -> str:
    if not values:
        return ""
    items = []
    for k in sorted(values, key=str):
        v = values[k]
        changed = before is not None and (k not in before or before[k] != v)
        shown = f'<code class="digest" title="{_e(v)}">{_e(str(v)[:12])}</code>' if digest \
            else _e(short(v, 60))
        cls = ' class="changed"' if changed else ""
        items.append(f"<li{cls}>{_e(k)}: {shown}</li>")
    return f'<ul class="kv">{"".join(items)}</ul>'


def _delta(before: Any, after: Any) -> str:
    if not (_number(before) and _number(after)) or before == after:
        return ""
    change = after - before
    cls = "up" if change > 0 else "down"
    return f' <span class="{cls}">({change:+.3g})</span>'


def _trend(name: str, records: Sequence[VersionRecord]) -> str:
    """A small SVG line of one metric across the versions (oldest on the left); each
    point says its version and value when pointed at."""
    points = [(i, r.metrics.get(name), r.version.id) for i, r in enumerate(records)]
    points = [(i, float(v), vid) for i, v, vid in points if _number(v)]
    if not points:
        return ""
    w, h, pad = 260, 90, 8
    lo, hi = min(v for _, v, _ in points), max(v for _, v, _ in points)
    span = (hi - lo) or 1.0
    n = max(len(records) - 1, 1)

    def xy(i: int, v: float) -> tuple[float, float]:
        return pad + (w - 2 * pad) * i / n, h - pad - (h - 2 * pad) * (v - lo) / span

    coords = [xy(i, v) for i, v, _ in points]
    line = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
    dots = "".join(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3.5" fill="#2563eb">'
                   f"<title>{_e(vid)}: {_e(_fmt(v))}</title></circle>"
                   for (x, y), (_, v, vid) in zip(coords, points))
    return (f'<figure class="trend"><div class="name">{_e(name)} '
            f'<span class="meta">{_e(_fmt(lo))} \u2013 {_e(_fmt(hi))}</span></div>'
            f'<svg width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img" '
            f'aria-label="{_e(name)} across versions">'
            f'<polyline points="{line}" fill="none" stroke="#93c5fd" stroke-width="2"/>'
            f"{dots}</svg></figure>")
