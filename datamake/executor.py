"""A build from start to end: plan it, check the targets it asks for, take the lock,
let the builder run the stale steps, and whatever happens, record what finished and
release the lock. `build()` is the one way in (the CLI, `Project.build`, the page).
"""
from __future__ import annotations

import contextlib
import os
import sys
import time
from typing import TYPE_CHECKING, Any

from .cache import Caches, limit as cache_limit
from .catalog import clean_temps
from .builder import Builder, check_asked
from .errors import UsageError
from .outcomes import BuildResult
from .planner import Planner
from .runners import runner_factory

if TYPE_CHECKING:
    from .project import Project
    from .console import Reporter


def build(project: "Project", targets: list[str], reporter: "Reporter",
          **options: Any) -> BuildResult:
    """Build `targets` (options: those of `_build`). While a pipeline page is open on
    this Datafile (`datamake --ui` keeps `.datamake/ui`), a build also tells it what
    it does: one `stat` here, nothing more when no page is open."""
    if not options.get("dry_run") and os.path.exists(project.state_dir / "ui"):
        from .ui.events import followed

        return followed(project.state_dir, reporter, targets,
                        lambda r: _build(project, targets, r, **options))
    return _build(project, targets, reporter, **options)


def _build(project: "Project", targets: list[str], reporter: "Reporter", *,
           dry_run: bool = False, keep_going: bool = False, forced: set[str] | None = None,
           always: bool = False, argv: list[str] | None = None,
           cache: str | None = None, no_cache: bool = False, jobs: int = 1,
           executor: str = "local", cache_read_only: bool = False) -> BuildResult:
    """Build `targets` (or plan them, with `dry_run`) with up to `jobs` recipes at once;
    `cache_read_only`: fetch from the shared cache, upload nothing. Raises
    KeyboardInterrupt after recording what finished (`processes.Interrupted` for SIGINT
    or SIGTERM once a step has started), UsageError for an executor that cannot reach
    the build's files."""
    t0 = time.perf_counter()
    graph = project.graph
    rules = graph.needed(targets)
    state = project.state
    planner = Planner(graph, project.catalog, state, project.params, forced, always)
    result = BuildResult(list(targets), dry_run=dry_run)
    shared = None if no_cache else (cache or project.graph.cache_url)
    if shared and "://" not in shared and not os.path.isabs(shared):
        shared = str(project.root / shared)  # a folder, relative to the Datafile
    # Checked now (a remote cluster that cannot see local files is refused before
    # anything runs); started on the first stale step (a no-op starts no cluster).
    only = graph.partial(targets)
    check_asked(graph, project.catalog, planner, only)
    factory = None if dry_run else runner_factory(project, rules, jobs, executor)
    run = Builder(project, planner, reporter, result, dry_run, keep_going,
                 Caches(project, shared, cache_read_only), factory, only)
    if not dry_run:
        state.lock(reporter.waiting_for_lock)
        for w in state.warnings:
            reporter.note(f"warning: {w}")
        state.warnings.clear()
        clean_temps(project.root)
        state.begin_run(argv or sys.argv)
    reporter.start(len(rules), dry_run)
    status = "ok"
    try:
        run.run(rules)
        if result.failed:
            status = "failed"
    except KeyboardInterrupt:
        result.interrupted = True
        status = "interrupted"
        raise
    except UsageError:  # a `name[key]` target with no such partition
        status = "failed"
        raise
    finally:
        if run.started is not None:
            run.started.close(cancel=result.interrupted)
        if not dry_run:
            with contextlib.suppress(Exception):
                state.record_files(planner.file_updates)
            with contextlib.suppress(Exception):
                for node, stamps in planner.refreshes:
                    state.refresh_stamps(node, stamps)
            if not result.interrupted:
                with contextlib.suppress(Exception):
                    run.rec.restamp()
            with contextlib.suppress(Exception):
                state.end_run(status)
            run.caches.close(cancel=result.interrupted)
            for w in run.caches.warnings:
                reporter.note(f"warning: {w}")
            with contextlib.suppress(Exception):
                if state.cache_total() > cache_limit():
                    run.caches.local.gc(cache_limit())
            state.unlock()
        if run.restore_signals is not None:
            run.restore_signals()
        result.seconds = time.perf_counter() - t0
    return result
