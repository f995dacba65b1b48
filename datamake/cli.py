"""The command line: the only user of click. Flags become a call into the layers below;
errors become exit codes (0 ok, 1 a recipe failed or `-q` found work, 2 the Datafile or
the command line is wrong, 130 interrupted, 143 stopped by SIGTERM).

Over 500 lines because each option, and the small command it maps to, is here and
only here; the commands' work is in the layers below.
"""
from __future__ import annotations

import os
import re
import sys
from typing import Any

import click

from .errors import (EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, DatafileError, DatamakeError,
                     UsageError)
from .steps import step_id

_OVERRIDE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)=(.*)$", re.S)


def parse_value(text: str, name: str = "") -> Any:
    """A command-line value: a Python literal when it parses as one, else the string.
    Raises UsageError for one that starts like a literal but is not one (`p=[1,`)."""
    from .overrides import parse_value as parse

    return parse(text, name)


def split_args(args: tuple[str, ...]) -> tuple[list[str], dict[str, Any], list[str]]:
    """Targets, parameter overrides, and the overrides as typed."""
    targets, overrides, raw = [], {}, []
    for a in args:
        m = _OVERRIDE.match(a)
        if m:
            overrides[m.group(1)] = parse_value(m.group(2), m.group(1))
            raw.append(a)
        else:
            targets.append(a)
    return targets, overrides, raw


