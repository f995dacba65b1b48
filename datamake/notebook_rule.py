"""Running a rule whose recipe is a notebook (`notebook "FILE"` in the Datafile).

The rule's inputs and parameters become the notebook's variables; the notebook runs in
a fresh kernel (`notebook.run_notebook`) and its page is the rule's one output, written
through the catalog like any value (atomically: a temporary file, then a rename or one
upload).

A markdown-only edit. The step's code fingerprint covers the notebook's code cells and
its page (markdown, code as written): any edit makes the step stale. Each run keeps the
executed notebook in `.datamake/notebooks/`, under the key of what it ran: the code
cells' fingerprint, the parameters' and the inputs' fingerprints. When a stale step
finds a kept run under the same key, only its page changed: it is rendered again with
the kept outputs (`notebook.rerender`) and no cell runs. The new page is the step's
output as usual: a new version of a versioned report, and what reads the page reruns
if its bytes changed.

The notebook tools (the `notebook` extra) are imported only here, when a step runs.
"""
from __future__ import annotations

import importlib.util
import json
import os
from typing import TYPE_CHECKING, Any

from .errors import UsageError
from .recipe import RecipeFailure

if TYPE_CHECKING:
    from .catalog import Pending
    from .graph import RuleNode
    from .worker import Context

KEPT_DIR = ".datamake/notebooks"
_TOOLS = ("jupytext", "nbclient", "nbconvert", "nbformat", "ipykernel")
INSTALL = 'pip install "datamake[notebook]"'


def require() -> None:
    """Before a notebook step runs: the `notebook` extra is installed (looked up, not
    imported). Raises UsageError (exit 2) saying what to install."""
    missing = [m for m in _TOOLS if importlib.util.find_spec(m) is None]
    if missing:
        raise UsageError("notebook-extra", module=missing[0], install=INSTALL)


def shown(path: str) -> str:
    """A notebook's path as messages show it: relative to the working folder when under it."""
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return path
    return path if rel.startswith("..") else rel


def run(ctx: "Context", node: "RuleNode", step: str, pins: dict[int, str] | None,
        whole_keys: dict[str, list[str]], made_from: tuple[str, str | None] | None
        ) -> list["Pending"]:
    """Run (or, after a markdown-only edit, re-render) the notebook of `node` and write
    its page, not yet committed. `made_from`: the step's (params, inputs) fingerprints,
    which key the kept run. Raises RecipeFailure, CatalogError."""
    from . import notebook as nb
    from .hashing import hash_parts
    from .report import BuildContext

    path = ctx.recipe.notebook
    where = shown(path)
    cat = ctx.catalog
    params = {local: ctx.params[p] for p, local in zip(node.params, node.param_locals)}
    context = BuildContext(step, None, params)  # no time: a rebuild gives the same bytes
    try:
        code = nb.fingerprints(path).code
        run_key = hash_parts("notebook-run", code, *made_from) \
            if made_from is not None and made_from[1] is not None else None
        html = None
        kept = _kept(ctx.root, step)
        if run_key is not None and kept is not None and kept.get("run") == run_key:
            try:
                html = nb.rerender(path, kept["executed"], context=context, shown_path=where)
            except nb.NotebookChangedError:
                html = None
        if html is None:
            values = _values(ctx, node, pins or {}, whole_keys) | params
            result = nb.run_notebook(path, values, cwd=ctx.folder, context=context,
                                     shown_path=where)
            html = result.html
            if run_key is not None:
                _keep(ctx.root, step, run_key, result.executed)
    except nb.NotebookCellError as e:
        where = nb._where(e.path, e.cell, e.line, e.line_in_file)
        raise RecipeFailure(str(e), f"{where}: the notebook of `{step}` failed:\n"
                                    f"{e.traceback}\n") from None
    except nb.NotebookError as e:
        text = str(e) + (f"\nhelp: {e.help}" if e.help else "")
        raise RecipeFailure(str(e).split("\n", 1)[0], text + "\n") from None
    return [cat.write(node.outputs[0], html)]


def _values(ctx: "Context", node: "RuleNode", pins: dict[int, str],
            whole_keys: dict[str, list[str]]) -> dict[str, Any]:
    """The inputs, by the names the notebook sees them under."""
    cat = ctx.catalog
    out: dict[str, Any] = {}
    for i, (name, local) in enumerate(zip(node.inputs, node.locals)):
        if i in pins:
            out[local] = cat.load_version(name, pins[i])
        elif name in whole_keys:  # a partitioned input, whole: a dict (it crosses by pickle)
            out[local] = {k: cat.load(name, k) for k in whole_keys[name]}
        else:
            out[local] = cat.load(name)
    return out


def _kept_path(root: str, step: str) -> str:
    return os.path.join(root, KEPT_DIR, f"{step}.json")


def _kept(root: str, step: str) -> dict[str, Any] | None:
    """The last run kept for `step`, or None (none, or unreadable: then it runs)."""
    try:
        with open(_kept_path(root, step), encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("executed"), str):
        return None
    return data


def _keep(root: str, step: str, run_key: str, executed: str) -> None:
    target = _kept_path(root, step)
    try:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        tmp = f"{target}.{os.getpid()}.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump({"run": run_key, "executed": executed}, f)
        os.replace(tmp, target)
    except OSError:
        pass  # not kept: a markdown-only edit then runs the notebook again
