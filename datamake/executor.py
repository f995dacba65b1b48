"""Running the stale steps of a build in order, committing outputs atomically and
recording each step the moment it finishes (so an interrupted build keeps its progress).
"""
from __future__ import annotations

import contextlib
import os
import sys
import time
from typing import TYPE_CHECKING, Any, Callable, NamedTuple

from . import formats
from .cache import Caches, limit as cache_limit
from .catalog import PartitionMap, Pending, clean_temps, stable
from .errors import CatalogError
from .graph import RuleNode
from .hashing import hash_text
from .planner import Planner, Reason, Verdict
from .recipe import RecipeFailure, failure, make_function, run_shell
from .state import StepRecord

if TYPE_CHECKING:
    from .project import Project
    from .reporter import Reporter


class StepResult(NamedTuple):
    """What running one step produced."""

    paths: tuple[str, ...]
    stamps: tuple[str, ...]
    digests: tuple[str, ...]
    seconds: float


class Outcome(NamedTuple):
    status: str  # built | fresh | cached | failed | skipped | planned
    digests: tuple[str, ...] | None
    seconds: float = 0.0
    reasons: tuple[Reason, ...] = ()
    error: str | None = None


class BuildResult:
    """What a build (or a dry run) did, step by step, in execution order."""

    def __init__(self, targets: list[str], dry_run: bool = False):
        self.targets = targets
        self.outcomes: dict[str, Outcome] = {}
        self.seconds = 0.0
        self.interrupted = False
        self.dry_run = dry_run

    def names(self, status: str) -> list[str]:
        return [n for n, o in self.outcomes.items() if o.status == status]

    @property
    def failed(self) -> list[str]:
        return self.names("failed")

    @property
    def ok(self) -> bool:
        return not self.failed and not self.interrupted

    @property
    def work(self) -> bool:
        """Whether anything was (or, in a dry run, would be) run."""
        return any(o.status in ("planned", "built", "failed") for o in self.outcomes.values())


class InputMissing(Exception):
    def __init__(self, message: str, help: str | None = None):
        super().__init__(message)
        self.help = help


def build(project: "Project", targets: list[str], reporter: "Reporter", *,
          dry_run: bool = False, keep_going: bool = False, forced: set[str] | None = None,
          always: bool = False, argv: list[str] | None = None,
          cache: str | None = None, no_cache: bool = False) -> BuildResult:
    """Build `targets` (or plan them, with `dry_run`). Raises KeyboardInterrupt after
    recording what finished."""
    t0 = time.perf_counter()
    graph = project.graph
    rules = graph.needed(targets)
    state = project.state
    planner = Planner(graph, project.catalog, state, project.params, forced, always)
    result = BuildResult(list(targets), dry_run=dry_run)
    shared = None if no_cache else (cache or project.graph.cache_url)
    if shared and "://" not in shared and not os.path.isabs(shared):
        shared = str(project.root / shared)  # a folder, relative to the Datafile
    run = _Build(project, planner, reporter, result, dry_run, keep_going, Caches(project, shared))
    if not dry_run:
        state.lock(reporter.waiting_for_lock)
        clean_temps(project.root)
        state.begin_run(argv or sys.argv)
    reporter.start(len(rules), dry_run)
    status = "ok"
    try:
        for node in rules:
            run.rule(node)
            if result.failed and not keep_going:
                break
        if result.failed:
            status = "failed"
    except KeyboardInterrupt:
        result.interrupted = True
        status = "interrupted"
        raise
    finally:
        if not dry_run:
            with contextlib.suppress(Exception):
                state.record_files(planner.file_updates)
            with contextlib.suppress(Exception):
                for node, stamps in planner.refreshes:
                    state.refresh_stamps(node, stamps)
            with contextlib.suppress(Exception):
                state.end_run(status)
            for w in run.caches.warnings:
                reporter.note(f"warning: {w}")
            with contextlib.suppress(Exception):
                if state.cache_total() > cache_limit():
                    run.caches.local.gc(cache_limit())
            state.unlock()
        result.seconds = time.perf_counter() - t0
    return result