class _Command(click.Command):
    """`-j` alone means "as many as CPUs", as in Make, even before a target name."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        fixed: list[str] = []
        for i, a in enumerate(args):
            fixed.append(a)
            if a in ("-j", "--jobs"):
                nxt = args[i + 1] if i + 1 < len(args) else None
                if nxt is None or not nxt.isdigit():
                    fixed.append("0")
        return super().parse_args(ctx, fixed)


@click.command(cls=_Command, context_settings={"help_option_names": ["-h", "--help"],
                                               "max_content_width": 100})
@click.argument("args", nargs=-1, metavar="[TARGET ...] [NAME=VALUE ...]",
                shell_complete=lambda c, p, i: _complete_targets(c, i))
@click.option("-f", "--file", "file", default="Datafile", metavar="FILE",
              help="The Datafile (default: Datafile in the current folder).")
@click.option("-C", "--directory", metavar="DIR", help="Change to DIR first.")
@click.option("-n", "--dry-run", is_flag=True, help="Print what would run and why; run nothing.")
@click.option("-q", "--question", is_flag=True,
              help="Run nothing; exit 0 if everything asked for is up to date, 1 if not.")
@click.option("-B", "--always-make", is_flag=True, help="Treat every rule asked for as stale.")
@click.option("--force", multiple=True, metavar="NAME",
              help="Treat rule NAME as stale (repeatable).")
@click.option("-k", "--keep-going", is_flag=True,
              help="After a failure, build everything that does not depend on it.")
@click.option("-j", "--jobs", type=click.IntRange(min=0), default=1, metavar="N",
              help="Run up to N recipes at once (processes); -j alone: one per CPU.")
@click.option("--executor", default="local", metavar="URL",
              help="Where recipes run: local, dask (a local Dask cluster) or dask://HOST:PORT.")
@click.option("--explain", is_flag=True,
              help="Say for each rule why it is stale or fresh (runs nothing).")
@click.option("--list", "list_", is_flag=True, help="The targets with their descriptions.")
@click.option("--dag", is_flag=True, help="The pipeline graph, coloured by status.")
@click.option("--format", "dag_format",
              type=click.Choice(["dot", "mermaid", "json", "html", "svg"]),
              default="dot", show_default=True,
              help="Format of --dag (html: the pipeline page, self-contained; svg: a picture).")
@click.option("-o", "--output", metavar="FILE", help="Write --dag to FILE.")
@click.option("--check", is_flag=True, help="Static checks of the Datafile; runs nothing.")
@click.option("--cache", "cache_url", metavar="URL",
              help="Use this shared cache (S3 or any fsspec URL, or a folder).")
@click.option("--no-cache", is_flag=True, help="Ignore the shared cache.")
@click.option("--cache-read-only", is_flag=True,
              help="Fetch from the shared cache, never upload to it (also "
                   "DATAMAKE_CACHE_READONLY=1).")
@click.option("--history", metavar="NAME", help="The saved versions of a versioned dataset.")
@click.option("--diff", metavar="NAME",
              help="Compare the metrics of two versions of NAME (args: [V1 [V2]]).")
@click.option("--gc", "gc_size", is_flag=False, flag_value="", default=None, metavar="[SIZE]",
              help="Trim the local cache to SIZE (default: DATAMAKE_CACHE_LIMIT or 10G).")
@click.option("--watch", is_flag=True,
              help="Build, then rebuild whenever a source changes (Ctrl-C stops).")
@click.option("--poll", type=float, default=10.0, show_default=True, metavar="SECONDS",
              help="With --watch, how often remote inputs are checked.")
@click.option("--ui", is_flag=True,
              help="Serve a live page of the pipeline on 127.0.0.1 (with --watch: and "
                   "rebuild on change); Ctrl-C stops.")
@click.option("--port", type=click.IntRange(0, 65535), default=0, metavar="N",
              help="With --ui, the port to serve on (default: a free one).")
# -- housekeeping (issue 14): options, never targets, so none collides with a rule's name
@click.option("--clean", is_flag=True,
              help="Remove what datamake built (outputs, their partitions and versions, "
                   "their records, the local cache); sources are never touched. With -n: "
                   "list it.")
@click.option("--init", "init_", is_flag=True,
              help="Write a new project into the current folder (never overwrites a file).")
@click.option("--runs", "runs_step", is_flag=False, flag_value="", default=None,
              metavar="[STEP]", shell_complete=lambda c, p, i: _complete_targets(c, i),
              help="The recorded builds (STEP: that step's runs over time).")
@click.option("--log-file", metavar="PATH",
              help="Also write the build's output to PATH, as plain text.")
@click.option("--env", "env_name", metavar="NAME",
              help="The environment: conf/NAME/ lays its parameters over conf/base/ and "
                   "gives credentials (default: $DATAMAKE_ENV, else local).")
# --
@click.option("--json", "as_json", is_flag=True, help="One JSON document on stdout.")
@click.option("--quiet", is_flag=True, help="Print only errors and the summary of failures.")
@click.version_option(package_name="datamake", prog_name="datamake")
def main(args: tuple[str, ...], file: str, directory: str | None, dry_run: bool,
         question: bool, always_make: bool, force: tuple[str, ...], keep_going: bool,
         explain: bool, list_: bool, dag: bool, dag_format: str, output: str | None,
         check: bool, cache_url: str | None, no_cache: bool, cache_read_only: bool,
         history: str | None, diff: str | None, gc_size: str | None, watch: bool,
         poll: float, as_json: bool, quiet: bool, jobs: int, executor: str, ui: bool,
         port: int, clean: bool, init_: bool, runs_step: str | None,
         log_file: str | None, env_name: str | None) -> None:
    """datamake: Make for data. Builds TARGET (default: the first rule) and exactly the
    stale part of the pipeline it needs. A TARGET is a rule's output, an alias, or one
    partition of a pattern rule's output: 'name[key]'."""
    # Parsing a Datafile allocates hundreds of thousands of objects, nearly all alive
    # until the end: collecting cycles every 700 allocations (the default) only walks
    # them again and again (30 ms of a 1,000-rule clean build). Once per 100,000 is
    # what mypy and other parsers that build big trees do.
    import gc

    gc.set_threshold(100_000, 20, 20)
    sys.exit(run(args, file=file, directory=directory, dry_run=dry_run, question=question,
                 always_make=always_make, force=force, keep_going=keep_going,
                 explain=explain, list_=list_, dag=dag, dag_format=dag_format,
                 output=output, check=check, cache_url=cache_url, no_cache=no_cache,
                 cache_read_only=cache_read_only, history=history, diff=diff,
                 gc_size=gc_size, as_json=as_json, quiet=quiet, watch=watch, poll=poll,
                 jobs=jobs, executor=executor, ui=ui, port=port, clean=clean, init=init_,
                 runs=runs_step, log_file=log_file, env=env_name))


