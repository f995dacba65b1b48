"""The page without a server: `--dag --format html` (the page with every panel's and
preview's data inlined: status as of now, no builds, no live updates) and `--dag
--format svg` (a picture for a README or a pull request, laid out here in Python: no
browser, no JavaScript).

The SVG layout is a small layered (Sugiyama) layout: ranks by longest path (a source or
parameter right before its first reader), long edges through dummy points, a few sweeps
of barycentre ordering to uncross edges, then each node moved towards its neighbours'
height without overlapping the others of its rank.
"""
from __future__ import annotations

import html
import time
from typing import Any

from . import page
from .api import NotFound, Source, Unavailable

COLORS = {  # fill, stroke: as the page's style.css
    "fresh": ("#d3f2dc", "#2f9e5a"), "cached": ("#d2eef2", "#2a8f9c"),
    "stale": ("#ffe2bf", "#d9821e"), "running": ("#cfe2ff", "#2f6fd6"),
    "failed": ("#ffd3d3", "#cc3333"), "missing": ("#ffffff", "#cc3333"),
    "source": ("#eef2f8", "#7d8ca3"), "param": ("#f4f4f4", "#9a9a9a"),
    "alias": ("#ffffff", "#8a8a8a"),
}
SIZES = {"rule": (196, 46), "dataset": (176, 42), "param": (156, 40), "alias": (150, 40)}
RANK_GAP = 56
NODE_GAP = 14
HUB = 5  # a parameter read by more rules than this is drawn without its edges


def html_page(source: Source) -> str:
    """The whole page in one file, with every panel and preview it can show."""
    graph = source.graph()
    panels: dict[str, Any] = {}
    previews: dict[str, Any] = {}
    for n in graph["nodes"]:
        try:
            doc = panels[n["id"]] = source.panel(n["id"])
        except (NotFound, Unavailable):
            continue
        for d in doc["inputs"] + doc["outputs"]:
            if d["preview"] and d["name"] not in previews:
                try:
                    previews[d["name"]] = source.preview(d["name"])
                except (NotFound, Unavailable):
                    pass
    data = {"graph": graph, "panels": panels, "previews": previews, "taken": time.time()}
    return page.standalone(graph["title"], data)


# -- the SVG picture -------------------------------------------------------------------


def svg_picture(source: Source) -> str:
    graph = source.graph()
    nodes = {n["id"]: dict(n) for n in graph["nodes"]}
    edges = [(e["from"], e["to"]) for e in graph["edges"]
             if e["from"] in nodes and e["to"] in nodes and e["from"] != e["to"]]
    # A parameter that many rules read would tie the whole picture to itself (as on the
    # page): it stands alone, saying how many rules read it.
    readers: dict[str, int] = {}
    for a, _ in edges:
        if nodes[a]["kind"] == "param":
            readers[a] = readers.get(a, 0) + 1
    hubs = {p for p, n in readers.items() if n > HUB}
    for p in hubs:
        nodes[p]["detail"] = f"{nodes[p].get('detail') or ''} · read by {readers[p]} rules"
    edges = [(a, b) for a, b in edges if a not in hubs]
    sizes = {i: SIZES.get(n["kind"], SIZES["rule"]) for i, n in nodes.items()}
    pos, routes, width, height = layout(list(nodes), edges, sizes)
    top = 58
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height + top}" '
           f'viewBox="0 0 {width} {height + top}" font-family="system-ui, -apple-system, '
           f'Segoe UI, sans-serif">',
           "<style>.e{fill:none;stroke:#9aa4b2;stroke-width:1.3}.t{font-size:13px;"
           "font-weight:600;fill:#1f2328}.s{font-size:11px;fill:#4b5563}"
           ".h{font-size:15px;font-weight:700;fill:#1f2328}.l{font-size:11px;fill:#4b5563}</style>",
           '<defs><marker id="a" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
           'markerHeight="7" orient="auto-start-reverse"><path d="M0,0L10,5L0,10z" '
           'fill="#9aa4b2"/></marker></defs>',
           '<rect width="100%" height="100%" fill="#fbfbfc"/>',
           f'<text class="h" x="16" y="22">{_x(graph["title"])}</text>']
    x = 16
    for status, (fill, stroke) in COLORS.items():
        if status == "running":
            continue
        out.append(f'<rect x="{x}" y="34" width="14" height="10" rx="3" fill="{fill}" '
                   f'stroke="{stroke}" stroke-width="1.5"/>'
                   f'<text class="l" x="{x + 18}" y="43">{status}</text>')
        x += 26 + 7 * len(status)
    if graph.get("error"):
        for i, line in enumerate(graph["error"].splitlines()[:20]):
            out.append(f'<text class="s" x="16" y="{top + 16 + 14 * i}" '
                       f'font-family="monospace">{_x(line)}</text>')
    out.append(f'<g transform="translate(0,{top})">')
    for (a, b), pts in routes.items():
        out.append(f'<path class="e" d="{_path(pts)}" marker-end="url(#a)"/>')
    for nid, (cx, cy) in pos.items():
        n = nodes[nid]
        w, h = sizes[nid]
        fill, stroke = COLORS.get(n["status"], COLORS["source"])
        rx = {"rule": 4, "dataset": 16, "param": 2, "alias": 4}.get(n["kind"], 4)
        dash = ' stroke-dasharray="4 3"' if n["kind"] in ("param", "alias") or n["status"] == "missing" else ""
        chars = (w - 16) // 7
        tip = n["id"] + (f"\n{n['description']}" if n.get("description") else "")
        out.append(f'<g data-id="{_x(nid)}"><title>{_x(tip)}</title>'
                   f'<rect x="{cx - w / 2:.1f}" y="{cy - h / 2:.1f}" width="{w}" height="{h}" '
                   f'rx="{rx}" fill="{fill}" stroke="{stroke}" stroke-width="1.6"{dash}/>'
                   f'<text class="t" x="{cx - w / 2 + 9:.1f}" y="{cy - h / 2 + 17:.1f}">'
                   f'{_x(_short(n["label"], chars))}</text>'
                   f'<text class="s" x="{cx - w / 2 + 9:.1f}" y="{cy + h / 2 - 8:.1f}">'
                   f'{_x(_short(_sub(n), chars + 4))}</text></g>')
    out.append("</g></svg>")
    return "\n".join(out) + "\n"


