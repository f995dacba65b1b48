"""`--dag`: the pipeline graph as dot, mermaid, JSON or a self-contained HTML page,
coloured by each step's status in a dry run."""
from __future__ import annotations

import html
import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .executor import BuildResult
    from .project import Project

COLORS = {"fresh": "#9be29b", "stale": "#ffb366", "upstream": "#ffe680",
          "failed": "#ff8080", "source": "#dfe8f7", "param": "#eeeeee", "missing": "#ff8080"}


def graph_data(project: "Project", result: "BuildResult") -> dict[str, Any]:
    """Nodes (steps, partitions, source datasets, parameters) and edges, with statuses.
    A pattern rule is one node per partition, named `rule[key]`."""
    g = project.graph
    nodes: dict[str, dict[str, Any]] = {}
    edges: list[dict[str, str]] = []
    steps_of: dict[str, list[str]] = {}
    for step in result.outcomes:
        steps_of.setdefault(step.split("[", 1)[0], []).append(step)

    def source(name: str, key: str | None) -> str:
        nid = f"{name}[{key}]" if key else name
        if nid not in nodes:
            exists = project.catalog.exists(name, key) if key or not project.catalog.is_partitioned(name) \
                else bool(project.catalog.partitions(name))
            nodes[nid] = {"id": nid, "kind": "dataset", "status": "source" if exists else "missing",
                          "description": None}
        return nid

    def producers(name: str, key: str | None) -> list[str]:
        prod = g.producer.get(name)
        if prod is None:
            return [source(name, key)]
        if g.rules[prod].key:
            return [f"{prod}[{key}]"] if key else steps_of.get(prod, [])
        return [prod]

    def add(step: str, node: Any, key: str | None) -> None:
        o = result.outcomes[step]
        status = o.status
        if status == "planned":
            status = "upstream" if [r.code for r in o.reasons] == ["upstream"] else "stale"
        nodes[step] = {"id": step, "kind": "rule", "status": status,
                       "outputs": list(node.outputs), "description": g.docs.get(node.name),
                       "reasons": [r.code for r in o.reasons]}
        for inp, k in zip(node.inputs, node.keys):
            for src in producers(inp, key if k else None):
                edge = {"from": src, "to": step}
                if edge not in edges[-len(node.inputs) - 1:]:  # one edge per pair
                    edges.append(edge)
        for p in node.params:
            nodes.setdefault(p, {"id": p, "kind": "param", "status": "param",
                                 "description": repr(project.params[p])})
            edges.append({"from": p, "to": step})

    for name, node in g.rules.items():
        if node.key:
            for step in steps_of.get(name, []):
                add(step, node, step[len(name) + 1:-1])
        elif name in result.outcomes:
            add(name, node, None)
    return {"nodes": list(nodes.values()), "edges": edges}


def render_dag(project: "Project", result: "BuildResult", fmt: str) -> str:
    data = graph_data(project, result)
    if fmt == "json":
        return json.dumps(data, indent=2)
    if fmt == "mermaid":
        return _mermaid(data)
    if fmt == "html":
        return _html(project, data)
    return _dot(data)


def _label(n: dict[str, Any]) -> str:
    if n["kind"] == "rule" and len(n.get("outputs", [])) > 1:
        return "\\n".join(n["outputs"])
    return n["id"]


def _dot(data: dict[str, Any]) -> str:
    shapes = {"rule": "box", "dataset": "cylinder", "param": "note"}
    out = ["digraph datamake {", "  rankdir=LR;", "  node [style=filled, fontname=Helvetica];"]
    for n in data["nodes"]:
        tip = f', tooltip="{n["description"]}"' if n.get("description") else ""
        out.append(f'  "{n["id"]}" [label="{_label(n)}", shape={shapes[n["kind"]]}, '
                   f'fillcolor="{COLORS[n["status"]]}"{tip}];')
    for e in data["edges"]:
        out.append(f'  "{e["from"]}" -> "{e["to"]}";')
    out.append("}")
    return "\n".join(out)