class _Build:
    """One build's working state: what each rule produced, rule by rule in order."""

    def __init__(self, project: "Project", planner: Planner, reporter: "Reporter",
                 result: BuildResult, dry_run: bool, keep_going: bool, caches: Caches):
        self.project = project
        self.keep_going = keep_going
        self.caches = caches
        self.graph = project.graph
        self.catalog = project.catalog
        self.planner = planner
        self.reporter = reporter
        self.result = result
        self.dry_run = dry_run
        self.status: dict[str, str] = {}  # rule -> ok | failed | skipped
        self.digests: dict[str, str | None] = {}  # whole outputs: name -> digest
        self.parts: dict[str, dict[str, str | None]] = {}  # partitioned outputs
        self._pins: dict[tuple[str, str], Any] = {}

    # -- inputs -------------------------------------------------------------------------

    def _blocked(self, node: RuleNode) -> bool:
        return any(self.status.get(self.graph.producer.get(n, ""), "ok") != "ok"
                   for n, v in zip(node.inputs, node.versions) if v is None)

    def pinned(self, name: str, spec: str):
        """The saved version `spec` of `name`. Raises InputMissing."""
        from .versions import VersionError, resolve

        memo = self._pins.get((name, spec))
        if memo is None:
            try:
                memo = self._pins[(name, spec)] = resolve(self.catalog.versions(name), spec)
            except VersionError as e:
                raise InputMissing(f"input `{name}@{spec}`: {e}",
                                   help=f"`datamake --history {name}` lists its versions") from None
        return memo

    def digest_of(self, node: RuleNode, i: int, key: str | None) -> str | None:
        """The digest of input `i` of a step (partition `key` of a pattern rule)."""
        name = node.inputs[i]
        if node.versions[i] is not None:
            return self.pinned(name, node.versions[i]).digest
        if node.keys[i]:
            return self.part(name, key)  # type: ignore[arg-type]
        return self.whole(name)

    def keys_of(self, name: str) -> list[str]:
        """The partitions of a partitioned input, in key order."""
        if name in self.graph.producer:
            return sorted(self.parts.get(name, {}))
        return sorted(self.planner.source_parts(name))

    def whole(self, name: str) -> str | None:
        """The digest of a whole input. Raises InputMissing for a missing source."""
        if name in self.graph.producer:
            if name in self.parts:
                return self.planner.whole(self.parts[name])
            return self.digests.get(name)
        if self.catalog.is_partitioned(name):
            return self.planner.whole(self.planner.source_parts(name))  # type: ignore[arg-type]
        d = self.planner.source(name)
        if d is None:
            loc = self.catalog.location(name)
            raise InputMissing(f"input `{name}` does not exist at `{self.catalog.shown(loc)}`",
                               help="no rule writes it: create the file, or fix the location")
        return d

    def part(self, name: str, key: str) -> str | None:
        if name in self.graph.producer:
            return self.parts.get(name, {}).get(key)
        return self.planner.source(name, key)

    # -- rules --------------------------------------------------------------------------

    def rule(self, node: RuleNode) -> None:
        if self._blocked(node):
            self.status[node.name] = "skipped"
            if not node.key:
                self.result.outcomes[node.name] = Outcome("skipped", None)
            return
        try:
            if node.key:
                ok = self.pattern(node)
            else:
                ok = self.single(node)
        except (InputMissing, CatalogError) as e:
            self.reporter.step_failed(node.name, str(e), getattr(e, "help", None), 0.0)
            self.result.outcomes[node.name] = Outcome("failed", None, 0.0, (), str(e))
            ok = False
        self.status[node.name] = "ok" if ok else "failed"

    def single(self, node: RuleNode) -> bool:
        """A rule with one step (its outputs whole, or written partition by partition
        by a recipe that yields)."""
        digests = [self.digest_of(node, i, None) for i in range(len(node.inputs))]
        verdict = self.planner.judge(node, node.name, digests)
        outcome = self.execute(node, node.name, verdict, digests, None)
        self.result.outcomes[node.name] = outcome
        if node.generator:
            out = node.outputs[0]
            if outcome.status == "planned":
                # Not known until it runs: what it wrote so far, marked unknown.
                self.parts[out] = {k: None for k in self._recorded_keys(out, None)}
            elif outcome.status in ("fresh", "built", "cached"):
                self.parts[out] = self._recorded_parts(out, verdict.sig)
        else:
            for i, o in enumerate(node.outputs):
                self.digests[o] = outcome.digests[i] if outcome.digests else None
        return outcome.status != "failed"

    def pattern(self, node: RuleNode) -> bool:
        """A pattern rule: one step per partition of its keyed inputs."""
        keyed = [n for n, k in zip(node.inputs, node.keys) if k]
        keys: set[str] | None = None
        for n in keyed:
            ks = set(self.keys_of(n))
            keys = ks if keys is None else keys & ks
        whole = {i: self.digest_of(node, i, None) for i, k in enumerate(node.keys) if not k}
        out_parts: dict[str, dict[str, str | None]] = {o: {} for o in node.outputs}
        ok = True
        for key in sorted(keys or ()):
            step = f"{node.name}[{key}]"
            digests = [self.part(n, key) if k else whole[i]
                       for i, (n, k) in enumerate(zip(node.inputs, node.keys))]
            verdict = self.planner.judge(node, step, digests, key)
            outcome = self.execute(node, step, verdict, digests, key)
            self.result.outcomes[step] = outcome
            for i, o in enumerate(node.outputs):
                out_parts[o][key] = outcome.digests[i] if outcome.digests else None
            if outcome.status == "failed":
                ok = False
                if not self.keep_going:
                    break
        self._remove_vanished(node, keys or set())
        self.parts.update(out_parts)
        return ok

    def _remove_vanished(self, node: RuleNode, keys: set[str]) -> None:
        """Partitions whose input partition is gone: delete their outputs and records."""
        gone = [n for n in self.project.state.children(node.name)
                if n[len(node.name) + 1:-1] not in keys]
        if not gone:
            return
        for step in sorted(gone):
            key = step[len(node.name) + 1:-1]
            self.reporter.note(f"{'would remove' if self.dry_run else 'removed'} {step}: "
                               f"its input partition is gone")
            if not self.dry_run:
                for o in node.outputs:
                    self.catalog.remove(o, key)
        if not self.dry_run:
            self.project.state.forget_many(gone)

    def _recorded_keys(self, name: str, sig: str | None) -> list[str]:
        state = self.project.state
        out = []
        for child in state.children(name):
            q = state.quick(child)
            if q is not None and (sig is None or q[0] == sig):
                out.append(child[len(name) + 1:-1])
        return out

    def _recorded_parts(self, name: str, sig: str | None) -> dict[str, str | None]:
        state = self.project.state
        parts: dict[str, str | None] = {}
        for child in state.children(name):
            q = state.quick(child)
            if q is not None and q[0] == sig:
                parts[child[len(name) + 1:-1]] = q[2]
        return parts

    # -- steps --------------------------------------------------------------------------

    def execute(self, node: RuleNode, step: str, verdict: Verdict,
                digests: list[str | None], key: str | None) -> Outcome:
        if not verdict.stale:
            if verdict.refresh is not None and not self.dry_run:
                self.project.state.refresh_stamps(step, verdict.refresh)
            self.reporter.step_fresh(step)
            return Outcome("fresh", verdict.out_digests)
        if self.dry_run:
            self.reporter.step_planned(step, verdict.reasons)
            return Outcome("planned", None, 0.0, verdict.reasons)
        t = time.perf_counter()
        codes = [r.code for r in verdict.reasons]
        forced = any(r.code == "forced" for r in verdict.reasons)
        if verdict.sig is not None and not node.generator and not forced:
            restored = self.caches.restore(node, key, verdict.sig)
            if restored is not None:
                res = commit(self.project, restored, key, time.perf_counter() - t)
                self.save_versions(node, key, res, verdict.sig)
                _record(self.project, self.planner, node, step, verdict, digests, res, "cached")
                self.reporter.step_done(step, "cached", res.seconds)
                return Outcome("cached", res.digests, res.seconds, verdict.reasons)
        self.reporter.step_start(step, verdict.reasons)
        try:
            whole_keys = {n: self.keys_of(n) for n, k in zip(node.inputs, node.keys)
                          if not k and self.catalog.is_partitioned(n)}
            if node.generator:
                res = self.run_yielding(node, verdict, whole_keys)
            else:
                pins = {i: self.pinned(n, v).url
                        for i, (n, v) in enumerate(zip(node.inputs, node.versions)) if v}
                pendings = run_step(self.project, node, step, key, whole_keys,
                                    quiet_stdout=self.reporter.json, pins=pins)
                try:
                    self.caches.keep(verdict.sig or "", node, pendings)
                    res = commit(self.project, pendings, key, time.perf_counter() - t)
                except BaseException:
                    for p in pendings:
                        self.catalog.discard(p)
                    raise
        except (RecipeFailure, CatalogError) as e:
            seconds = time.perf_counter() - t
            text = e.text if isinstance(e, RecipeFailure) else str(e)
            self.reporter.step_failed(step, text, getattr(e, "help", None), seconds)
            self.project.state.record_run_step(step, "failed", seconds, codes)
            summary = e.summary if isinstance(e, RecipeFailure) else str(e)
            return Outcome("failed", None, seconds, verdict.reasons, summary)
        try:
            self.save_versions(node, key, res, verdict.sig)
        except CatalogError as e:
            self.reporter.note(f"warning: {e}")
        _record(self.project, self.planner, node, step, verdict, digests, res)  # type: ignore[arg-type]
        if not node.generator and verdict.sig is not None:
            self.caches.share(verdict.sig, node, pendings)
        self.reporter.step_done(step, "built", res.seconds)
        return Outcome("built", res.digests, res.seconds, verdict.reasons)

    def save_versions(self, node: RuleNode, key: str | None, res: StepResult,
                      sig: str | None) -> None:
        if key is not None or node.generator:
            return
        for o, digest in zip(node.outputs, res.digests):
            info = self.graph.datasets.get(o)
            if info is not None and info.versioned:
                self.catalog.save_version(o, digest, sig)

    def run_yielding(self, node: RuleNode, verdict: Verdict,
                     whole_keys: dict[str, list[str]]) -> StepResult:
        """Run a recipe that yields `(key, value)` pairs: each partition is written
        atomically and recorded the moment it is yielded, so a run that dies keeps every
        finished partition; `done` tells the recipe which ones it can skip."""
        out = node.outputs[0]
        state = self.project.state
        sig = verdict.sig
        assert sig is not None
        stale = [c for c in state.children(out) if (state.quick(c) or ("",))[0] != sig]
        for child in stale:  # built from another signature: no longer valid
            self.catalog.remove(out, child[len(out) + 1:-1])
        state.forget_many(stale)
        done = self._recorded_parts(out, sig)
        listed = self.catalog.partitions(out)
        done = {k: d for k, d in done.items() if k in listed}
        parts: dict[str, str | None] = dict(done)
        t0 = time.perf_counter()
        step = node.name

        def on_partition(key: str, path: str, stamp: str, digest: str) -> None:
            state.record_step(StepRecord(f"{out}[{key}]", sig, verdict.code_fp,
                                         verdict.params_fp, verdict.inputs_fp or "", (path,),
                                         (stable(stamp),), (digest,), {}, time.time(), 0.0),
                              status=None)
            parts[key] = digest
            self.reporter.step_progress(step, len(parts), None)

        run_step(self.project, node, step, None, whole_keys, quiet_stdout=self.reporter.json,
                 done=frozenset(done), on_partition=on_partition)
        whole = self.planner.whole(parts) or ""
        loc = self.catalog.location(out)
        return StepResult((loc.url,), ("",), (whole,), time.perf_counter() - t0)


