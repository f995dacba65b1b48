"""What a build writes down, the moment it knows it: each finished step's record (with
the code texts `--explain` diffs), each partition a yielding recipe writes, the versions
of a `versioned` output, and, at the end, the stamps of files that were too young to
trust when they were written. The state is only written here and by the cache.
"""
from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING

from .catalog import local_stamp, stable
from .hashing import hash_text
from .outcomes import StepResult
from .state import StepRecord
from .steps import key_of, step_id

if TYPE_CHECKING:
    from .cache import Caches
    from .graph import RuleNode
    from .outcomes import Verdict
    from .planner import Planner
    from .project import Project


class Recorder:
    """One build's writes to the state and the catalog's version store."""

    def __init__(self, project: "Project", planner: "Planner", caches: "Caches"):
        self.project = project
        self.graph = project.graph
        self.catalog = project.catalog
        self.planner = planner
        self.caches = caches
        # Steps and partitions written within one timestamp tick: (step, paths, stamps).
        self.young: list[tuple[str, tuple[str, ...], tuple[str, ...]]] = []
        self._recipe_texts: dict[str, tuple[str, dict[str, str]]] = {}  # rule -> (hash, texts)

    def _recorded_keys(self, name: str, sig: str | None) -> list[str]:
        state = self.project.state
        out = []
        for child in state.children(name):
            q = state.quick(child)
            if q is not None and (sig is None or q[0] == sig):
                out.append(key_of(child, name))
        return out

    def _recorded_parts(self, name: str, sig: str | None) -> dict[str, str | None]:
        state = self.project.state
        parts: dict[str, str | None] = {}
        for child in state.children(name):
            q = state.quick(child)
            if q is not None and q[0] == sig:
                parts[key_of(child, name)] = q[2]
        return parts

    def yielded(self, out: str, sig: str | None,
                seconds: float) -> tuple[dict[str, str | None], StepResult]:
        """A yielding step's partitions recorded under `sig`, and the step's own result:
        the partitioned output as one, its digest that of all the partitions."""
        parts = self._recorded_parts(out, sig)
        whole = self.planner.whole(parts) or ""
        return parts, StepResult((self.catalog.location(out).url,), ("",), (whole,), seconds)

    def prepare_yielding(self, node: RuleNode, verdict: Verdict) -> frozenset[str]:
        """Before a yielding recipe runs: drop partitions built from another signature
        (no longer valid) and say which are done under this one."""
        out = node.outputs[0]
        state = self.project.state
        sig = verdict.sig
        stale = [c for c in state.children(out) if (state.quick(c) or ("",))[0] != sig]
        for child in stale:
            self.catalog.remove(out, key_of(child, out))
        state.forget_many(stale)
        listed = self.catalog.partitions(out)
        return frozenset(k for k in self._recorded_parts(out, sig) if k in listed)

    def kept_parts(self, out: str, parts: dict[str, str | None]) -> tuple[list, list] | None:
        """A yielding step's cache entry, (outputs named `OUT[KEY]`, object sizes), when
        every partition it recorded is in the local cache (a partition written by an
        earlier, interrupted run may have been trimmed since)."""
        outputs, sizes = [], []
        for k in sorted(parts):
            digest = parts[k]
            if not digest or digest.startswith("d:"):
                return None
            try:
                size = os.stat(self.caches.local.path(digest)).st_size
            except (OSError, ValueError):  # not kept, or not a digest
                return None
            outputs.append((step_id(out, k), digest))
            sizes.append((digest, size))
        return outputs, sizes

    def record_partition(self, v: Verdict, out: str, key: str, path: str, stamp: str,
                         digest: str) -> None:
        """Record one partition a yielding step wrote (or a cache restored) at once."""
        node = step_id(out, key)
        self.project.state.record_step(StepRecord(
            node, v.sig or "", v.code_fp, v.params_fp, v.inputs_fp or "", (path,),
            (stable(stamp),), (digest,), {}, time.time(), 0.0), status=None)
        if stable(stamp) != stamp:
            self.young.append((node, (path,), (stamp,)))

    def record(self, node: RuleNode, step: str, verdict: Verdict, digests: list[str | None],
               res: StepResult, status: str = "built",
               cached: tuple[list, list] | None = None) -> None:
        """Commit a finished step's record (with the code texts `--explain` diffs)."""
        project = self.project
        detail = self.planner.detail(node, digests)  # type: ignore[arg-type]
        known = self._recipe_texts.get(node.name)
        if known is None:
            recipe = project.recipes[node.name]
            h = hash_text(recipe.text)
            texts = {h: recipe.text}
            for own in detail["code"].values():
                t = project.code_texts.get(own)
                if t is not None:
                    texts[own] = t
            known = self._recipe_texts[node.name] = (h, texts)
        h, texts = known
        detail["recipe"] = h
        assert verdict.sig is not None and verdict.inputs_fp is not None
        stamps = tuple(stable(s) for s in res.stamps)
        if stamps != res.stamps:
            self.young.append((step, res.paths, res.stamps))
        project.state.record_step(StepRecord(
            step, verdict.sig, verdict.code_fp, verdict.params_fp, verdict.inputs_fp,
            res.paths, stamps, res.digests, detail, time.time(), res.seconds),
            texts, status, [r.code for r in verdict.reasons], cached, res.peak_kb)

    def restamp(self) -> None:
        """Outputs and sources stamped too young to be trusted (written within one
        timestamp tick of being checked) are looked at again at the end of the build,
        so the next build trusts their stamps instead of hashing them all again. Only a
        file still exactly as observed, and old enough by now, is restamped; the few
        written in the build's last tick are hashed (and restamped) by the next build."""
        young_files = self.planner.young_files
        if not self.young and not young_files:
            return
        steps = []
        for step, paths, observed in self.young:
            now = tuple(local_stamp(p) if "://" not in p else s for p, s in zip(paths, observed))
            if now == observed and all(stable(s) == s for s in observed):
                steps.append((step, observed))
        files = [(path, observed, digest) for path, observed, digest in young_files
                 if local_stamp(path) == observed and stable(observed) == observed]
        self.project.state.restamp(steps, files)

    def save_versions(self, node: RuleNode, key: str | None, res: StepResult,
                      sig: str | None, digests: list[str | None] | None = None) -> None:
        """A `versioned` output's new version kept, with what it was built from (the
        input `digests`) and, for a report, its versions index beside it."""
        if key is not None or node.generator:
            return
        for o, digest in zip(node.outputs, res.digests):
            info = self.graph.datasets.get(o)
            if info is not None and info.versioned:
                saved = self.catalog.save_version(o, digest, sig)
                if saved is not None:
                    from .report_versions import saved as recorded

                    recorded(self.catalog, self.graph, self.project.params, node, o, saved,
                             digests)