def _mermaid(data: dict[str, Any]) -> str:
    # Mermaid ids are plain words, and some words (`end`) are its own: every node gets
    # `n<i>` as its id and its name as its label (`counts[isles]`, `ns.model`).
    ids = {n["id"]: f"n{i}" for i, n in enumerate(data["nodes"])}
    out = ["flowchart LR"]
    for status, color in COLORS.items():
        out.append(f"  classDef {status} fill:{color},stroke:#555")
    for n in data["nodes"]:
        label = _label(n).replace('"', "#quot;").replace("\\n", "<br/>")
        shape = {"rule": f'["{label}"]', "dataset": f'[("{label}")]',
                 "param": f'{{{{"{label}"}}}}'}[n["kind"]]
        out.append(f"  {ids[n['id']]}{shape}:::{n['status']}")
    for e in data["edges"]:
        out.append(f"  {ids[e['from']]} --> {ids[e['to']]}")
    return "\n".join(out)


def _layers(data: dict[str, Any]) -> list[list[str]]:
    preds: dict[str, list[str]] = {n["id"]: [] for n in data["nodes"]}
    for e in data["edges"]:
        preds[e["to"]].append(e["from"])
    depth: dict[str, int] = {}

    def d(n: str) -> int:
        if n not in depth:
            depth[n] = 0
            depth[n] = 1 + max((d(p) for p in preds[n]), default=-1)
        return depth[n]

    for n in preds:
        d(n)
    # Sources and parameters sit just before their first reader, not all at the left.
    succs: dict[str, list[str]] = {n: [] for n in preds}
    for e in data["edges"]:
        succs[e["from"]].append(e["to"])
    for n in preds:
        if not preds[n] and succs[n]:
            depth[n] = max(0, min(depth[m] for m in succs[n]) - 1)
    layers: list[list[str]] = [[] for _ in range(max(depth.values(), default=-1) + 1)]
    for n in preds:
        layers[depth[n]].append(n)
    # Order each layer by the mean position of its predecessors (fewer crossings).
    for i in range(1, len(layers)):
        pos = {n: j for j, n in enumerate(layers[i - 1])}
        layers[i].sort(key=lambda n: sum(pos.get(p, 0) for p in preds[n]) / max(1, len(preds[n])))
    return layers


def _html(project: "Project", data: dict[str, Any]) -> str:
    layers = _layers(data)
    w, h, gx, gy = 170, 40, 70, 24
    xy: dict[str, tuple[int, int]] = {}
    for i, layer in enumerate(layers):
        for j, n in enumerate(layer):
            xy[n] = (20 + i * (w + gx), 20 + j * (h + gy))
    width = 40 + len(layers) * (w + gx)
    height = 40 + max((len(layer) for layer in layers), default=1) * (h + gy)
    by_id = {n["id"]: n for n in data["nodes"]}
    parts = []
    for e in data["edges"]:
        (x1, y1), (x2, y2) = xy[e["from"]], xy[e["to"]]
        parts.append(f'<path d="M{x1 + w},{y1 + h // 2} C{x1 + w + gx // 2},{y1 + h // 2} '
                     f'{x2 - gx // 2},{y2 + h // 2} {x2},{y2 + h // 2}" class="edge"/>')
    for nid, (x, y) in xy.items():
        n = by_id[nid]
        rx = {"rule": 4, "dataset": 14, "param": 0}[n["kind"]]
        outs = ", ".join(n.get("outputs") or [])
        title = html.escape(f"{nid}: {n['status']}" + (f" (outputs: {outs})" if outs and outs != nid else "")
                            + (f" — {n['description']}" if n.get("description") else ""))
        parts.append(f'<g class="node {n["kind"]} {n["status"]}" data-id="{html.escape(nid)}">'
                     f'<title>{title}</title>'
                     f'<rect x="{x}" y="{y}" width="{w}" height="{h}" rx="{rx}" '
                     f'fill="{COLORS[n["status"]]}"/>'
                     f'<text x="{x + w // 2}" y="{y + h // 2 + 5}">{html.escape(nid[:22])}</text></g>')
    legend = " ".join(f'<span style="background:{c}">{s}</span>' for s, c in COLORS.items())
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{html.escape(project.display)} — datamake DAG</title>
<style>
body{{font-family:system-ui,sans-serif;margin:1.5em;color:#222}}
.edge{{fill:none;stroke:#888;stroke-width:1.4}}
.node rect{{stroke:#555}} .node text{{font-size:13px;text-anchor:middle}}
.legend span{{padding:2px 8px;margin-right:6px;border:1px solid #999;border-radius:3px}}
</style></head><body>
<h1>{html.escape(project.display)}</h1>
<p class="legend">{legend}</p>
<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}">{''.join(parts)}</svg>
<script type="application/json" id="datamake-dag">{html.escape(json.dumps(data))}</script>
</body></html>
"""