def _sub(n: dict[str, Any]) -> str:
    s = n["status"]
    if n["kind"] in ("param", "dataset"):
        return ("missing · " if s == "missing" else "") + (n.get("detail") or "")
    if s in ("stale", "failed") and n["reasons"]:
        return f"{s} · {', '.join(n['reasons'])}"
    if n["kind"] == "rule" and len(n["outputs"]) > 1:
        return f"{s} · +{len(n['outputs']) - 1} outputs"
    return s


def _x(text: str) -> str:
    return html.escape(str(text), quote=True)


def _short(text: str, n: int) -> str:
    return text if len(text) <= n else text[: max(1, n - 1)] + "…"


def _path(pts: list[tuple[float, float]]) -> str:
    d = f"M{pts[0][0]:.1f},{pts[0][1]:.1f}"
    for (x1, y1), (x2, y2) in zip(pts, pts[1:]):
        dx = (x2 - x1) / 2
        d += f" C{x1 + dx:.1f},{y1:.1f} {x2 - dx:.1f},{y2:.1f} {x2:.1f},{y2:.1f}"
    return d


def layout(ids: list[str], edges: list[tuple[str, str]],
           sizes: dict[str, tuple[int, int]]) -> tuple[dict[str, tuple[float, float]],
                                                       dict[tuple[str, str], list[tuple[float, float]]],
                                                       int, int]:
    """Centres of the nodes, each edge's points (from the right side of its first node
    to the left side of its last), and the picture's width and height."""
    preds: dict[str, list[str]] = {i: [] for i in ids}
    succs: dict[str, list[str]] = {i: [] for i in ids}
    for a, b in dict.fromkeys(edges):
        preds[b].append(a)
        succs[a].append(b)
    rank: dict[str, int] = {}
    order = _topological(ids, preds, succs)
    for n in order:
        rank[n] = 1 + max((rank[p] for p in preds[n]), default=-1)
    for n in order:  # a source or parameter sits just before its first reader
        if not preds[n] and succs[n]:
            rank[n] = max(0, min(rank[s] for s in succs[n]) - 1)
    # Long edges go through one dummy point per rank they cross.
    up: dict[str, list[str]] = {i: [] for i in ids}
    down: dict[str, list[str]] = {i: [] for i in ids}
    chains: dict[tuple[str, str], list[str]] = {}
    height_of = dict(sizes)
    for a, b in dict.fromkeys(edges):
        chain = [a]
        for r in range(rank[a] + 1, rank[b]):
            d = f"\0{a}\0{b}\0{r}"
            rank[d] = r
            height_of[d] = (0, 6)
            up[d], down[d] = [], []
            chain.append(d)
        chain.append(b)
        for u, v in zip(chain, chain[1:]):
            down[u].append(v)
            up[v].append(u)
        chains[(a, b)] = chain
    layers: list[list[str]] = [[] for _ in range(max(rank.values(), default=-1) + 1)]
    seen: set[str] = set()

    def visit(n: str) -> None:  # depth-first from the sources: related nodes start close
        if n in seen:
            return
        seen.add(n)
        layers[rank[n]].append(n)
        for m in down[n]:
            visit(m)

    for n in order:
        if not up[n]:
            visit(n)
    for n in rank:
        if n not in seen:
            visit(n)
    index = {n: i for layer in layers for i, n in enumerate(layer)}
    for sweep in range(8):
        rng = range(1, len(layers)) if sweep % 2 == 0 else range(len(layers) - 2, -1, -1)
        for r in rng:
            near = up if sweep % 2 == 0 else down

            def key(n: str) -> float:
                ns = near[n]
                return sum(index[m] for m in ns) / len(ns) if ns else index[n]

            layers[r].sort(key=key)
            for i, n in enumerate(layers[r]):
                index[n] = i
    # Heights: stacked, then each node drawn towards its neighbours, keeping the order.
    y: dict[str, float] = {}
    for layer in layers:
        cur = 0.0
        for n in layer:
            h = height_of[n][1]
            y[n] = cur + h / 2
            cur += h + NODE_GAP
    for sweep in range(6):
        rng = range(len(layers)) if sweep % 2 == 0 else range(len(layers) - 1, -1, -1)
        for r in rng:
            layer = layers[r]
            want = []
            for n in layer:
                ns = up[n] + down[n]
                want.append(sum(y[m] for m in ns) / len(ns) if ns else y[n])
            for n, v in zip(layer, _spaced(want, [height_of[n][1] for n in layer])):
                y[n] = v
    margin = 20
    low = min((y[n] - height_of[n][1] / 2 for n in y), default=0)
    for n in y:
        y[n] += margin - low
    widths = [max((height_of[n][0] for n in layer), default=0) for layer in layers]
    xs, cur = [], float(margin)
    for w in widths:
        xs.append(cur + w / 2)
        cur += w + RANK_GAP
    pos = {n: (xs[rank[n]], y[n]) for n in ids}
    routes = {}
    for (a, b), chain in chains.items():
        pts = [(xs[rank[a]] + sizes[a][0] / 2, y[a])]
        pts += [(xs[rank[d]], y[d]) for d in chain[1:-1]]
        pts.append((xs[rank[b]] - sizes[b][0] / 2, y[b]))
        routes[(a, b)] = pts
    width = int(cur - RANK_GAP + margin) if layers else 2 * margin
    height = int(max((y[n] + height_of[n][1] / 2 for n in y), default=0) + margin)
    return pos, routes, width, height