def run(args: tuple[str, ...], *, file: str, directory: str | None, dry_run: bool,
        question: bool, always_make: bool, force: tuple[str, ...], keep_going: bool,
        explain: bool, list_: bool, dag: bool, dag_format: str, output: str | None,
        check: bool, as_json: bool, quiet: bool, cache_url: str | None = None,
        no_cache: bool = False, history: str | None = None, diff: str | None = None,
        gc_size: str | None = None, watch: bool = False, poll: float = 10.0, jobs: int = 1,
        executor: str = "local", cache_read_only: bool = False, ui: bool = False,
        port: int = 0, clean: bool = False, init: bool = False, runs: str | None = None,
        log_file: str | None = None, env: str | None = None) -> int:
    """The command line's work; returns the exit code."""
    from .console import JsonReporter, LiveReporter, Reporter

    if as_json:
        reporter: Reporter = JsonReporter(quiet=True)
    elif sys.stdout.isatty() and not quiet and os.environ.get("TERM") != "dumb":
        reporter = LiveReporter(quiet=quiet)
    else:
        reporter = Reporter(quiet=quiet)
    project = None
    log = None
    env_before: tuple[str | None] | None = None  # DATAMAKE_ENV as it was, once --env set it
    try:
        if directory:
            try:
                os.chdir(directory)
            except OSError as e:
                raise UsageError("chdir-failed", folder=directory, reason=e.strerror) from None
        if log_file:
            log, reporter = _open_log(log_file, reporter)
        if env is not None:
            from .envs import ENV_VAR, name_problem

            if name_problem(env):
                raise UsageError("env-name-invalid", name=env)
            env_before = (os.environ.get(ENV_VAR),)
            os.environ[ENV_VAR] = env  # for this build, and the processes it starts
        targets, overrides, raw = split_args(args)
        if init:
            return _init(reporter, as_json)
        from .project import Project

        if ui:
            return _ui(file, overrides, raw, reporter, port, poll if watch else None)
        if watch:
            return _watch(file, overrides, reporter, poll)
        if check and as_json:
            try:
                project = Project(file, params=overrides)
            except DatafileError as e:  # still one JSON document, with the errors' codes
                reporter.document(_diag_json(e.diagnostics, []))  # type: ignore[attr-defined]
                return EXIT_USAGE
        else:
            project = Project(file, params=overrides)
        # What is alive now (imports, the parsed Datafile) lives until the end: spare it
        # the collector's walks, including the full one at exit (15 ms). Garbage that
        # recipes make later is collected as usual.
        import gc

        gc.freeze()
        if check:
            return _check(project, file, reporter, as_json)
        if list_:
            return _list(project, reporter, as_json)
        if history:
            return _history(project, history, reporter, as_json)
        if diff:
            return _diff(project, diff, targets, reporter, as_json)
        if gc_size is not None:
            return _gc(project, gc_size, reporter, as_json)
        if clean:
            return _clean(project, reporter, as_json, dry_run)
        if runs is not None:
            return _runs(project, runs, reporter, as_json)
        if project.warnings and not as_json and not quiet:
            reporter.diagnostics(project.warnings)
        asked = list(targets)
        targets = project.resolve_targets(targets)
        for name in force:
            if project.graph.producer.get(name) is None and name not in project.graph.rules:
                from .diagnostics import suggest

                raise UsageError("force-unknown", name=name, best=suggest(name, project.graph.rules))
        forced = {project.graph.producer.get(n, n) for n in force}
        from .executor import build

        if dag:
            from .dag import render_dag

            result = build(project, targets, _quiet(), dry_run=True, forced=forced,
                           always=always_make)
            text = render_dag(project, result, dag_format)
            if output:
                with open(output, "w", encoding="utf-8") as f:
                    f.write(text)
            else:
                reporter.print(text)
            return EXIT_OK
        if explain:
            from .explain import explain_build

            result = build(project, targets, _quiet(), dry_run=True, forced=forced,
                           always=always_make)
            explain_build(project, result, reporter, as_json)
            return EXIT_FAILED if result.failed else EXIT_OK
        if question or dry_run:
            result = build(project, targets, _quiet() if question else reporter,
                           dry_run=True, forced=forced, always=always_make)
            if as_json:
                from .console import plan_json

                reporter.document(plan_json(result))  # type: ignore[attr-defined]
            elif dry_run:
                reporter.finish(result)
            from .console import dry_run_unknown

            unknown = dry_run_unknown(result)
            if unknown is not None:  # not a failure: what a dry run cannot know
                if not as_json:
                    reporter.error(unknown)
                return EXIT_USAGE
            if result.failed or (question and result.work):
                return EXIT_FAILED
            return EXIT_OK
        result = build(project, targets, reporter, keep_going=keep_going, forced=forced,
                       always=always_make, argv=sys.argv, cache=cache_url, no_cache=no_cache,
                       jobs=jobs, executor=executor, cache_read_only=cache_read_only)
        reporter.finish(result, _resume(file, directory, asked, raw) if result.failed else None)
        return EXIT_OK if result.ok else EXIT_FAILED
    except DatamakeError as e:
        reporter.error(e)
        return e.exit_code
    except KeyboardInterrupt as e:
        # Ctrl-C exits 130; SIGTERM (a CI timeout, `kill`) 143, as a process it ended would.
        reporter.note("interrupted; the outputs of every finished step are kept")
        return getattr(e, "exit_code", EXIT_INTERRUPTED)
    finally:
        if project is not None:
            project.close()
        if log is not None:
            log.close()
        if env_before is not None:  # called in process (tests, an editor's plugin)
            from .envs import ENV_VAR

            if env_before[0] is None:
                os.environ.pop(ENV_VAR, None)
            else:
                os.environ[ENV_VAR] = env_before[0]


