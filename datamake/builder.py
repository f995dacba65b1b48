"""Running one build's rules: each rule is judged when the rules it reads have
settled (so early cutoff sees their real outputs); fresh steps are done at once, cached
ones restored, stale ones handed to the runner (in this process, a pool of processes or
a Dask cluster); what comes back is recorded the moment it does, so an interrupted build
keeps its progress. Which rule may start is the scheduler's; what is written down, the
recorder's.

Just over 500 lines: judging, restoring and running steps share one build's state.
"""
from __future__ import annotations

import collections
import time
from typing import TYPE_CHECKING, Any, Callable, NamedTuple

from .cache import Caches
from .catalog import stable
from .errors import CatalogError, UsageError
from .extras import MissingExtraError
from .graph import RuleNode
from .outcomes import BuildResult, Outcome, Verdict
from .planner import Planner
from .recipe import RecipeFailure, module_name
from .recorder import Recorder
from .runners import Runner, WorkerDied
from .scheduler import Scheduler
from .steps import key_of, step_id

if TYPE_CHECKING:
    from .worker import Context, Job, JobResult
    from .catalog import Catalog
    from .graph import Graph
    from .project import Project
    from .console import Reporter


class InputMissing(Exception):
    """An input a step reads is not there (a source never written, a version not
    saved): the step fails with this message and help."""

    def __init__(self, message: str, help: str | None = None):
        super().__init__(message)
        self.help = help


def check_asked(graph: "Graph", catalog: "Catalog", planner: Planner,
                only: dict[str, set[str]]) -> None:
    """Partitions asked of pattern rules (`name[key]` targets) that a source they read
    does not have: told before the build takes the lock or records a run. (Keys of an
    input another rule writes are known when that rule has run.) Raises UsageError."""
    for rule, asked in sorted(only.items()):
        node = graph.rules[rule]
        for name, keyed in zip(node.inputs, node.keys):
            if keyed and name not in graph.producer:
                missing = asked - set(planner.source_parts(name))
                if missing:
                    raise no_partition(graph, catalog, node, min(missing), name)


def no_partition(graph: "Graph", catalog: "Catalog", node: RuleNode, key: str,
                 name: str) -> UsageError:
    """The error for `node[key]` when its input `name` has no partition `key`."""
    if name in graph.producer:
        where = {"producer": graph.producer[name]}
    else:
        try:
            where = {"location": catalog.shown(catalog.location(name, key))}
        except CatalogError as e:  # not a key of this location at all
            return UsageError("key-target-invalid", target=f"{node.name}[{key}]",
                              reason=e, hint=e.help)
    return UsageError("key-target-missing", target=f"{node.name}[{key}]", name=name,
                      key=key, rule=node.name, **where)


class _Task(NamedTuple):
    """A step handed to the runner, and what the build needs when it comes back."""

    node: RuleNode
    step: str
    key: str | None
    verdict: Verdict
    digests: list[str | None]
    started: float


class _RuleRun:
    """A rule whose steps are under way."""

    def __init__(self, node: RuleNode, keys: set[str] | None):
        self.node = node
        self.keys = keys  # the partitions of a pattern rule
        self.outstanding = 0
        self.settled = 0
        self.ok = True
        self.parts: dict[str, dict[str, str | None]] = {o: {} for o in node.outputs}


