"""Running one step, anywhere: in the build's own process, in a pool process (`-j`), or
on a Dask worker. A `Job` carries everything the step needs (locations, parameter
values, the compiled recipe), so only names and small results cross process
boundaries: the worker loads its inputs and writes its outputs through the catalog
itself, and hands back paths, stamps and digests for the build to record.
"""
from __future__ import annotations

import contextlib
import functools
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable, NamedTuple

from . import formats
from .cache import folder_object, link_or_copy
from .catalog import Catalog, PartitionMap, Pending, folder_digest, folder_files, stable
from .graph import RuleNode
from .recipe import (Namespace, RecipeFailure, RecipeInfo, exits_contained, make_function,
                     recipe_error, run_shell)
from .outcomes import StepResult
from .processes import peak_memory_kb, reset_peak_memory
from .state import StepRecord, WorkerJournal
from .steps import step_id


class Job(NamedTuple):
    """One step to run, self-contained and picklable."""

    root: str
    display: str
    datasets: dict[str, Any]  # name -> DatasetInfo: the step's inputs and outputs
    params: dict[str, Any]  # name -> value: the step's parameters
    recipe: RecipeInfo
    python: tuple[tuple[str, int, str], ...]  # the python: blocks its recipe sees
    folder: str  # the folder of the Datafile the recipe is in (sys.path, shell cwd)
    node: RuleNode
    step: str
    key: str | None = None
    whole_keys: dict[str, list[str]] | None = None
    pins: dict[int, str] | None = None
    done: frozenset[str] | None = None
    cache_dir: str | None = None  # link outputs into the local cache before committing
    quiet_stdout: bool = False
    queue: Any = None  # where a yielding recipe reports partitions, across processes
    module: str = "__datafile__"  # the module its python: blocks run as
    # Other Datafiles whose rules write its inputs, as (scope, module, python: blocks,
    # folder): their blocks run before the inputs load (pickles of their classes).
    others: tuple[tuple[str, str, tuple[tuple[str, int, str], ...], str], ...] = ()
    # In a pool worker, a yielding step records each partition in the worker's own
    # journal, under (sig, code_fp, params_fp, inputs_fp): see state.WorkerJournal.
    journal: tuple[str, str, str, str] | None = None
    # A notebook step's (params_fp, inputs_fp): what its kept run is checked against.
    made_from: tuple[str, str | None] | None = None


class JobResult(NamedTuple):
    result: StepResult
    pendings: tuple[Pending, ...]  # what was committed (names, digests)
    kept: tuple[tuple[str, int], ...]  # (digest, bytes) linked into the local cache


class Context(NamedTuple):
    """What a step runs against: a catalog, parameter values, the recipes' globals."""

    root: str
    display: str  # the Datafile the recipe is in, as shown in messages
    folder: str
    catalog: Catalog
    params: dict[str, Any]
    namespace: Namespace
    recipe: RecipeInfo
    others: tuple[Namespace, ...] = ()  # of the Datafiles whose rules write its inputs


@functools.lru_cache(maxsize=8)
def _namespace(python: tuple[tuple[str, int, str], ...], folder: str, name: str) -> Namespace:
    # One per worker process and Datafile: the python: blocks run once, not per step.
    return Namespace(python, Path(folder), name)


def context(job: Job) -> Context:
    return Context(job.root, job.recipe.filename or job.display, job.folder,
                   Catalog(Path(job.root), job.datasets), job.params,
                   _namespace(job.python, job.folder, job.module), job.recipe,
                   tuple(_namespace(b, f, m) for _, m, b, f in job.others))


def run_job(job: Job, ctx: Context | None = None,
            on_partition: Callable[[str, str, str, str], None] | None = None) -> JobResult:
    """Run a job's recipe and commit its outputs (keeping a link in the local cache).
    Raises RecipeFailure or CatalogError; an interrupted job leaves nothing behind."""
    t0 = time.perf_counter()
    ctx = ctx or context(job)
    if on_partition is None and job.journal is not None:
        on_partition = _journaled(job)
    elif on_partition is None and job.queue is not None:
        def on_partition(key: str, path: str, stamp: str, digest: str) -> None:
            job.queue.put((job.step, key, path, stamp, digest))
    reset_peak_memory()
    pendings = run_step(ctx, job.node, job.step, job.key, job.whole_keys, job.quiet_stdout,
                        job.done, on_partition, job.pins, job.cache_dir, job.made_from)
    peak = peak_memory_kb()
    kept: list[tuple[str, int]] = []
    try:
        if job.cache_dir and pendings:
            kept = [k for p in pendings for k in keep(p, job.cache_dir)]
        res = commit(ctx.catalog, pendings, job.key, time.perf_counter() - t0)._replace(
            peak_kb=peak)
    except BaseException:
        for p in pendings:
            ctx.catalog.discard(p)
        raise
    return JobResult(res, tuple(pendings), tuple(kept))


@functools.lru_cache(maxsize=4)
def _worker_journal(root: str, pid: int) -> WorkerJournal:
    return WorkerJournal(root)  # one per worker process (the pid names it)


def _journaled(job: Job) -> Callable[[str, str, str, str], None]:
    """Where a pool worker reports the partitions of a yielding step: a line each in its
    own journal, which the build reads, and which outlives a kill of the build."""
    journal = _worker_journal(job.root, os.getpid())
    out = job.node.outputs[0]
    assert job.journal is not None
    sig, code_fp, params_fp, inputs_fp = job.journal

    def on_partition(key: str, path: str, stamp: str, digest: str) -> None:
        journal.append(StepRecord(step_id(out, key), sig, code_fp, params_fp, inputs_fp,
                                  (path,), (stable(stamp),), (digest,), {}, time.time(), 0.0),
                       job.step, stamp)

    return on_partition