def entry() -> None:
    """The `datamake` console script: `main`, then a fast exit when no user code ran.

    Tearing down a big graph object by object costs more than a no-op build's work;
    when no recipe or `python:` block ran there are no user exit handlers to honour,
    so the process ends right after flushing its output.
    """
    from . import recipe

    try:
        main.main(prog_name="datamake", standalone_mode=True)
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        if not recipe.user_code_ran():
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
        raise


def _quiet():
    from .console import QuietReporter

    return QuietReporter()


def _resume(file: str, directory: str | None, targets: list[str], raw: list[str]) -> str:
    import shlex

    parts = ["datamake"]
    if directory:
        parts += ["-C", directory]
    if file != "Datafile":
        parts += ["-f", file]
    return shlex.join(parts + targets + raw)


def _check(project, file: str, reporter, as_json: bool) -> int:
    from .loader import load

    # Always a fresh parse, so the warnings are shown even when the cache is valid.
    from . import graph as graph_mod

    try:
        model = load(project.path, project.display)
        _, warnings = graph_mod.build(model)
        problems = graph_mod.check_format_options(model)
        if problems:
            raise DatafileError(problems)
    except DatafileError as e:
        if as_json:
            reporter.document(_diag_json(e.diagnostics, []))
        else:
            reporter.error(e)
        return EXIT_USAGE
    if as_json:
        reporter.document(_diag_json([], warnings))
    else:
        reporter.diagnostics(warnings)
        n = len(warnings)
        reporter.note(f"{project.display}: no errors" + (f", {n} warning{'s' * (n != 1)}" if n else ""))
    return EXIT_OK


def _diag_json(errors, warnings) -> dict:
    def one(d):
        sp = d.span
        return {"file": sp.file if sp else None, "line": sp.line if sp else None,
                "col": sp.col if sp else None, "message": d.message, "help": d.help,
                "code": d.code}

    return {"errors": [one(d) for d in errors], "warnings": [one(d) for d in warnings]}


