"""Running the stale steps of a build in order, committing outputs atomically and
recording each step the moment it finishes (so an interrupted build keeps its progress).
"""
from __future__ import annotations

import contextlib
import sys
import time
from typing import TYPE_CHECKING, Any, NamedTuple

from . import formats
from .catalog import Pending, clean_temps, stable
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
          always: bool = False, argv: list[str] | None = None) -> BuildResult:
    """Build `targets` (or plan them, with `dry_run`). Raises KeyboardInterrupt after
    recording what finished."""
    t0 = time.perf_counter()
    graph = project.graph
    rules = graph.needed(targets)
    state = project.state
    planner = Planner(graph, project.catalog, state, project.params, forced, always)
    result = BuildResult(list(targets), dry_run=dry_run)
    if not dry_run:
        state.lock(reporter.waiting_for_lock)
        clean_temps(project.root)
        state.begin_run(argv or sys.argv)
    reporter.start(len(rules), dry_run)
    status = "ok"
    try:
        for node in rules:
            outcome = _step(project, planner, node, result, reporter, dry_run)
            result.outcomes[node.name] = outcome
            if outcome.status == "failed" and not keep_going:
                status = "failed"
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
                state.end_run(status)
            state.unlock()
        result.seconds = time.perf_counter() - t0
    return result


def _input_digests(project: "Project", planner: Planner, node: RuleNode,
                   result: BuildResult) -> list[str | None] | str:
    """Digests of a step's data inputs; 'blocked' when an upstream step failed."""
    graph = project.graph
    out: list[str | None] = []
    for name in node.inputs:
        prod = graph.producer.get(name)
        if prod is None:
            d = planner.source(name)
            if d is None:
                loc = project.catalog.location(name)
                raise InputMissing(
                    f"input `{name}` of `{node.name}` does not exist at "
                    f"`{project.catalog.shown(loc)}`",
                    help="no rule writes it: create the file, or fix the location")
            out.append(d)
            continue
        o = result.outcomes.get(prod)
        if o is None or o.status in ("failed", "skipped"):
            return "blocked"
        out.append(None if o.digests is None else o.digests[graph.rules[prod].outputs.index(name)])
    return out


def _step(project: "Project", planner: Planner, node: RuleNode, result: BuildResult,
          reporter: "Reporter", dry_run: bool) -> Outcome:
    step = node.name
    try:
        digests = _input_digests(project, planner, node, result)
    except (InputMissing, CatalogError) as e:
        reporter.step_failed(step, str(e), getattr(e, "help", None), 0.0)
        return Outcome("failed", None, 0.0, (), str(e))
    if digests == "blocked":
        return Outcome("skipped", None)
    assert isinstance(digests, list)
    try:
        verdict = planner.judge(node, step, digests)
    except CatalogError as e:
        reporter.step_failed(step, str(e), e.help, 0.0)
        return Outcome("failed", None, 0.0, (), str(e))
    if not verdict.stale:
        if verdict.refresh is not None and not dry_run:
            project.state.refresh_stamps(step, verdict.refresh)
        reporter.step_fresh(step)
        return Outcome("fresh", verdict.out_digests)
    if dry_run:
        reporter.step_planned(step, verdict.reasons)
        return Outcome("planned", None, 0.0, verdict.reasons)

    reporter.step_start(step, verdict.reasons)
    t = time.perf_counter()
    try:
        res = run_step(project, node, step, quiet_stdout=reporter.json)
    except RecipeFailure as e:
        seconds = time.perf_counter() - t
        reporter.step_failed(step, e.text, None, seconds)
        project.state.record_run_step(step, "failed", seconds, [r.code for r in verdict.reasons])
        return Outcome("failed", None, seconds, verdict.reasons, e.summary)
    except CatalogError as e:
        seconds = time.perf_counter() - t
        reporter.step_failed(step, str(e), e.help, seconds)
        project.state.record_run_step(step, "failed", seconds, [r.code for r in verdict.reasons])
        return Outcome("failed", None, seconds, verdict.reasons, str(e))
    _record(project, planner, node, step, verdict, digests, res)  # type: ignore[arg-type]
    reporter.step_done(step, "built", res.seconds)
    return Outcome("built", res.digests, res.seconds, verdict.reasons)


def _record(project: "Project", planner: Planner, node: RuleNode, step: str,
            verdict: Verdict, digests: list[str], res: StepResult) -> None:
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
        res.seconds), texts, "built", [r.code for r in verdict.reasons])


def run_step(project: "Project", node: RuleNode, step: str, key: str | None = None,
             quiet_stdout: bool = False) -> StepResult:
    """Run one step's recipe and commit its outputs. Raises RecipeFailure or CatalogError."""
    t0 = time.perf_counter()
    recipe = project.recipes[node.name]
    cat = project.catalog
    params = project.params
    path_outs = [o for o in node.outputs if cat.location(o, key).format == formats.PATH]
    pendings: list[Pending] = []
    redirect = contextlib.redirect_stdout(sys.stderr) if quiet_stdout else contextlib.nullcontext()
    try:
        if recipe.kind == "python":
            fn = make_function(recipe, node.name, project.namespace.globals())
            kwargs: dict[str, Any] = {}
            for name, local in zip(node.inputs, node.locals):
                kwargs[local] = cat.load(name)
            for p, local in zip(node.params, node.param_locals):
                kwargs[local] = params[p]
            path_pending = {o: cat.temp_path(o, key) for o in path_outs}
            pendings.extend(path_pending.values())
            for o, pend in path_pending.items():
                if o in recipe.args:
                    kwargs[o] = pend.tmp
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
            for name, local in zip(node.inputs, node.locals):
                values_map[local] = cat.location(name, key).url
            for p, local in zip(node.params, node.param_locals):
                values_map[local] = str(params[p])
            outs = {o: cat.temp_path(o, key) for o in node.outputs}
            pendings.extend(outs.values())
            for o, pend in outs.items():
                values_map[o] = pend.tmp
            if len(node.outputs) == 1:
                values_map["out"] = outs[node.outputs[0]].tmp
            run_shell(recipe, values_map, project.root, project.display,
                      stdout=sys.stderr if quiet_stdout else None)
            final = [cat.seal(outs[o]) for o in node.outputs]
        stamps = tuple(cat.commit(p) for p in final)
    except BaseException:
        for p in pendings:
            cat.discard(p)
        raise
    return StepResult(tuple(p.final for p in final), stamps, tuple(p.digest for p in final),
                      time.perf_counter() - t0)


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