def _spaced(want: list[float], heights: list[float]) -> list[float]:
    """The positions closest to `want` (least squares) that keep the order and leave
    NODE_GAP between neighbours: an isotonic regression (pool adjacent violators) of
    the wanted positions less each one's minimum offset from the first."""
    offset = [0.0]
    for a, b in zip(heights, heights[1:]):
        offset.append(offset[-1] + (a + b) / 2 + NODE_GAP)
    blocks: list[list[float]] = []  # [mean, count]
    for w, c in zip(want, offset):
        blocks.append([w - c, 1])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            m2, n2 = blocks.pop()
            m1, n1 = blocks.pop()
            blocks.append([(m1 * n1 + m2 * n2) / (n1 + n2), n1 + n2])
    out: list[float] = []
    for mean, count in blocks:
        out.extend([mean] * int(count))
    return [z + c for z, c in zip(out, offset)]


def _topological(ids: list[str], preds: dict[str, list[str]],
                 succs: dict[str, list[str]]) -> list[str]:
    """Kahn's order, stable in `ids` order (the graph is a DAG: the Datafile's check
    refuses cycles)."""
    need = {n: len(set(preds[n])) for n in ids}
    ready = [n for n in ids if not need[n]]
    out: list[str] = []
    done: set[str] = set()
    while ready:
        n = ready.pop(0)
        out.append(n)
        done.add(n)
        for m in dict.fromkeys(succs[n]):
            need[m] -= 1
            if need[m] == 0:
                ready.append(m)
    out.extend(n for n in ids if n not in done)
    return out