def _list(project, reporter, as_json: bool) -> int:
    g = project.graph
    rows = [(name, g.docs.get(name, "")) for name in g.targets()]
    if as_json:
        reporter.document({"default": g.default, "targets": [
            {"name": n, "description": d or None, "alias": n in g.aliases} for n, d in rows]})
        return EXIT_OK
    # A pattern rule is shown with its key (`counts[book]`): one partition is a target too.
    rows = [(step_id(n, g.rules[n].key if n in g.rules else None), d)
            for n, d in rows]
    width = max((len(n) for n, _ in rows), default=0)
    lines = [f"Targets in {project.display} (default: {g.default}):"]
    for n, d in rows:
        lines.append(f"  {n:<{width}}  {d}".rstrip())
    reporter.print("\n".join(lines))
    return EXIT_OK


def _versioned(project, name: str):
    from .diagnostics import suggest

    info = project.graph.datasets.get(name)
    if info is None:
        raise UsageError("history-unknown", name=name, best=suggest(name, project.graph.datasets))
    if not info.versioned:
        raise UsageError("not-versioned", name=name)
    return project.catalog.versions(name)


def _history(project, name: str, reporter, as_json: bool) -> int:
    versions = _versioned(project, name)
    if as_json:
        reporter.document([{"number": i, "version": v.id, "time": v.time.isoformat(),
                            "digest": v.digest, "signature": v.sig, "size": v.size,
                            "path": v.url}
                           for i, v in enumerate(versions, 1)])
        return EXIT_OK
    loc = project.catalog.location(name)
    if not versions:
        reporter.print(f"`{name}` ({project.catalog.shown(loc)}) has no saved versions yet")
        return EXIT_OK
    # `@N` names version N in `--diff` and in a rule's inputs (`name@N`).
    at = max(len(f"@{len(versions)}"), 2)
    lines = [f"Versions of `{name}` ({project.catalog.shown(loc)}), oldest first:",
             f"  {'':<{at}}  {'version':<21} {'time (local)':<19}  {'content':<12}  "
             f"{'step':<12}  size"]
    for i, v in enumerate(versions, 1):
        when = v.time.astimezone().strftime("%Y-%m-%d %H:%M:%S")
        size = "" if v.size is None else _human(v.size)
        mark = "  (latest)" if i == len(versions) else ""
        lines.append(f"  {'@' + str(i):<{at}}  {v.id:<21} {when:<19}  {v.digest[:12]:<12}  "
                     f"{v.sig[:12]:<12}  {size}{mark}")
    reporter.print("\n".join(lines))
    return EXIT_OK


def _diff(project, name: str, args: list[str], reporter, as_json: bool) -> int:
    from .report_index import differing
    from .report_versions import records
    from .versions import VersionError, diff, metrics_of, resolve

    name, args = _diff_specs(name, args)
    versions = _versioned(project, name)
    if len(args) > 2:
        raise UsageError("diff-args")
    specs = (args + ["previous", "latest"][len(args):]) if len(args) < 2 else args
    if len(args) == 1:
        specs = [args[0], "latest"]
    try:
        a, b = resolve(versions, specs[0]), resolve(versions, specs[1])
    except VersionError as e:
        raise UsageError(e.code, what=f"`{name}`", **{**e.fields, "name": name}) from None
    fmt = project.catalog.location(name).format
    if fmt not in ("html", "json"):
        raise UsageError("diff-format", name=name, format=fmt)
    cat = project.catalog
    table = diff(metrics_of(cat.read_version(name, a.url), fmt),
                 metrics_of(cat.read_version(name, b.url), fmt))
    ra, rb = records(cat, name, [a, b])
    # A version saved before datamake kept records says nothing of what it came from.
    known = all(r.params or r.inputs for r in (ra, rb))
    changed = {k: differing(getattr(ra, k), getattr(rb, k)) if known else {}
               for k in ("params", "inputs")}
    if as_json:
        reporter.document({"name": name, "from": a.id, "to": b.id, "metrics": table,
                           **changed})
        return EXIT_OK
    lines = [f"`{name}`: {a.id} -> {b.id}"]
    if not table:
        lines.append("  no metrics in either version")
    width = max([len("metric")] + [len(k) for k in table])
    lines.append(f"  {'metric':<{width}}  {'before':>12}  {'after':>12}  change")
    for k, row in table.items():
        change = "" if row["change"] is None else f"{row['change']:+.4g}"
        if row["relative"] is not None:
            change += f" ({row['relative']:+.1%})"
        lines.append(f"  {k:<{width}}  {_num(row['before']):>12}  {_num(row['after']):>12}  {change}")
    for key, title, shown in (("params", "parameters", _short),
                              ("inputs", "inputs", lambda d: "-" if d is None else d[:12])):
        if changed[key]:
            w = max(len(k) for k in changed[key])
            lines.append(f"  {title} that changed:")
            lines.extend(f"    {k:<{w}}  {shown(d['before'])} -> {shown(d['after'])}"
                         for k, d in changed[key].items())
    reporter.print("\n".join(lines))
    return EXIT_OK