def keep(p: Pending, cache_dir: str) -> list[tuple[str, int]]:
    """Link a written output into the local cache (before it is committed): (digest,
    size) of each object kept. A folder is kept as its files and the list of them (the
    object named by the folder's digest)."""
    if not p.digest.startswith("d:"):
        return [_keep_file(p.tmp, p.digest, cache_dir)]
    files = folder_files(p.tmp)
    if folder_digest(files) != p.digest:
        return []  # changed since it was sealed: not kept (a restore then misses)
    kept = [_keep_file(os.path.join(p.tmp, rel), d, cache_dir) for rel, d in files]
    obj = os.path.join(cache_dir, p.digest)
    os.makedirs(cache_dir, exist_ok=True)
    tmp = f"{obj}.{os.getpid()}.tmp"
    with open(tmp, "wb") as f:
        f.write(folder_object(files))
    os.replace(tmp, obj)
    return kept + [(p.digest, os.stat(obj).st_size)]


def _keep_file(path: str, digest: str, cache_dir: str) -> tuple[str, int]:
    obj = os.path.join(cache_dir, digest)
    try:
        os.link(path, obj)  # atomic: the name appears with its bytes
    except FileExistsError:
        pass  # the same digest: the same bytes, kept already
    except FileNotFoundError:  # the cache's first object
        os.makedirs(cache_dir, exist_ok=True)
        link_or_copy(path, obj)
    except OSError:  # no hard links here (another filesystem): copy
        link_or_copy(path, obj)
    return digest, os.stat(obj).st_size


def run_step(ctx: "Context", node: RuleNode, step: str, key: str | None = None,
             whole_keys: dict[str, list[str]] | None = None, quiet_stdout: bool = False,
             done: frozenset[str] | None = None,
             on_partition: Callable[[str, str, str, str], None] | None = None,
             pins: dict[int, str] | None = None,
             cache_dir: str | None = None,
             made_from: tuple[str, str | None] | None = None) -> list[Pending]:
    """Run one step's recipe; its outputs are written but not yet visible (`commit`
    makes them so). Raises RecipeFailure or CatalogError, leaving nothing behind.

    `key` is the partition of a pattern rule's step; `whole_keys` the partitions of
    partitioned inputs used whole (bound to lazy mappings). A recipe that yields gets
    `done` and reports each partition it commits to `on_partition(key, path, stamp,
    digest)`. A notebook step's `made_from` is its (params, inputs) fingerprints.
    """
    recipe = ctx.recipe
    cat = ctx.catalog
    params = ctx.params
    whole_keys = whole_keys or {}
    path_outs = [] if recipe.generator else [
        o for o in node.outputs if cat.format_of(o) == formats.PATH]
    pendings: list[Pending] = []
    redirect = contextlib.redirect_stdout(sys.stderr) if quiet_stdout else contextlib.nullcontext()
    try:
        if recipe.kind == "notebook":
            from . import notebook_rule

            final = notebook_rule.run(ctx, node, step, pins, whole_keys, made_from)
            pendings.extend(final)
        elif recipe.kind == "python":
            fn = make_function(recipe, node.name, ctx.namespace.globals())
            for other in ctx.others:
                other.globals()
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
                _drain(fn(**kwargs), node, step, ctx, redirect, on_partition, cache_dir)
                return []
            try:
                with redirect, exits_contained():
                    value = fn(**kwargs)
            except BaseException as e:
                raise recipe_error(e, f"the recipe of `{step}`") from None
            value_outs = [o for o in node.outputs if o not in path_pending]
            values = _split(value, value_outs, node, ctx.display, recipe.header_line)
            sealed = {o: cat.seal(p) for o, p in path_pending.items()}
            written = {}
            for o, v in zip(value_outs, values):
                if type(v).__name__ == "Report" and cat.format_of(o) == "html":
                    v = _with_header(v, step, node, params)
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
            run_shell(recipe, values_map, Path(ctx.folder), ctx.display,
                      stdout=sys.stderr if quiet_stdout else None)
            final = [cat.seal(outs[o]) for o in node.outputs]
    except BaseException:
        for p in pendings:
            cat.discard(p)
        raise
    return final


def _with_header(value: Any, step: str, node: RuleNode, params: dict[str, Any]) -> Any:
    """A datamake Report as the page the build writes: its header says what built it
    (the step, its parameters, datamake's version; no time, so a rebuild of the same
    report gives the same bytes)."""
    from .report import BuildContext, Report

    if not isinstance(value, Report):
        return value
    used = {local: params[p] for p, local in zip(node.params, node.param_locals)}
    return value.to_html(context=BuildContext(step, None, used))


def commit(cat: Catalog, pendings: list[Pending], key: str | None,
           seconds: float) -> StepResult:
    """Make a step's written outputs visible, all of them (each by an atomic rename or a
    single upload). Raises CatalogError."""
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


def _drain(gen: Any, node: RuleNode, step: str, ctx: "Context", redirect: Any,
           on_partition: Callable[[str, str, str, str], None] | None,
           cache_dir: str | None = None) -> None:
    """Write each yielded partition atomically the moment it arrives; memory holds one.
    With `cache_dir`, each is also kept in the local cache (so the whole step can be
    restored, or shared, once it has finished)."""
    cat = ctx.catalog
    out = node.outputs[0]
    where = f"{ctx.display}:{ctx.recipe.header_line}"
    while True:
        try:
            with redirect, exits_contained():
                item = next(gen)
        except StopIteration:
            return
        except BaseException as e:
            raise recipe_error(e, f"the recipe of `{step}`") from None
        key, value = partition_key(item, node, step, where)
        pending = cat.write(out, value, key)
        del item, value
        try:
            if cache_dir:
                keep(pending, cache_dir)
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