def _record(project: "Project", planner: Planner, node: RuleNode, step: str,
            verdict: Verdict, digests: list[str], res: StepResult, status: str = "built") -> None:
    detail = planner.detail(node, digests)
    recipe = project.recipes[node.name]
    h = hash_text(recipe.text)
    detail["recipe"] = h
    texts = {h: recipe.text}
    for own in detail["code"].values():
        t = project.code_texts.get(own)
        if t is not None:
            texts[own] = t
    assert verdict.sig is not None and verdict.inputs_fp is not None
    project.state.record_step(StepRecord(
        step, verdict.sig, verdict.code_fp, verdict.params_fp, verdict.inputs_fp,
        res.paths, tuple(stable(s) for s in res.stamps), res.digests, detail, time.time(),
        res.seconds), texts, status, [r.code for r in verdict.reasons])


def run_step(project: "Project", node: RuleNode, step: str, key: str | None = None,
             whole_keys: dict[str, list[str]] | None = None, quiet_stdout: bool = False,
             done: frozenset[str] | None = None,
             on_partition: Callable[[str, str, str, str], None] | None = None,
             pins: dict[int, str] | None = None) -> list[Pending]:
    """Run one step's recipe; its outputs are written but not yet visible (`commit`
    makes them so). Raises RecipeFailure or CatalogError, leaving nothing behind.

    `key` is the partition of a pattern rule's step; `whole_keys` the partitions of
    partitioned inputs used whole (bound to lazy mappings). A recipe that yields gets
    `done` and reports each partition it commits to `on_partition(key, path, stamp,
    digest)`.
    """
    recipe = project.recipes[node.name]
    cat = project.catalog
    params = project.params
    whole_keys = whole_keys or {}
    path_outs = [] if recipe.generator else [
        o for o in node.outputs if cat.location(o, key).format == formats.PATH]
    pendings: list[Pending] = []
    redirect = contextlib.redirect_stdout(sys.stderr) if quiet_stdout else contextlib.nullcontext()
    try:
        if recipe.kind == "python":
            fn = make_function(recipe, node.name, project.namespace.globals())
            kwargs: dict[str, Any] = {}
            pins = pins or {}
            for i, (name, local, k) in enumerate(zip(node.inputs, node.locals, node.keys)):
                if i in pins:
                    kwargs[local] = cat.load_version(name, pins[i])
                elif name in whole_keys:
                    kwargs[local] = PartitionMap(cat, name, whole_keys[name])
                else:
                    kwargs[local] = cat.load(name, key if k else None)
            for p, local in zip(node.params, node.param_locals):
                kwargs[local] = params[p]
            if node.key and node.key in recipe.args:
                kwargs[node.key] = key
            path_pending = {o: cat.temp_path(o, key) for o in path_outs}
            pendings.extend(path_pending.values())
            for o, pend in path_pending.items():
                if o in recipe.args:
                    kwargs[o] = pend.tmp
            if recipe.generator:
                if "done" in recipe.args:
                    kwargs["done"] = done or frozenset()
                _drain(fn(**kwargs), node, step, project, redirect, on_partition)
                return []
            try:
                with redirect:
                    value = fn(**kwargs)
            except (KeyboardInterrupt, SystemExit):
                raise
            except BaseException as e:
                raise failure(e, f"the recipe of `{step}` failed:") from None
            value_outs = [o for o in node.outputs if o not in path_pending]
            values = _split(value, value_outs, node, project.display, recipe.header_line)
            sealed = {o: cat.seal(p) for o, p in path_pending.items()}
            written = {}
            for o, v in zip(value_outs, values):
                written[o] = cat.write(o, v, key)
                pendings.append(written[o])
            final = [sealed.get(o) or written[o] for o in node.outputs]
        else:
            values_map: dict[str, str] = {}
            for i, (name, local, k) in enumerate(zip(node.inputs, node.locals, node.keys)):
                values_map[local] = (pins or {}).get(i) or cat.location(name, key if k else None).url
            for p, local in zip(node.params, node.param_locals):
                values_map[local] = str(params[p])
            if node.key and key is not None:
                values_map[node.key] = key
            outs = {o: cat.temp_path(o, key) for o in node.outputs}
            pendings.extend(outs.values())
            for o, pend in outs.items():
                values_map[o] = pend.tmp
            if len(node.outputs) == 1:
                values_map["out"] = outs[node.outputs[0]].tmp
            run_shell(recipe, values_map, project.root, project.display,
                      stdout=sys.stderr if quiet_stdout else None)
            final = [cat.seal(outs[o]) for o in node.outputs]
    except BaseException:
        for p in pendings:
            cat.discard(p)
        raise
    return final