def _diff_specs(name: str, args: list[str]) -> tuple[str, list[str]]:
    """`--diff NAME [V1 [V2]]` or `--diff NAME@V1 [NAME@V2]`: the dataset and the
    versions asked for."""
    if "@" not in name:
        return name, args
    name, first = name.split("@", 1)
    specs = [first]
    for arg in args:
        other, at, spec = arg.rpartition("@")
        if at and other != name:
            raise UsageError("diff-two-datasets", name=name, other=other)
        specs.append(spec if at else arg)
    if not first:
        raise UsageError("diff-no-version", name=name)
    return name, specs


def _short(value) -> str:
    if value is None:
        return "-"
    from .report import short

    return short(value, 40)


def _gc(project, size_text: str, reporter, as_json: bool) -> int:
    from .cache import LocalCache, limit, parse_size

    try:
        size = parse_size(size_text) if size_text else limit()
    except ValueError:
        raise UsageError("gc-size", size=size_text) from None
    state = project.state
    state.lock(reporter.waiting_for_lock)
    try:
        removed, freed = LocalCache(project.root, state).gc(size)
        left = state.cache_total()
    finally:
        state.unlock()
    if as_json:
        reporter.document({"removed": removed, "freed": freed, "size": left, "limit": size})
    else:
        reporter.print(f"datamake: removed {removed} cached objects ({_human(freed)}); the "
                       f"local cache holds {_human(left)} (limit {_human(size)})")
    return EXIT_OK


