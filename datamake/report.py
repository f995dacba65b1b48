"""`datamake.Report`: a title, then sections of markdown, metrics, tables, figures and
interactive charts, rendered as one self-contained HTML file (images and scripts
embedded, no network needed). Also the page frame other datamake pages share: the
build header (`BuildContext`), the embedded metrics and the style.

What a page embeds for machines, each in a `<script type="application/json">`:
- `datamake-metrics`: the metrics, read back by `--diff` and the versions index;
- `datamake-build`: what built the page (when the build said so), see `BuildContext`.
"""
from __future__ import annotations

import base64
import datetime as _dt
import functools
import html
import io
import json
import numbers
import re
from dataclasses import dataclass, field
from typing import Any, Mapping

# A table of contents is shown when a page has at least this many headings.
TOC_MIN_HEADINGS = 3

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;max-width:60rem;margin:2rem auto;
padding:0 1rem;color:#1d232a;line-height:1.5}
h1{border-bottom:2px solid #e5e7eb;padding-bottom:.3rem}
.meta{color:#6b7280;font-size:.9rem}
.metrics{display:flex;flex-wrap:wrap;gap:1rem;margin:1rem 0}
.metric{border:1px solid #e5e7eb;border-radius:8px;padding:.6rem 1rem;min-width:8rem}
.metric .name{color:#6b7280;font-size:.85rem}.metric .value{font-size:1.5rem;font-weight:600}
table{border-collapse:collapse;margin:1rem 0;font-size:.9rem}
th,td{border:1px solid #e5e7eb;padding:.25rem .6rem;text-align:right}
th{background:#f3f4f6} .table{overflow-x:auto} figure{margin:1rem 0} figure img{max-width:100%}
figcaption{color:#6b7280;font-size:.9rem}
.dm-build{color:#4b5563;font-size:.85rem;background:#f9fafb;border:1px solid #e5e7eb;
border-radius:6px;padding:.4rem .8rem;margin:-.5rem 0 1rem}
.dm-build code{font-size:.85rem}.dm-build dl{display:grid;grid-template-columns:auto 1fr;
gap:0 1rem;margin:.3rem 0}.dm-build dt{font-weight:600}.dm-build dd{margin:0;word-break:break-all}
nav.toc{border-left:3px solid #e5e7eb;padding:.2rem 1rem;margin:1rem 0;font-size:.9rem}
nav.toc ul{list-style:none;padding-left:0;margin:.2rem 0}
table.dm-sortable thead th{cursor:pointer;user-select:none}
table.dm-sortable thead th[aria-sort=ascending]::after{content:" \\25B2"}
table.dm-sortable thead th[aria-sort=descending]::after{content:" \\25BC"}
figure.chart .vega-embed{width:100%}
"""

# Click a header to sort by that column (numbers as numbers), again to reverse.
# Only rows on the page are sorted: a table cut to `max_rows` says so under it.
_SORT_JS = """
(function(){
function key(c){var t=(c?c.textContent:'').trim(),n=t.replace(/[,\\s%]/g,'');
return (n!==''&&isFinite(n))?{n:+n,t:t}:{n:null,t:t};}
function cmp(a,b){if(a.n!==null&&b.n!==null)return a.n-b.n;if(a.n!==null)return -1;
if(b.n!==null)return 1;return a.t.localeCompare(b.t);}
document.querySelectorAll('table.dm-sortable').forEach(function(table){
var rows=table.tHead?table.tHead.rows:[];if(!rows.length||!table.tBodies.length)return;
var head=rows[rows.length-1];
Array.prototype.forEach.call(head.cells,function(th,col){th.tabIndex=0;
function sort(){var asc=th.getAttribute('aria-sort')!=='ascending';
Array.prototype.forEach.call(head.cells,function(o){o.removeAttribute('aria-sort');});
th.setAttribute('aria-sort',asc?'ascending':'descending');
var body=table.tBodies[0],list=Array.prototype.slice.call(body.rows);
list=list.map(function(r,i){return {r:r,i:i,k:key(r.cells[col])};});
list.sort(function(x,y){var c=cmp(x.k,y.k);return (asc?c:-c)||x.i-y.i;});
list.forEach(function(x){body.appendChild(x.r);});}
th.addEventListener('click',sort);
th.addEventListener('keydown',function(e){if(e.key==='Enter'||e.key===' '){e.preventDefault();sort();}});
});});})();
"""

# Each chart is a `<div>` followed by its spec in a JSON script element. vega-embed
# options: no link to the online editor, SVG so the page prints well.
_CHART_JS = """
(function(){
document.querySelectorAll('script[type="application/json"][data-dm-chart]').forEach(function(s){
var el=s.previousElementSibling;
vegaEmbed(el,JSON.parse(s.textContent),{renderer:'svg',
actions:{export:true,source:false,compiled:false,editor:false}})
.catch(function(e){el.textContent='This chart could not be drawn: '+e;});});})();
"""

_VENDOR = ("vega/vega.min.js", "vega-lite/vega-lite.min.js", "vega-embed/vega-embed.min.js")


@dataclass(frozen=True)
class BuildContext:
    """What built a page, for its header: the build passes one to `Report.to_html`.

    `built_at` is a timezone-aware time (UTC is shown), or None to leave the time out:
    a page with its build time in it is never byte-identical to the page before, so an
    unchanged report would count as a change (a new version, downstream reruns).
    `params` are the parameter values the step was built with; `signature` is the
    step's signature."""

    target: str
    built_at: _dt.datetime | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    datamake_version: str = ""
    signature: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {"target": self.target,
                "built_at": _utc(self.built_at).isoformat() if self.built_at else None,
                "params": {str(k): _jsonable(v) for k, v in self.params.items()},
                "datamake_version": self.datamake_version or _version(),
                "signature": self.signature}


def _version() -> str:
    from . import __version__

    return __version__


def _utc(t: _dt.datetime) -> _dt.datetime:
    if t.tzinfo is None:  # a naive time is taken as local time, as Python does
        t = t.astimezone()
    return t.astimezone(_dt.timezone.utc)


def _jsonable(v: Any) -> Any:
    """`v` as JSON can hold it: numbers, strings, lists and dicts as they are,
    anything else as its text."""
    try:
        return json.loads(json.dumps(v, default=str))
    except (TypeError, ValueError):
        return str(v)


def short(value: Any, limit: int = 120) -> str:
    """A parameter value as a person reads it, cut to `limit` characters."""
    text = value if isinstance(value, str) else json.dumps(_jsonable(value))
    return text if len(text) <= limit else text[:limit - 1] + "\u2026"


def json_script(element_id: str, obj: Any, nan: bool = False, **attrs: str) -> str:
    """`obj` as JSON in a `<script type="application/json">`, safe inside HTML: `<`,
    `>` and `&` are written as JSON escapes, so no text in it can end the element.
    NaN and infinities become null (JavaScript's `JSON.parse` refuses them) unless
    `nan` is true."""
    text = json.dumps(obj if nan else _no_nan(obj), default=str)
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    extra = "".join(f' {k.replace("_", "-")}="{html.escape(v)}"' for k, v in attrs.items())
    ident = f' id="{html.escape(element_id)}"' if element_id else ""
    return f'<script type="application/json"{ident}{extra}>{text}</script>'


def _no_nan(obj: Any) -> Any:
    """NaN and infinities as null: JSON has no word for them and `JSON.parse` fails."""
    if isinstance(obj, float) and (obj != obj or obj in (float("inf"), float("-inf"))):
        return None
    if isinstance(obj, dict):
        return {k: _no_nan(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_no_nan(v) for v in obj]
    return obj


def build_header(context: BuildContext | None) -> str:
    """The line under a page's title saying what built it; empty without a context
    (a page rendered outside a build says nothing about a build)."""
    if context is None:
        return ""
    c = context.as_json()
    parts = [f"built by datamake {html.escape(c['datamake_version'])}",
             f"target <code>{html.escape(context.target)}</code>"]
    if context.built_at is not None:
        when = _utc(context.built_at).strftime("%Y-%m-%d %H:%M:%S UTC")
        parts.append(f'<time datetime="{html.escape(c["built_at"])}">{html.escape(when)}</time>')
    if context.signature:
        parts.append(f'signature <code title="{html.escape(context.signature)}">'
                     f"{html.escape(context.signature[:12])}</code>")
    params = ""
    if context.params:
        rows = "".join(f"<dt>{html.escape(str(k))}</dt><dd>{html.escape(short(v))}</dd>"
                       for k, v in sorted(context.params.items(), key=lambda kv: str(kv[0])))
        n = len(context.params)
        params = (f'<details class="dm-params"><summary>{n} parameter{"s" * (n != 1)}'
                  f"</summary><dl>{rows}</dl></details>")
    return ('<div class="dm-build">' + " \u00b7 ".join(parts) + params + "</div>"
            + json_script("datamake-build", c))


def page(title: str, body: str, *, context: BuildContext | None = None,
         metrics: Mapping[str, Any] | None = None, head: str = "", scripts: str = "",
         css: str = "") -> str:
    """A whole self-contained page: `body` under the title and the build header, the
    metrics embedded as JSON (`datamake-metrics`), then `scripts` (inline `<script>`
    elements, run once the page is there)."""
    return (f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="generator" content="datamake">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{html.escape(title)}</title><style>{_CSS}{css}</style>{head}</head><body>"
            f"<h1>{html.escape(title)}</h1>" + build_header(context) + body
            # NaN kept as Python writes it: `--diff` reads these with Python, not JS.
            + json_script("datamake-metrics", dict(metrics or {}), nan=True)
            + scripts + "</body></html>\n")


@functools.lru_cache(maxsize=None)
def vendored_js() -> str:
    """vega, vega-lite and vega-embed (see page-assets/vendor/VENDORED.md), as one inline
    `<script>` each. Their source-map comments are dropped: the maps are not shipped."""
    from importlib.resources import files

    out = []
    for rel in _VENDOR:
        text = (files("datamake") / "page-assets" / "vendor" / rel).read_text("utf-8")
        text = re.sub(r"\n//# sourceMappingURL=\S*\s*$", "\n", text)
        if "</script" in text.lower():  # would end the inline element early
            raise RuntimeError(f"vendored {rel} cannot be inlined: it contains `</script`")
        out.append(f"<script>{text}</script>")
    return "".join(out)


def chart_spec(chart: Any) -> dict[str, Any]:
    """A Vega or Vega-Lite spec from an Altair chart (anything with `to_dict`) or a dict.

    Raises TypeError for anything else or a spec JSON cannot hold, and ValueError when
    the spec loads data from a URL (a self-contained page cannot)."""
    if isinstance(chart, Mapping):
        spec: Any = dict(chart)
    elif hasattr(chart, "to_dict") and callable(chart.to_dict):
        spec = chart.to_dict()
    else:
        raise TypeError(f"Report.chart takes an Altair chart or a Vega-Lite spec (a dict), "
                        f"not `{type(chart).__name__}`")
    try:
        spec = json.loads(json.dumps(spec, default=_json_default))
    except (TypeError, ValueError) as e:
        raise TypeError(f"this chart's spec cannot be written as JSON: {e}") from None
    url = _data_url(spec)
    if url is not None:
        raise ValueError(f"this chart loads its data from `{url}`: a report is one "
                         f"self-contained file, so pass the data itself (e.g. a DataFrame to "
                         f"`alt.Chart`, with Altair's default data transformer)")
    return spec


def _json_default(v: Any) -> Any:
    if hasattr(v, "item") and callable(v.item):
        return v.item()  # numpy scalars
    if hasattr(v, "isoformat"):
        return v.isoformat()
    if hasattr(v, "tolist"):
        return v.tolist()
    raise TypeError(f"`{type(v).__name__}` is not JSON")


def _data_url(spec: Any, in_data: bool = False) -> str | None:
    """The first `url` a data source of the spec would fetch, if any (Vega-Lite's
    `data: {url}`, Vega's `data: [{name, url}]`, a lookup's `from: {data: {url}}`)."""
    if isinstance(spec, dict):
        if in_data and isinstance(spec.get("url"), str):
            return spec["url"]
        for k, v in spec.items():
            found = _data_url(v, k == "data")
            if found is not None:
                return found
    elif isinstance(spec, list):
        for v in spec:
            found = _data_url(v, in_data)
            if found is not None:
                return found
    return None


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, numbers.Integral):
        return f"{value:,}"
    if isinstance(value, numbers.Real):
        v = float(value)
        if abs(v) >= 1e4:
            return f"{v:,.0f}"
        if abs(v) >= 100:
            return f"{v:,.1f}"
        return f"{v:.4g}"
    return str(value)


class _Headings:
    """Ids for the headings of one page (unique, readable) and what the contents lists."""

    def __init__(self) -> None:
        self.found: list[tuple[int, str, str]] = []  # (level, id, text)
        # Ids the page frame uses itself: a heading never takes them.
        self._used: set[str] = {"datamake-metrics", "datamake-build", "dm-fold-all"}

    def add(self, level: int, text: str) -> str:
        base = re.sub(r"[^\w-]+", "-", text.lower(), flags=re.UNICODE).strip("-") or "section"
        ident, n = base, 1
        while ident in self._used:
            n += 1
            ident = f"{base}-{n}"
        self._used.add(ident)
        self.found.append((level, ident, text))
        return ident

    def toc(self) -> str:
        if len(self.found) < TOC_MIN_HEADINGS:
            return ""
        top = min(level for level, _, _ in self.found)
        # One flat list, indented by level: valid HTML whatever order the levels come in.
        items = "".join(f'<li style="margin-left:{level - top}rem"><a href="#{html.escape(ident)}">'
                        f"{html.escape(text)}</a></li>" for level, ident, text in self.found)
        return ('<nav class="toc" aria-label="Contents"><strong>Contents</strong>'
                f"<ul>{items}</ul></nav>")


def _markdown(text: str, headings: _Headings) -> str:
    try:
        from markdown_it import MarkdownIt
    except ImportError:  # rich brings markdown-it-py; this is only a fallback
        return "<pre>" + html.escape(text) + "</pre>"
    md = MarkdownIt("commonmark", {"html": False}).enable("table")
    tokens = md.parse(text)
    for i, tok in enumerate(tokens):
        if tok.type == "heading_open" and i + 1 < len(tokens):
            title = "".join(c.content for c in (tokens[i + 1].children or [])
                            if c.type in ("text", "code_inline")) or tokens[i + 1].content
            tok.attrSet("id", headings.add(int(tok.tag[1]), title))
    return md.renderer.render(tokens, md.options, {})


class Report:
    """A report built section by section; write it to an `html` dataset.

    ``r = Report("Spaceflights"); r.section("Model"); r.metric("r2", 0.93); r.figure(fig); r``
    """

    def __init__(self, title: str):
        self.title = title
        self.sections: list[tuple[str, Any]] = []
        self.metrics: dict[str, Any] = {}

    def text(self, markdown: str) -> "Report":
        """A section of markdown text (its headings join the table of contents)."""
        self.sections.append(("text", markdown))
        return self

    def section(self, title: str) -> "Report":
        """A heading that starts a new part of the page; listed in the table of
        contents, shown once the page has three headings or more."""
        self.sections.append(("section", str(title)))
        return self

    def metric(self, name: str, value: Any) -> "Report":
        """A named number (kept machine-readable for `datamake --diff`)."""
        if hasattr(value, "item") and callable(value.item):
            value = value.item()  # numpy scalars
        self.metrics[name] = value
        self.sections.append(("metric", (name, value)))
        return self

    def table(self, frame: Any, title: str | None = None, max_rows: int = 50) -> "Report":
        """A pandas DataFrame (or anything with `to_html`), cut to `max_rows`. A
        DataFrame's columns sort when their header is clicked."""
        self.sections.append(("table", (frame, title, max_rows)))
        return self

    def figure(self, fig: Any, caption: str | None = None) -> "Report":
        """A matplotlib Figure, embedded as PNG."""
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
        try:
            import matplotlib.pyplot as plt

            plt.close(fig)
        except Exception:  # not pyplot-managed: nothing to close
            pass
        self.sections.append(("figure", (base64.b64encode(buf.getvalue()).decode(), caption)))
        return self

    def chart(self, chart: Any, caption: str | None = None) -> "Report":
        """An interactive chart (tooltips, zoom, selections as its spec says): an Altair
        chart or a Vega / Vega-Lite spec as a dict. Drawn in the page by the Vega
        libraries, which are embedded in pages that have a chart (about 850 KB), so the
        page still works offline. Its data must be in the spec, not behind a URL.

        Raises TypeError (not a chart, or not JSON) or ValueError (data from a URL)."""
        self.sections.append(("chart", (chart_spec(chart), caption)))
        return self

    def to_html(self, context: BuildContext | None = None) -> str:
        """The whole page: self-contained, with the metrics also embedded as JSON.

        `context` says what built it (target, time, parameters, datamake version),
        shown under the title; without it the page says nothing about a build."""
        body: list[str] = []
        metrics: list[str] = []
        headings = _Headings()
        charts = tables = 0

        def flush() -> None:
            if metrics:
                body.append('<div class="metrics">' + "".join(metrics) + "</div>")
                metrics.clear()

        for kind, payload in self.sections:
            if kind == "metric":
                name, value = payload
                metrics.append(f'<div class="metric"><div class="name">{html.escape(name)}</div>'
                               f'<div class="value">{html.escape(_fmt(value))}</div></div>')
                continue
            flush()
            if kind == "text":
                body.append(_markdown(payload, headings))
            elif kind == "section":
                ident = headings.add(2, payload)
                body.append(f'<h2 id="{html.escape(ident)}">{html.escape(payload)}</h2>')
            elif kind == "table":
                frame, title, max_rows = payload
                if title:
                    body.append(f"<h3>{html.escape(title)}</h3>")
                shown = frame.head(max_rows) if hasattr(frame, "head") else frame
                table_html, sortable = _table_html(shown)
                tables += sortable
                body.append('<div class="table">' + table_html + "</div>")
                if hasattr(frame, "__len__") and len(frame) > max_rows:
                    note = "; sorting orders these rows" if sortable else ""
                    body.append(f'<p class="meta">first {max_rows} of {len(frame):,} rows'
                                f"{note}</p>")
            elif kind == "figure":
                data, caption = payload
                cap = f"<figcaption>{html.escape(caption)}</figcaption>" if caption else ""
                body.append(f'<figure><img alt="{html.escape(caption or "figure")}" '
                            f'src="data:image/png;base64,{data}"/>{cap}</figure>')
            elif kind == "chart":
                spec, caption = payload
                charts += 1
                cap = f"<figcaption>{html.escape(caption)}</figcaption>" if caption else ""
                body.append('<figure class="chart"><div class="dm-chart"></div>'
                            + json_script("", spec, data_dm_chart="") + cap + "</figure>")
        flush()
        scripts = ""
        if tables:
            scripts += f"<script>{_SORT_JS}</script>"
        if charts:  # the libraries only where a chart needs them: other pages stay small
            scripts += vendored_js() + f"<script>{_CHART_JS}</script>"
        return page(self.title, headings.toc() + "\n".join(body), context=context,
                    metrics=self.metrics, scripts=scripts)

    def _repr_html_(self) -> str:  # shows inline in Jupyter
        return self.to_html()


def _table_html(shown: Any) -> tuple[str, bool]:
    """A table's HTML and whether it sorts (a pandas-like `to_html` that takes classes)."""
    if not hasattr(shown, "to_html"):
        return html.escape(str(shown)), False
    try:
        return shown.to_html(border=0, classes="dm-sortable"), True
    except TypeError:  # e.g. a Styler: its own to_html, as it is
        return shown.to_html(), False

