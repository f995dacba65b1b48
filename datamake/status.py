"""What a notebook sees: `Project.status()` as a table (text, and HTML in Jupyter), and
a warning when `Project(params=...).load(name)` gives a value that was built with other
parameters than the project's."""
from __future__ import annotations

import html
import warnings
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .outcomes import BuildResult
    from .project import Project


class StaleValueWarning(UserWarning):
    """A loaded value was built with other parameter values than the ones asked for."""


_WORDS = {"planned": "would run", "fresh": "up to date", "failed": "would fail",
          "skipped": "waits", "cached": "cached", "built": "built"}


class Status:
    """A dry run's answer, one row a step: the step, what a build would do, and why.
    Everything a BuildResult has (`names`, `outcomes`, `failed`...) is here too."""

    def __init__(self, result: "BuildResult"):
        self.result = result

    def __getattr__(self, name: str) -> Any:
        return getattr(self.result, name)

    def rows(self) -> list[tuple[str, str, str]]:
        """(step, state, why) in execution order."""
        from .console import reason_text

        out = []
        for n, o in self.result.outcomes.items():
            why = ", ".join(reason_text(r) for r in o.reasons) if o.reasons else (o.error or "")
            out.append((n, _WORDS.get(o.status, o.status), why))
        for n, (text, _) in getattr(self.result, "unknown", {}).items():
            out.append((n, "cannot tell", text))
        return out

    def __repr__(self) -> str:
        rows = self.rows()
        if not rows:
            return "nothing to build"
        head = ("step", "state", "why")
        widths = [max(len(r[i]) for r in rows + [head]) for i in range(2)]
        lines = [f"{head[0]:<{widths[0]}}  {head[1]:<{widths[1]}}  {head[2]}"]
        lines += [f"{s:<{widths[0]}}  {st:<{widths[1]}}  {why}".rstrip() for s, st, why in rows]
        return "\n".join(lines)

    __str__ = __repr__

    def _repr_html_(self) -> str:
        e = html.escape
        body = "".join(f"<tr><td><code>{e(s)}</code></td><td>{e(st)}</td><td>{e(why)}</td></tr>"
                       for s, st, why in self.rows())
        return ("<table class=\"datamake-status\"><thead><tr><th>step</th><th>state</th>"
                f"<th>why</th></tr></thead><tbody>{body}</tbody></table>")


def warn_if_built_with_other_params(project: "Project", name: str) -> None:
    """Warn (StaleValueWarning) when the value of output `name`, or one it was made
    from, was last built with parameter values other than the project's."""
    from .planner import param_repr, param_view

    g = project.graph
    differ: dict[str, tuple[str, str]] = {}
    seen: set[str] = set()
    stack = [g.producer[name]] if name in g.producer else []
    while stack:
        rule = stack.pop()
        if rule in seen:
            continue
        seen.add(rule)
        node = g.rules.get(rule)
        if node is None:
            continue
        if node.params and not node.key:
            rec = project.state.step(rule)
            old = rec.detail.get("params", {}) if rec is not None else {}
            for p, k in zip(node.params, node.param_keys or (None,) * len(node.params)):
                now = param_repr(param_view(project.params[p], k))
                if p in old and old[p] != now and p not in differ:
                    differ[p] = (old[p], now)
        stack.extend(g.producer[i] for i in node.inputs if i in g.producer)
    if differ:
        said = "; ".join(f"`{p}` was {old}, now {now}" for p, (old, now) in sorted(differ.items()))
        warnings.warn(f"`{name}` was built with other parameters: {said}; build it with "
                      f"these (`project.build({name!r})`) to load their value",
                      StaleValueWarning, stacklevel=3)
