"""`--explain`: for each step considered, why it is stale or fresh, and what changed:
the parameter's old and new value, the recipe lines that differ, which input's content
changed, and where early cutoff is expected to stop the rebuild."""
from __future__ import annotations

import difflib
import textwrap
from typing import TYPE_CHECKING, Any

from .hashing import hash_text
from .outcomes import Reason
from .planner import early_cutoff_expected

if TYPE_CHECKING:
    from .outcomes import BuildResult
    from .project import Project
    from .console import Reporter


def _diff(old: str, new: str, old_name: str, new_name: str) -> list[str]:
    """A unified diff of two code texts, each dedented."""
    return list(difflib.unified_diff(textwrap.dedent(old).strip("\n").splitlines(),
                                     textwrap.dedent(new).strip("\n").splitlines(),
                                     old_name, new_name, lineterm="", n=1))


def _recipe_lines(project: "Project", step: str, r: Reason) -> list[str]:
    detail: dict[str, Any] = r.old or {}
    recipe = project.recipes[step]
    out: list[str] = []
    old_h = detail.get("recipe")
    if old_h and old_h != hash_text(recipe.text):
        old_text = project.state.text(old_h)
        if old_text is not None:
            d = _diff(old_text, recipe.text, "before", "now")
            if d:
                out.append("the recipe changed:")
                out.extend("  " + ln for ln in d)
    old_code: dict[str, str] = detail.get("code", {})
    new_code = project.graph.code_deps.get(step, {})
    for label in sorted(set(old_code) | set(new_code)):
        o, n = old_code.get(label), new_code.get(label)
        if o == n:
            continue
        shown = label.replace("python:", "")
        if o is None:
            out.append(f"it now uses `{shown}`")
        elif n is None:
            out.append(f"it no longer uses `{shown}`")
        else:
            out.append(f"`{shown}` changed:")
            old_text = project.state.text(o)
            new_text = project.code_texts.get(n)
            if old_text is not None and new_text is not None:
                out.extend("  " + ln for ln in _diff(old_text, new_text, "before", "now"))
    if not out:
        out.append("the recipe's code or its outputs' formats changed")
    return out


def reason_lines(project: "Project", result: "BuildResult", step: str, r: Reason) -> list[str]:
    """The human explanation of one reason, first line first."""
    g = project.graph
    if r.code == "forced":
        return ["forced (-B or --force)"]
    if r.code == "no-record":
        return ["never built here: no record of it in .datamake/"]
    if r.code == "missing-output":
        loc = project.catalog.location(r.name)
        return [f"output `{r.name}` does not exist ({project.catalog.shown(loc)})"]
    if r.code == "output-changed":
        return [f"output `{r.name}` was changed outside datamake since it was built"]
    if r.code == "param-changed":
        return [f"parameter `{r.name}`: {r.old} -> {r.new}"]
    if r.code == "input-changed":
        prod = g.producer.get(r.name or "")
        old = (r.old or "")[:12] or "?"
        new = (r.new or "")[:12]
        src = f"rebuilt by `{prod}`" if prod else f"file {project.catalog.shown(project.catalog.location(r.name))}"
        return [f"input `{r.name}` has new content ({src}; {old} -> {new})"]
    if r.code == "upstream":
        node = g.rules[step]
        waits = [n for n in node.inputs
                 if g.producer.get(n) and result.outcomes.get(g.producer[n], None) is not None
                 and result.outcomes[g.producer[n]].status == "planned"]
        cut = [n for n in waits if early_cutoff_expected(result.outcomes[g.producer[n]].reasons)]
        lines = [f"input {', '.join(f'`{n}`' for n in waits)} will be rebuilt first; "
                 f"this step is checked again after that"]
        if cut and len(cut) == len(waits):
            lines.append("early cutoff expected: those inputs should come out unchanged, "
                         "so this step should stay fresh")
        return lines
    if r.code == "recipe-changed":
        return _recipe_lines(project, step, r)
    return [r.code]


def explain_build(project: "Project", result: "BuildResult", reporter: "Reporter",
                  as_json: bool) -> None:
    """Print (or return as JSON) the explanation of a dry run."""
    from .console import plan_json

    details: dict[str, list[str]] = {}
    for step, o in result.outcomes.items():
        if o.status == "fresh":
            details[step] = ["fresh: its recipe, parameters, inputs and outputs are as "
                             "recorded"]
            continue
        if o.status != "planned":
            details[step] = [f"{o.status}: {o.error}" if o.error else o.status]
            continue
        lines = []
        for r in o.reasons:
            sub = reason_lines(project, result, step, r)
            lines.append(f"{r.code}: {sub[0]}")
            lines.extend("  " + s for s in sub[1:])
        if early_cutoff_expected(o.reasons) and "forced" not in [r.code for r in o.reasons]:
            lines.append("its recipe, parameters and inputs are unchanged: expect the same "
                         "output, so early cutoff should stop the rebuild here")
        details[step] = lines
    if as_json:
        doc = plan_json(result)
        doc["explain"] = details
        reporter.document(doc)  # type: ignore[attr-defined]
        return
    out = []
    for step, lines in details.items():
        status = result.outcomes[step].status
        word = {"planned": "stale", "fresh": "fresh"}.get(status, status)
        if status == "fresh":
            out.append(f"{step}: fresh")
            continue
        out.append(f"{step}: {word}")
        out.extend("  " + ln for ln in lines)
    if not result.outcomes:
        out.append("nothing to consider: the target has no rules")
    reporter.print("\n".join(out))
