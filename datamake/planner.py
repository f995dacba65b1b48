"""Which steps are stale, and why: pure decisions over stamps, digests and records.

The planner reads (stats, hashes of files whose stat changed, the state) but never
writes: what it learns that is worth remembering (new stamps of touched-but-unchanged
files) it hands back for the executor to record.

A step's signature is hash(code fingerprint, parameter values, input contents). A step
is fresh when its signature and the stamps of its outputs match its record. Stamps are
compared first; a differing stamp costs a hash, and a touched file with the same
content changes nothing.
"""
from __future__ import annotations

from typing import Any, NamedTuple

from .catalog import Catalog, same_content, stable
from .graph import Graph, RuleNode
from .hashing import hash_parts, hash_text
from .state import SEP, State
from .steps import key_of

CODES = ("forced", "no-record", "missing-output", "output-changed", "recipe-changed",
         "param-changed", "input-changed", "upstream")

class Reason(NamedTuple):
    """Why a step runs: a reason code (docs/staleness.md lists them), the name concerned,
    old and new."""

    code: str
    name: str | None = None
    old: Any = None
    new: Any = None


class Verdict(NamedTuple):
    """The planner's answer for one step."""

    stale: bool
    reasons: tuple[Reason, ...]
    sig: str | None  # None while an input is unknown (dry run)
    code_fp: str
    params_fp: str
    inputs_fp: str | None
    out_digests: tuple[str, ...] | None  # the recorded ones, when fresh
    refresh: tuple[str, ...] | None  # new stamps for touched-but-unchanged outputs


def param_repr(value: Any) -> str:
    return repr(value)