def commit(project: "Project", pendings: list[Pending], key: str | None,
           seconds: float) -> StepResult:
    """Make a step's written outputs visible, all of them (each by an atomic rename or a
    single upload). Raises CatalogError."""
    cat = project.catalog
    stamps = []
    for i, p in enumerate(pendings):
        try:
            stamps.append(cat.commit(p, key))
        except BaseException:
            for rest in pendings[i + 1:]:
                cat.discard(rest)
            raise
    return StepResult(tuple(p.final for p in pendings), tuple(stamps),
                      tuple(p.digest for p in pendings), seconds)


def partition_key(item: Any, node: RuleNode, step: str, where: str) -> tuple[str, Any]:
    """A yielded `(key, value)` pair, its key as a string (parts joined by `/`)."""
    if not (isinstance(item, tuple) and len(item) == 2):
        msg = (f"{where}: the recipe of `{step}` yielded a `{type(item).__name__}`; a recipe "
               f"that writes partitions yields `(key, value)` pairs")
        raise RecipeFailure(msg, msg + "\n")
    key, value = item
    if isinstance(key, tuple):
        key = "/".join(str(k) for k in key)
    elif not isinstance(key, str):
        key = str(key)
    return key, value


def _drain(gen: Any, node: RuleNode, step: str, project: "Project", redirect: Any,
           on_partition: Callable[[str, str, str, str], None] | None) -> None:
    """Write each yielded partition atomically the moment it arrives; memory holds one."""
    cat = project.catalog
    out = node.outputs[0]
    where = f"{project.display}:{project.recipes[node.name].header_line}"
    while True:
        try:
            with redirect:
                item = next(gen)
        except StopIteration:
            return
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as e:
            raise failure(e, f"the recipe of `{step}` failed:") from None
        key, value = partition_key(item, node, step, where)
        pending = cat.write(out, value, key)
        del item, value
        try:
            stamp = cat.commit(pending, key)
        except BaseException:
            cat.discard(pending)
            raise
        if on_partition is not None:
            on_partition(key, pending.final, stamp, pending.digest)


