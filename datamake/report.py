"""`datamake.Report`: a title, then sections of markdown, metrics, tables and figures,
rendered as one self-contained HTML file (images embedded, no network needed)."""
from __future__ import annotations

import base64
import html
import io
import json
import numbers
from typing import Any

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
"""


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


def _markdown(text: str) -> str:
    try:
        from markdown_it import MarkdownIt
    except ImportError:  # rich brings markdown-it-py; this is only a fallback
        return "<pre>" + html.escape(text) + "</pre>"
    return MarkdownIt("commonmark", {"html": False}).enable("table").render(text)


class Report:
    """A report built section by section; write it to an `html` dataset.

    ``r = Report("Spaceflights"); r.metric("r2", 0.93); r.figure(fig); r``
    """

    def __init__(self, title: str):
        self.title = title
        self.sections: list[tuple[str, Any]] = []
        self.metrics: dict[str, Any] = {}

    def text(self, markdown: str) -> "Report":
        """A section of markdown text."""
        self.sections.append(("text", markdown))
        return self

    def metric(self, name: str, value: Any) -> "Report":
        """A named number (kept machine-readable for `datamake --diff`)."""
        if hasattr(value, "item") and callable(value.item):
            value = value.item()  # numpy scalars
        self.metrics[name] = value
        self.sections.append(("metric", (name, value)))
        return self

    def table(self, frame: Any, title: str | None = None, max_rows: int = 50) -> "Report":
        """A pandas DataFrame (or anything with `to_html`), cut to `max_rows`."""
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

    def to_html(self) -> str:
        """The whole page: self-contained, with the metrics also embedded as JSON."""
        body: list[str] = []
        metrics: list[str] = []

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
                body.append(_markdown(payload))
            elif kind == "table":
                frame, title, max_rows = payload
                if title:
                    body.append(f"<h3>{html.escape(title)}</h3>")
                shown = frame.head(max_rows) if hasattr(frame, "head") else frame
                body.append('<div class="table">' + (shown.to_html(border=0) if hasattr(
                    shown, "to_html") else html.escape(str(shown))) + "</div>")
                if hasattr(frame, "__len__") and len(frame) > max_rows:
                    body.append(f'<p class="meta">first {max_rows} of {len(frame):,} rows</p>')
            elif kind == "figure":
                data, caption = payload
                cap = f"<figcaption>{html.escape(caption)}</figcaption>" if caption else ""
                body.append(f'<figure><img alt="{html.escape(caption or "figure")}" '
                            f'src="data:image/png;base64,{data}"/>{cap}</figure>')
        flush()
        metrics_json = json.dumps(self.metrics, default=str).replace("</", "<\\/")
        return (f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
                f'<meta name="generator" content="datamake">'
                f"<title>{html.escape(self.title)}</title><style>{_CSS}</style></head><body>"
                f"<h1>{html.escape(self.title)}</h1>"
                + "\n".join(body) +
                f'<script type="application/json" id="datamake-metrics">{metrics_json}</script>'
                "</body></html>\n")

    def _repr_html_(self) -> str:  # shows inline in Jupyter
        return self.to_html()
