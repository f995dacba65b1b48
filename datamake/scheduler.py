"""In which order a build starts its rules: pure bookkeeping, no files, no state.

A rule may start when every rule whose output it reads has settled (finished, failed or
been skipped); among those that may, the one first in the graph's topological order
starts first, so a serial build runs in the order `-n` prints. Which steps of a rule
are stale, and running them, is the builder's job.
"""
from __future__ import annotations

import heapq
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .graph import Graph, RuleNode


class Scheduler:
    """The rules of one build, released as the rules they read settle."""

    def __init__(self, graph: "Graph", rules: list["RuleNode"]):
        self._order = {n.name: i for i, n in enumerate(rules)}
        self._waiting_on: dict[str, int] = {}
        self._dependents: dict[str, list[RuleNode]] = {}
        self._startable: list[tuple[int, str, RuleNode]] = []
        for n in rules:
            # Pinned inputs (`name@version`) are saved versions: they wait for nothing.
            ups = {graph.producer[i] for i, v in zip(n.inputs, n.versions)
                   if v is None and i in graph.producer} & self._order.keys()
            self._waiting_on[n.name] = len(ups)
            for u in ups:
                self._dependents.setdefault(u, []).append(n)
            if not ups:
                heapq.heappush(self._startable, (self._order[n.name], n.name, n))

    def __bool__(self) -> bool:
        """Whether a rule may start now."""
        return bool(self._startable)

    def pop(self) -> "RuleNode":
        """The next rule to start."""
        return heapq.heappop(self._startable)[2]

    def settled(self, name: str) -> None:
        """Rule `name` is done: the rules that read it and waited only on it may start."""
        for d in self._dependents.get(name, ()):
            self._waiting_on[d.name] -= 1
            if self._waiting_on[d.name] == 0:
                heapq.heappush(self._startable, (self._order[d.name], d.name, d))