def _split(value: Any, outs: list[str], node: RuleNode, filename: str, line: int) -> list[Any]:
    if not outs:
        return []
    where = f"{filename}:{line}"
    if len(outs) == 1:
        if value is None:
            raise RecipeFailure(
                f"{where}: the recipe of `{node.name}` returned nothing (None)",
                f"{where}: the recipe of `{node.name}` returned nothing (None)\n"
                f"help: end the recipe with the value to store: its last line must be an "
                f"expression, or use `return`\n")
        return [value]
    if isinstance(value, dict):
        missing = [o for o in outs if o not in value]
        if missing:
            msg = (f"{where}: the recipe of `{node.name}` returned a dict without "
                   f"{', '.join(f'`{m}`' for m in missing)}")
            raise RecipeFailure(msg, msg + "\n")
        return [value[o] for o in outs]
    if isinstance(value, (tuple, list)) and len(value) == len(outs):
        return list(value)
    got = f"{len(value)} values" if isinstance(value, (tuple, list)) else f"a `{type(value).__name__}`"
    msg = (f"{where}: the recipe of `{node.name}` returned {got}, but the rule has "
           f"{len(outs)} outputs")
    raise RecipeFailure(msg, msg + f"\nhelp: return a tuple in output order "
                        f"({', '.join(outs)}) or a dict keyed by output name\n")