def _human(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"


def _num(v) -> str:
    return "-" if v is None else f"{v:.6g}"


# -- housekeeping: --clean, --init, --runs, --log-file, and shell completion --------------


def _open_log(path: str, reporter):
    """The log file, and a reporter that writes to it too. Raises UsageError."""
    import time

    from .housekeeping import TeeReporter

    try:
        f = open(path, "a", encoding="utf-8")
    except OSError as e:
        raise UsageError("log-file-unwritable", path=path, reason=e.strerror or e) from None
    f.write(f"datamake log: {time.strftime('%Y-%m-%d %H:%M:%S')}: "
            f"{' '.join(['datamake', *sys.argv[1:]])}\n")
    return f, TeeReporter(reporter, f)


def _init(reporter, as_json: bool) -> int:
    from pathlib import Path

    from .housekeeping import init

    written = init(Path.cwd())
    if as_json:
        reporter.document({"written": written})
    else:
        reporter.print("\n".join([f"wrote  {p}" for p in written] + [
            "datamake: a new project; build it with `datamake`, test it with `python -m pytest`"]))
    return EXIT_OK


def _clean(project, reporter, as_json: bool, dry_run: bool) -> int:
    from .housekeeping import clean, to_clean

    state = project.state
    if not dry_run:
        state.lock(reporter.waiting_for_lock)
    try:
        doomed = to_clean(project)
        records = objects = 0
        if not dry_run:
            records, objects = clean(project, doomed)
    finally:
        if not dry_run:
            state.unlock()
    if as_json:
        reporter.document({"dry_run": dry_run, "removed": [d.shown for d in doomed],
                           "records": records, "cached_objects": objects})
        return EXIT_OK
    verb = "would remove" if dry_run else "removed"
    lines = [f"{verb}  {d.shown}" for d in doomed]
    if dry_run:
        lines.append(f"datamake: --clean would remove {len(doomed)} built files, the records "
                     f"of the steps that built them and the local cache")
    else:
        lines.append(f"datamake: removed {len(doomed)} built files, {records} step records "
                     f"and {objects} cached objects")
    reporter.print("\n".join(lines))
    return EXIT_OK


def _runs(project, step: str, reporter, as_json: bool) -> int:
    from .housekeeping import runs, runs_table, step_runs, step_table

    if step:
        from .steps import split_step

        name = split_step(step)[0]
        if name not in project.graph.rules and name not in project.graph.producer:
            from .diagnostics import suggest

            raise UsageError("runs-unknown-step", step=step,
                             best=suggest(name, project.graph.rules))
        step = project.graph.producer.get(step, step)
        rows = step_runs(project.state, step)
        if as_json:
            reporter.document({"step": step, "runs": rows})
        else:
            reporter.print(step_table(step, rows))
        return EXIT_OK
    rows = runs(project.state)
    if as_json:
        reporter.document(rows)
    else:
        reporter.print(runs_table(rows))
    return EXIT_OK


def _complete_targets(ctx: click.Context, incomplete: str) -> list:
    """Target names for shell completion: from the Datafile's text alone (no parse, no
    import of the layers), and nothing, never a traceback, when there is none."""
    from .completion import target_names

    params = ctx.params if ctx is not None else {}
    names = target_names(params.get("file") or "Datafile", params.get("directory"))
    return [click.shell_completion.CompletionItem(n) for n in names if n.startswith(incomplete)]


def _watch(file: str, overrides: dict[str, Any], reporter, poll: float) -> int:
    from pathlib import Path

    from .project import Project
    from .watch import watch

    argv = [sys.executable, "-m", "datamake"]
    skip = False
    for a in sys.argv[1:]:
        if skip:
            skip = False
            continue
        if a in ("--watch", "--ui") or a.startswith(("--poll=", "--port=")):
            continue
        if a in ("--poll", "--port"):
            skip = True
            continue
        if a in ("-C", "--directory") or a.startswith(("-C", "--directory=")):
            # Already in that folder; the child runs here.
            skip = a in ("-C", "--directory")
            continue
        argv.append(a)

    def say(text: str) -> None:
        reporter.print(f"datamake watch: {text}")

    return watch(argv, Path(file).resolve(), lambda: Project(file, params=overrides), say, poll)


def _ui(file: str, overrides: dict[str, Any], raw: list[str], reporter, port: int,
        poll: float | None) -> int:
    """`--ui`: serve the pipeline page until Ctrl-C (with `--watch`, `poll` given: and
    rebuild on change meanwhile)."""
    from .extras import require

    for module in ("starlette", "uvicorn"):
        require(module, "--ui", "the page's web server")
    from .project import Project
    from .ui.server import ListenError, serve
    from .ui.source import LocalSource

    try:
        Project(file, params=overrides).close()
    except DatafileError as e:
        if not any(d.span for d in e.diagnostics):
            raise  # no Datafile there at all: a command-line error
        reporter.error(e)  # a mistake in it: the page shows it too, until it is fixed
    source = LocalSource(file, overrides, raw)
    wait = (lambda: _watch(file, overrides, reporter, poll)) if poll is not None else None
    try:
        return serve(source, port, lambda text: reporter.print(f"datamake: {text}"), wait)
    except ListenError as e:
        raise UsageError("port-unavailable", port=e.port, reason=e.reason) from None