class Builder:
    """One build's working state: what each rule produced, as rules finish."""

    def __init__(self, project: "Project", planner: Planner, reporter: "Reporter",
                 result: BuildResult, dry_run: bool, keep_going: bool, caches: Caches,
                 factory: "Callable[[], Runner] | None", only: dict[str, set[str]]):
        self.project = project
        self.only = only  # pattern rules asked for some partitions only: rule -> keys
        self.keep_going = keep_going
        self.caches = caches
        self.factory = factory
        self.started: Runner | None = None
        self.restore_signals: Callable[[], None] | None = None
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
        self.rules: dict[str, _RuleRun] = {}
        self.ready: collections.deque[_Task] = collections.deque()
        self.inflight: dict[Any, _Task] = {}
        self.running: dict[str, _Task] = {}  # step -> task, while it runs
        self.stopping = False
        self._per_rule: dict[str, tuple] = {}  # rule -> what its jobs share
        self._root = str(project.root)
        self.rec = Recorder(project, planner, caches)
        self._cache_dir = str(caches.local.dir)

    # -- scheduling -----------------------------------------------------------------

    @property
    def runner(self) -> "Runner | None":
        if self.started is None and self.factory is not None:
            # From the first step on, SIGTERM (a CI timeout, `kill`) stops the build as
            # Ctrl-C does, and a recipe's own KeyboardInterrupt is told from either.
            from . import processes

            self.restore_signals = processes.handle_signals()
            self.started = self.factory()
        return self.started

    def run(self, rules: list[RuleNode]) -> None:
        """Start each rule when the rules it reads have finished (in topological order
        among those ready); keep the runner busy with ready steps; record each step as
        it comes back."""
        self.schedule = Scheduler(self.graph, rules)
        while self.schedule or self.ready or self.inflight:
            while self.schedule:
                node = self.schedule.pop()
                if self.stopping:
                    self.settle_rule(node.name, "skipped")
                    continue
                self.start(node)
                self.feed()
            self.feed()
            if self.inflight:
                assert self.started is not None
                for ticket, outcome in self.started.wait(self.drain_partitions):
                    self.finish(self.inflight.pop(ticket), outcome)
                self.feed()

    def settle_rule(self, name: str, status: str) -> None:
        """A rule is done (ok, failed or skipped): the rules reading it may start."""
        self.status[name] = status
        self.schedule.settled(name)

    def feed(self) -> None:
        """Hand ready steps to the runner, up to its capacity."""
        while self.ready and self.runner is not None and len(self.inflight) < self.runner.size:
            task = self.ready.popleft()
            if self.stopping:
                self.abandon(task)
                continue
            self.reporter.step_start(task.step, task.verdict.reasons)
            self.running[task.step] = task
            try:
                job = self.job(task)
                ticket = self.runner.submit(job, self.in_process(job), self.drain_partitions)
            except (CatalogError, InputMissing) as e:
                self.finish(task, e)
                continue
            self.inflight[ticket] = task
            if self.runner.inline:  # ran already: collect it at once
                for t, outcome in self.runner.wait(self.drain_partitions):
                    self.finish(self.inflight.pop(t), outcome)

    def abandon(self, task: _Task) -> None:
        """A step not started because the build is stopping after a failure."""
        rr = self.rules[task.node.name]
        rr.outstanding -= 1
        rr.ok = False
        if rr.outstanding == 0:
            self.end_rule(rr)

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
                raise InputMissing(e.told(f"input `{name}@{spec}`"),
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

    def start(self, node: RuleNode) -> None:
        """Judge a rule's steps now that its inputs are known: fresh ones are done,
        cached ones restored, stale ones queued for the runner."""
        if self._blocked(node):
            self.settle_rule(node.name, "skipped")
            if not node.key:
                self.result.outcomes[node.name] = Outcome("skipped", None)
            return
        try:
            if node.key:
                keyed = [n for n, k in zip(node.inputs, node.keys) if k]
                keys: set[str] | None = None
                for n in keyed:
                    ks = set(self.keys_of(n))
                    keys = ks if keys is None else keys & ks
                asked = self.only.get(node.name)
                if asked is not None:
                    keys = self.asked_keys(node, keys or set(), asked)
                rr = self.rules[node.name] = _RuleRun(node, keys or set())
                whole = {i: self.digest_of(node, i, None) for i, k in enumerate(node.keys) if not k}
                # Per input, where its partitions' digests are: one dict each.
                maps = [self.parts.get(n, {}) if n in self.graph.producer
                        else self.planner.source_parts(n) if k else None
                        for n, k in zip(node.inputs, node.keys)]
                fresh = self.planner.quick(node)
                outcomes = self.result.outcomes
                for key in sorted(keys or ()):
                    if self.stopping:
                        rr.ok = False
                        break
                    digests = [m.get(key) if m is not None else whole[i]
                               for i, m in enumerate(maps)]
                    step = step_id(node.name, key)
                    recorded = fresh(step, digests, key)
                    if recorded is not None:  # the common case, decided without a Verdict
                        outcomes[step] = Outcome("fresh", recorded)
                        for o, d in zip(node.outputs, recorded):
                            rr.parts[o][key] = d
                        rr.settled += 1
                        continue
                    self.step(rr, step, key, digests)
                self.reporter.rule_progress(node.name, rr.settled, len(rr.keys or ()))
            else:
                rr = self.rules[node.name] = _RuleRun(node, None)
                digests = [self.digest_of(node, i, None) for i in range(len(node.inputs))]
                self.step(rr, node.name, None, digests)
        except (InputMissing, CatalogError) as e:
            if self.dry_run and not isinstance(e, InputMissing):
                # What a dry run cannot know (an unset variable, storage out of reach) is
                # no failure: said once at the end (see `dry_run_unknown`).
                self.result.unknown[node.name] = (str(e), getattr(e, "help", None))
                self.settle_rule(node.name, "failed")
                self.rules.pop(node.name, None)
                return
            self.reporter.step_failed(node.name, str(e), getattr(e, "help", None), 0.0)
            self.result.outcomes[node.name] = Outcome("failed", None, 0.0, (), str(e))
            self.settle_rule(node.name, "failed")
            self.stopping = self.stopping or not self.keep_going
            self.rules.pop(node.name, None)
            return
        if rr.outstanding == 0:
            self.end_rule(rr)

    def asked_keys(self, node: RuleNode, keys: set[str], asked: set[str]) -> set[str]:
        """The partitions asked of a pattern rule (a `name[key]` target, or what one
        needs), all of which its inputs must have. Raises UsageError."""
        for key in sorted(asked - keys):
            name = next(n for n, k in zip(node.inputs, node.keys)
                        if k and key not in set(self.keys_of(n)))
            if name in self.graph.producer and self.dry_run:
                asked = asked & keys  # the rule that writes it has not run: keys unknown
                continue
            raise no_partition(self.graph, self.catalog, node, key, name)
        return set(asked)

    def step(self, rr: _RuleRun, step: str, key: str | None, digests: list[str | None]) -> None:
        node = rr.node
        verdict = self.planner.judge(node, step, digests, key)
        if not verdict.stale:
            if verdict.refresh is not None and not self.dry_run:
                self.project.state.refresh_stamps(step, verdict.refresh)
            self.reporter.step_fresh(step)
            self.settle(rr, step, key, Outcome("fresh", verdict.out_digests), verdict)
            return
        if self.dry_run:
            self.reporter.step_planned(step, verdict.reasons)
            self.settle(rr, step, key, Outcome("planned", None, 0.0, verdict.reasons), verdict)
            return
        forced = any(r.code == "forced" for r in verdict.reasons)
        if verdict.sig is not None and node.generator and not forced:
            t = time.perf_counter()
            parts = self.caches.restore_parts(node, verdict.sig)
            if parts is not None:
                self.restore_yielded(rr, step, verdict, digests, parts, t)
                return
        if verdict.sig is not None and not node.generator and not forced:
            t = time.perf_counter()
            restored = self.caches.restore(node, key, verdict.sig)
            if restored is not None:
                from .worker import commit  # not imported by a build that runs nothing

                res = commit(self.catalog, restored, key, time.perf_counter() - t)
                self.rec.save_versions(node, key, res, verdict.sig, digests)
                self.rec.record(node, step, verdict, digests, res, "cached")
                self.reporter.step_done(step, "cached", res.seconds)
                self.settle(rr, step, key, Outcome("cached", res.digests, res.seconds,
                                                   verdict.reasons), verdict)
                return
        if node.kind == "notebook":  # the `notebook` extra, or exit 2 saying so
            from .notebook_rule import require
            require()
        rr.outstanding += 1
        self.ready.append(_Task(node, step, key, verdict, digests, time.perf_counter()))

    def restore_yielded(self, rr: _RuleRun, step: str, verdict: Verdict,
                        digests: list[str | None], parts: list[tuple[str, Any]],
                        t: float) -> None:
        """A yielding step's partitions restored from a cache: committed and recorded
        as if the recipe had yielded them, then the step itself, as `cached`."""
        node = rr.node
        out = node.outputs[0]
        self.rec.prepare_yielding(node, verdict)  # partitions of other signatures go
        i = 0
        try:
            for i, (key, pending) in enumerate(parts):
                stamp = self.catalog.commit(pending, key)
                self.rec.record_partition(verdict, out, key, pending.final, stamp, pending.digest)
        except BaseException:
            for _, pending in parts[i:]:
                self.catalog.discard(pending)
            raise
        _, res = self.rec.yielded(out, verdict.sig, time.perf_counter() - t)
        self.rec.record(node, step, verdict, digests, res, "cached")
        self.reporter.step_done(step, "cached", res.seconds)
        self.settle(rr, step, None, Outcome("cached", res.digests, res.seconds,
                                            verdict.reasons), verdict)

    def settle(self, rr: _RuleRun, step: str, key: str | None, outcome: Outcome,
               verdict: Verdict) -> None:
        """A step's outcome is known: note what it produced for the rules below."""
        self.result.outcomes[step] = outcome
        node = rr.node
        if key is not None:
            rr.settled += 1
            self.reporter.rule_progress(node.name, rr.settled, len(rr.keys or ()))
        if outcome.status == "failed":
            rr.ok = False
            self.stopping = self.stopping or not self.keep_going
        if key is not None:
            for i, o in enumerate(node.outputs):
                rr.parts[o][key] = outcome.digests[i] if outcome.digests else None
        elif node.generator:
            out = node.outputs[0]
            if outcome.status == "planned":
                # Not known until it runs: what it wrote so far, marked unknown.
                self.parts[out] = {k: None for k in self.rec._recorded_keys(out, None)}
            elif outcome.status in ("fresh", "built", "cached"):
                self.parts[out] = self.rec._recorded_parts(out, verdict.sig)
        else:
            for i, o in enumerate(node.outputs):
                self.digests[o] = outcome.digests[i] if outcome.digests else None

    def end_rule(self, rr: _RuleRun) -> None:
        node = rr.node
        if node.key:
            if (rr.ok or self.keep_going) and node.name not in self.only:
                self._remove_vanished(node, rr.keys or set())
            self.parts.update(rr.parts)
        self.settle_rule(node.name, "ok" if rr.ok else "failed")
        self.rules.pop(node.name, None)
        self.reporter.rule_done(node.name)

    def _remove_vanished(self, node: RuleNode, keys: set[str]) -> None:
        """Partitions whose input partition is gone: delete their outputs and records."""
        gone = [n for n in self.project.state.children(node.name)
                if key_of(n, node.name) not in keys]
        if not gone:
            return
        for step in sorted(gone):
            key = key_of(step, node.name)
            self.reporter.note(f"{'would remove' if self.dry_run else 'removed'} {step}: "
                               f"its input partition is gone")
            if not self.dry_run:
                for o in node.outputs:
                    self.catalog.remove(o, key)
        if not self.dry_run:
            self.project.state.forget_many(gone)

    # -- running steps --------------------------------------------------------------

    def job(self, task: _Task) -> "Job":
        """A stale step as a self-contained job (what a worker needs, nothing more)."""
        node, project = task.node, self.project
        shared = self._per_rule.get(node.name)
        if shared is None:
            # What every step of a rule shares (a pattern rule has thousands).
            names = list(node.inputs) + list(node.outputs)
            recipe = project.recipes[node.name]
            # Other Datafiles (includes) whose rules write its pickled inputs: their
            # classes are in their own modules, which must exist before a pickle loads.
            scopes = {project.recipes[self.graph.producer[n]].scope for n in node.inputs
                      if n in self.graph.producer and self.catalog.format_of(n) == "pickle"}
            others = tuple((s, module_name(s, self._root), project.python_blocks(s),
                            str(project.scope_folder(s)))
                           for s in sorted(scopes - {recipe.scope}))
            shared = self._per_rule[node.name] = (
                {n: self.graph.datasets[n] for n in names if n in self.graph.datasets},
                {p: project.params[p] for p in node.params}, recipe,
                project.python_blocks(recipe.scope), str(project.scope_folder(recipe.scope)),
                {n: self.keys_of(n) for n, k in zip(node.inputs, node.keys)
                 if not k and self.catalog.is_partitioned(n)},
                module_name(recipe.scope, self._root), others)
        datasets, params, recipe, python, folder, whole_keys, module, others = shared
        pins = {i: self.pinned(n, v).url for i, (n, v) in enumerate(zip(node.inputs, node.versions)) if v}
        done = None
        if node.generator:
            done = self.rec.prepare_yielding(node, task.verdict)
        journal = None
        if node.generator and self.started is not None and self.started.journals:
            v = task.verdict
            journal = (v.sig or "", v.code_fp, v.params_fp, v.inputs_fp or "")
        from .worker import Job

        return Job(self._root, project.display, datasets, params, recipe, python, folder,
                   node, task.step, task.key, whole_keys, pins, done,
                   self._cache_dir, self.reporter.json,
                   self.started.queue() if node.generator and self.started and not journal
                   else None, module, others, journal,
                   (task.verdict.params_fp, task.verdict.inputs_fp) if node.kind == "notebook"
                   else None)

    def in_process(self, job: "Job") -> "Context | None":
        """Steps run here share the build's catalog (and its listings) and namespace."""
        if self.started is None or not self.started.inline:
            return None
        from .worker import Context

        return Context(job.root, job.recipe.filename or job.display, job.folder, self.catalog,
                       job.params, self.project.namespace(job.recipe.scope), job.recipe,
                       tuple(self.project.namespace(scope) for scope, _, _, _ in job.others))

    def drain_partitions(self, events: list[tuple[str, str, str, str, str]],
                         recorded: bool = False) -> None:
        """Record the partitions yielding recipes wrote, the moment they are reported
        (`recorded`: pool workers recorded them in their own journals, and the state has
        taken those in: only their stamps are to be looked at again)."""
        for step, key, path, stamp, digest in events:
            task = self.running.get(step)
            if task is None:
                continue
            out = task.node.outputs[0]
            if not recorded:
                self.rec.record_partition(task.verdict, out, key, path, stamp, digest)
            elif stable(stamp) != stamp:
                self.rec.young.append((step_id(out, key), (path,), (stamp,)))
            self.reporter.step_progress(step, len(self.rec._recorded_keys(out, task.verdict.sig)),
                                        None)

    def finish(self, task: _Task, outcome: "JobResult | BaseException") -> None:
        """Record a step that came back from the runner."""
        node, step, key, verdict = task.node, task.step, task.key, task.verdict
        self.running.pop(step, None)
        rr = self.rules[node.name]
        rr.outstanding -= 1
        seconds = time.perf_counter() - task.started
        if isinstance(outcome, BaseException):
            from . import processes

            if isinstance(outcome, KeyboardInterrupt) and processes.interrupted():
                raise outcome
            if isinstance(outcome, MissingExtraError):
                raise outcome  # the install's fault, not the step's: one line, exit 2
            if isinstance(outcome, RecipeFailure):
                text, summary, help_ = outcome.text, outcome.summary, None
            elif isinstance(outcome, (CatalogError, InputMissing)):
                text = summary = str(outcome)
                help_ = outcome.help
            elif isinstance(outcome, WorkerDied):
                text = summary = str(outcome)
                help_ = ("the process ended without an exception: a signal, memory "
                         "exhausted, a crash in native code or os.abort(); run with -j 1 "
                         "to see the recipe fail on its own")
            else:
                text = summary = f"{type(outcome).__name__}: {outcome}"
                help_ = None
            self.reporter.step_failed(step, text, help_, seconds)
            self.project.state.record_run_step(step, "failed", seconds,
                                               [r.code for r in verdict.reasons],
                                               text.rstrip("\n") + (f"\nhelp: {help_}" if help_ else ""))
            self.settle(rr, step, key, Outcome("failed", None, seconds, verdict.reasons,
                                               summary), verdict)
        else:
            res = outcome.result
            cached = None
            if node.generator:
                out = node.outputs[0]
                parts, res = self.rec.yielded(out, verdict.sig, res.seconds)
                cached = self.rec.kept_parts(out, parts) if verdict.sig else None
            try:
                self.rec.save_versions(node, key, res, verdict.sig, task.digests)
            except CatalogError as e:
                self.reporter.note(f"warning: {e}")
            if outcome.kept and verdict.sig:
                cached = (list(zip(node.outputs, (p.digest for p in outcome.pendings))),
                          list(outcome.kept))
            self.rec.record(node, step, verdict, task.digests, res, cached=cached)
            if verdict.sig is not None and cached is not None:
                self.caches.share_outputs(verdict.sig, cached[0])
            self.reporter.step_done(step, "built", res.seconds)
            self.settle(rr, step, key, Outcome("built", res.digests, res.seconds,
                                               verdict.reasons), verdict)
        if rr.outstanding == 0:
            self.end_rule(rr)