class Planner:
    """Judges steps against the state; memoises parameter and source digests."""

    def __init__(self, graph: Graph, catalog: Catalog, state: State,
                 params: dict[str, Any], forced: set[str] | None = None,
                 always: bool = False):
        self.graph = graph
        self.catalog = catalog
        self.state = state
        self.params = params
        self.forced = forced or set()
        self.always = always
        self._param_fp: dict[str, str] = {}
        self._params_fps: dict[tuple[str, ...], str] = {}
        self._tags: dict[str, str] = {}
        self._files: dict[str, tuple[str, str]] | None = None
        self._sources: dict[tuple[str, str | None], str | None] = {}
        self._parts: dict[str, dict[str, str]] = {}
        self.file_updates: list[tuple[str, str, str]] = []
        self.young_files: list[tuple[str, str, str]] = []  # (path, stamp seen, digest)
        self.refreshes: list[tuple[str, tuple[str, ...]]] = []  # touched partitions

    # -- fingerprints of parameters and inputs ---------------------------------------

    def param_fp(self, name: str) -> str:
        fp = self._param_fp.get(name)
        if fp is None:
            fp = self._param_fp[name] = hash_text(param_repr(self.params[name]))
        return fp

    def input_tag(self, name: str) -> str:
        """What besides content decides how an input loads: its format and options."""
        tag = self._tags.get(name)
        if tag is None:
            ds = self.graph.datasets.get(name)
            tag = self._tags[name] = f"{ds.format}{ds.options}" if ds and (ds.format or ds.options) else ""
        return tag

    def source(self, name: str, key: str | None = None) -> str | None:
        """The digest of a source dataset (one no rule writes), None when it is missing.

        Raises CatalogError when the storage cannot be read.
        """
        k = (name, key)
        if k in self._sources:
            return self._sources[k]
        stamp = self.catalog.stamp(name, key)
        if stamp is None:
            self._sources[k] = None
            return None
        if self._files is None:
            self._files = self.state.files()
        path = self.catalog.path_of(name, key)
        rec = self._files.get(path)
        if rec is not None and stamp and (rec[0] == stamp or same_content(rec[0], stamp)):
            digest = rec[1]
            if rec[0] != stamp:
                self.file_updates.append((path, stamp, digest))
                self._files[path] = (stamp, digest)
        else:
            digest = self.catalog.digest(name, key)
            if rec is None or rec[0] != stable(stamp) or rec[1] != digest:
                self.file_updates.append((path, stable(stamp), digest))
                self._files[path] = (stable(stamp), digest)
                if stable(stamp) != stamp:
                    self.young_files.append((path, stamp, digest))
        self._sources[k] = digest
        return digest

    def source_parts(self, name: str) -> dict[str, str]:
        """key -> digest of every partition of a source dataset (one listing; a
        partition is hashed only when its stamp is new)."""
        memo = self._parts.get(name)
        if memo is not None:
            return memo
        listed = self.catalog.partitions(name)
        if self._files is None:
            self._files = self.state.files()
        files = self._files
        memo = {}
        for key, stamp in listed.items():
            rec = files.get(self.catalog.path_of(name, key))
            if rec is not None and rec[0] == stamp:
                memo[key] = rec[1]  # the usual case: nothing to read
            else:
                memo[key] = self.source(name, key)  # type: ignore[assignment]
        self._parts[name] = memo
        return memo

    def whole(self, parts: dict[str, str | None]) -> str | None:
        """The digest of a partitioned dataset: its keys and their digests."""
        if None in parts.values():
            return None
        return "p:" + hash_parts(*(f"{k}={parts[k]}" for k in sorted(parts)))

    # -- judging ------------------------------------------------------------------------

    def quick(self, node: RuleNode):
        """A check for the partitions of a pattern rule: `check(step, inputs, key)`
        gives the recorded output digests when the step is certainly fresh (signature
        and every output stamp as recorded), else None — then `judge` says why. It does
        what `judge` does on its fast path, without building a Verdict, for the
        hundred thousand partitions of a big dataset."""
        if self.always or node.name in self.forced:
            return lambda step, inputs, key: None
        code_fp = self.graph.code_fp[node.name]
        params_fp = hash_parts(*[self.param_fp(p) for p in node.params])
        tags = [self.input_tag(n) for n in node.inputs]
        rows = self.state._all_rows()
        cat = self.catalog
        listings = [cat.partitions(o) if cat.is_partitioned(o) else None for o in node.outputs]

        def check(step: str, inputs: list[str | None], key: str):
            q = rows.get(step)
            if q is None or None in inputs:
                return None
            sig = hash_parts(code_fp, params_fp,
                             hash_parts(*[d + t for d, t in zip(inputs, tags)]))  # type: ignore[operator]
            if sig != q[0]:
                return None
            if len(listings) == 1 and listings[0] is not None:
                if listings[0].get(key) != q[1]:
                    return None
            elif SEP.join((lst.get(key) if lst is not None else cat.stamp(o, key)) or "-"
                          for o, lst in zip(node.outputs, listings)) != q[1]:
                return None
            return tuple(q[2].split(SEP))

        return check

    def judge(self, node: RuleNode, step: str, inputs: list[str | None],
              key: str | None = None) -> Verdict:
        """Is `step` (of rule `node`, partition `key`) stale? `inputs` are the digests of
        its data inputs in order, None for one whose rule has yet to run."""
        g = self.graph
        code_fp = g.code_fp[node.name]
        params_fp = self._params_fps.get(node.params)
        if params_fp is None:
            params_fp = self._params_fps[node.params] = hash_parts(
                *[self.param_fp(p) for p in node.params])
        known = None not in inputs
        inputs_fp = None
        sig = None
        if known:
            tags = self._tags
            inputs_fp = hash_parts(*[d + (tags[n] if n in tags else self.input_tag(n))
                                     for n, d in zip(node.inputs, inputs)])
            sig = hash_parts(code_fp, params_fp, inputs_fp)
        forced = self.always or node.name in self.forced or step in self.forced
        reasons: list[Reason] = [Reason("forced")] if forced else []

        quick = self.state.quick(step)
        if quick is None:
            reasons.append(Reason("no-record"))
            return Verdict(True, tuple(reasons), sig, code_fp, params_fp, inputs_fp, None, None)
        rec_sig, rec_stamps, rec_digests = quick

        # Outputs: stamps first, content only when a stamp differs.
        cat = self.catalog
        refresh = None
        if key is None and node.generator:
            reasons.extend(self._partitioned_output(node.outputs[0], rec_sig, rec_digests))
            if sig is not None and sig == rec_sig and not reasons:
                return Verdict(False, (), sig, code_fp, params_fp, inputs_fp,
                               tuple(rec_digests.split(SEP)), None)
        else:
            # Stamps first; where they all match the record, nothing else is looked at.
            if len(node.outputs) == 1:
                stamps = [cat.stamp(node.outputs[0], key)]
                joined = stamps[0] or "-"
            else:
                stamps = [cat.stamp(o, key) for o in node.outputs]
                joined = SEP.join(s or "-" for s in stamps)
            if joined != rec_stamps:
                refresh = self._changed_outputs(node, step, key, stamps, rec_stamps,
                                                rec_digests, reasons)
        if sig is not None and sig == rec_sig and len(reasons) == 0:
            return Verdict(False, (), sig, code_fp, params_fp, inputs_fp,
                           tuple(rec_digests.split(SEP)), refresh)

        # Something differs: say exactly what, from the full record.
        rec = self.state.step(step)
        assert rec is not None
        detail = rec.detail
        if rec.code_fp != code_fp:
            reasons.append(Reason("recipe-changed", None, detail))
        if rec.params_fp != params_fp:
            old = detail.get("params", {})
            changed = False
            for p in node.params:
                new = param_repr(self.params[p])
                if old.get(p) != new:
                    reasons.append(Reason("param-changed", p, old.get(p), new))
                    changed = True
            if not changed:  # a parameter was removed from the inputs
                reasons.append(Reason("recipe-changed"))
        old_inputs = detail.get("inputs", {})
        unknown = False
        for n, d in zip(node.inputs, inputs):
            if d is None:
                unknown = True
                continue
            full = f"{d}{self.input_tag(n)}"
            if old_inputs.get(n) != full:
                reasons.append(Reason("input-changed", n, old_inputs.get(n), full))
        if not reasons and unknown:
            reasons.append(Reason("upstream"))
        if not reasons and sig != rec_sig:
            # Same parts, different whole: inputs were reordered or renamed.
            reasons.append(Reason("recipe-changed"))
        if not reasons:
            return Verdict(False, (), sig, code_fp, params_fp, inputs_fp,
                           tuple(rec_digests.split(SEP)), refresh)
        return Verdict(True, tuple(_dedupe(reasons)), sig, code_fp, params_fp, inputs_fp,
                       None, refresh)

    def _changed_outputs(self, node: RuleNode, step: str, key: str | None,
                         stamps: list[str | None], rec_stamps: str, rec_digests: str,
                         reasons: list[Reason]) -> tuple[str, ...] | None:
        """Outputs whose stamp differs from the record: missing, edited, or only touched
        (then the new stamps are returned, to be remembered)."""
        rec = self.state.step(step)
        old_paths = list(rec.out_paths) if rec is not None else []
        old_stamps = rec_stamps.split(SEP)
        old_digests = rec_digests.split(SEP)
        new_stamps = list(old_stamps)
        for i, (o, st) in enumerate(zip(node.outputs, stamps)):
            if st is None:
                reasons.append(Reason("missing-output", o))
                continue
            same_place = i < len(old_paths) and old_paths[i] == self.catalog.location(o, key).url
            if same_place and old_stamps[i] == st:
                continue
            if same_place and same_content(old_stamps[i], st):
                new_stamps[i] = st
                continue
            digest = self.catalog.digest(o, key)
            if same_place and i < len(old_digests) and old_digests[i] == digest:
                new_stamps[i] = stable(st)
                continue
            reasons.append(Reason("output-changed", o))
        if new_stamps != old_stamps and not reasons:
            return tuple(new_stamps)
        return None

    def _partitioned_output(self, name: str, sig: str, whole: str) -> list[Reason]:
        """Check the partitions a yielding step wrote under signature `sig`: each as
        recorded, and together the very set the finished step recorded (`whole`, the
        digest of all of them). A run under another signature drops them and writes its
        own: if it failed, the set under `sig` is no longer whole, even though the
        step's record still names `sig`."""
        listed = self.catalog.partitions(name)
        state = self.state
        parts: dict[str, str] = {}
        for node in state.children(name):
            q = state.quick(node)
            if q is None or q[0] != sig:
                continue
            key = key_of(node, name)
            parts[key] = q[2]
            now = listed.get(key)
            if now is None:
                return [Reason("missing-output", name)]
            if now == q[1]:
                continue
            if self.catalog.digest(name, key) != q[2]:
                return [Reason("output-changed", name)]
            self.refreshes.append((node, (stable(now),)))
        if self.whole(parts) != whole:
            return [Reason("missing-output", name)]
        return []

    def detail(self, node: RuleNode, inputs: list[str]) -> dict[str, Any]:
        """What a step's record keeps for explaining its next rebuild."""
        return {
            "params": {p: param_repr(self.params[p]) for p in node.params},
            "inputs": {n: f"{d}{self.input_tag(n)}" for n, d in zip(node.inputs, inputs)},
            "code": self.graph.code_deps.get(node.name, {}),
        }


def _dedupe(reasons: list[Reason]) -> list[Reason]:
    seen = set()
    out = []
    for r in reasons:
        k = (r.code, r.name)
        if k not in seen:
            seen.add(k)
            out.append(r)
    order = {c: i for i, c in enumerate(CODES)}
    return sorted(out, key=lambda r: order[r.code])


def early_cutoff_expected(reasons: tuple[Reason, ...]) -> bool:
    """A rerun whose recipe, parameters and inputs are unchanged should give the same
    output, so the rules below it should not need to run."""
    return bool(reasons) and all(r.code in ("forced", "missing-output", "output-changed")
                                 for r in reasons)
