"""`--dag`: the pipeline graph as dot, mermaid or JSON, coloured by each step's status in
a dry run; as the pipeline page (html) or a picture (svg), by `datamake.ui.export`."""
from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from .steps import key_of, split_step, step_id

if TYPE_CHECKING:
    from .outcomes import BuildResult
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
        steps_of.setdefault(split_step(step)[0], []).append(step)

    def source(name: str, key: str | None) -> str:
        nid = step_id(name, key)
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
            return [step_id(prod, key)] if key else steps_of.get(prod, [])
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
                add(step, node, key_of(step, name))
        elif name in result.outcomes:
            add(name, node, None)
    return {"nodes": list(nodes.values()), "edges": edges}


def render_dag(project: "Project", result: "BuildResult", fmt: str) -> str:
    if fmt in ("html", "svg"):
        from .ui import export
        from .ui.source import LocalSource

        source = LocalSource(project=project, result=result, targets=result.targets)
        return export.html_page(source) if fmt == "html" else export.svg_picture(source)
    data = graph_data(project, result)
    if fmt == "json":
        return json.dumps(data, indent=2)
    if fmt == "mermaid":
        return _mermaid(data)
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
