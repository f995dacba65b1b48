"""All output: plain lines (CI, pipes), a live view (terminals), JSON, or nothing.

Nobody else prints. The executor and the CLI hand events to one reporter, which owns
the format; recipes' own prints go to stdout, or to stderr under `--json`.
"""
from __future__ import annotations

import json
import os
import sys
from typing import TYPE_CHECKING, Any, TextIO

from .diagnostics import render_all
from .errors import DatafileError, Diagnostic

if TYPE_CHECKING:
    from .executor import BuildResult
    from .planner import Reason


def reason_text(r: "Reason") -> str:
    return f"{r.code} `{r.name}`" if r.name else r.code


def use_color(stream: TextIO) -> bool:
    return stream.isatty() and "NO_COLOR" not in os.environ and os.environ.get("TERM") != "dumb"


class Reporter:
    """Plain lines, one per event: what CI logs and pipes get."""

    json = False

    def __init__(self, out: TextIO | None = None, err: TextIO | None = None,
                 quiet: bool = False):
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.quiet = quiet
        self.color = use_color(self.err)

    # -- messages -------------------------------------------------------------------

    def diagnostics(self, diags: list[Diagnostic]) -> None:
        self.err.write(render_all(diags, color=self.color))
        self.err.flush()

    def error(self, exc: BaseException) -> None:
        if isinstance(exc, DatafileError):
            self.diagnostics(exc.diagnostics)
            n = sum(1 for d in exc.diagnostics if d.severity == "error")
            if n > 1:
                self.err.write(f"datamake: {n} errors\n")
            return
        text = f"datamake: error: {exc}\n"
        help_ = getattr(exc, "help", None)
        if help_:
            text += f"help: {help_}\n"
        self.err.write(text)
        self.err.flush()

    def note(self, text: str) -> None:
        self.err.write(f"datamake: {text}\n")
        self.err.flush()

    def waiting_for_lock(self, pid: int | None) -> None:
        who = f" (pid {pid})" if pid else ""
        self.note(f"waiting for another datamake{who} building this Datafile...")

    def print(self, text: str) -> None:
        self.out.write(text if text.endswith("\n") else text + "\n")
        self.out.flush()

    # -- a build ------------------------------------------------------------------------

    def start(self, total: int, dry_run: bool) -> None:
        """A build (or a dry run) of `total` rules begins."""

    def step_fresh(self, step: str) -> None:
        pass

    def rule_progress(self, rule: str, done: int, total: int) -> None:
        """A pattern rule has settled `done` of its `total` partitions."""

    def rule_done(self, rule: str) -> None:
        """Every step of a rule has settled."""

    def step_planned(self, step: str, reasons: tuple["Reason", ...]) -> None:
        pass

    def step_start(self, step: str, reasons: tuple["Reason", ...]) -> None:
        if not self.quiet:
            why = ", ".join(reason_text(r) for r in reasons)
            self.out.write(f"run    {step}  ({why})\n")
            self.out.flush()

    def step_progress(self, step: str, done: int, total: int | None) -> None:
        """A step wrote another partition."""

    def step_done(self, step: str, status: str, seconds: float) -> None:
        if not self.quiet:
            self.out.write(f"{status:<6} {step}  {seconds:.2f}s\n")
            self.out.flush()

    def step_failed(self, step: str, text: str, help: str | None, seconds: float) -> None:
        self.out.flush()
        self.err.write(f"FAILED {step}  {seconds:.2f}s\n")
        self.err.write(_failure_body(text, help))
        self.err.flush()

    def finish(self, result: "BuildResult", resume: str | None = None) -> None:
        counts = {s: len(result.names(s)) for s in ("built", "fresh", "cached", "failed")}
        if result.dry_run:
            planned = result.names("planned")
            if not planned and not result.failed:
                self.print(f"datamake: {_targets(result)} up to date")
            elif planned:
                for n in planned:
                    why = ", ".join(reason_text(r) for r in result.outcomes[n].reasons)
                    self.print(f"{n}  ({why})")
                self.print(f"datamake: {len(planned)} of {len(result.outcomes)} steps would run")
            if result.failed:  # told above, step by step; the exit code is 1
                self.err.write(f"datamake: a build would fail at {_listed(result.failed)}\n")
                self.err.flush()
            return
        if result.interrupted:
            self.note(f"interrupted; {counts['built']} finished steps are kept")
            return
        if not result.work and not counts["cached"] and not counts["failed"]:
            if not self.quiet:
                self.print(f"datamake: {_targets(result)} up to date")
            return
        parts = [f"{counts[s]} {s}" for s in ("built", "cached", "fresh", "failed") if counts[s]]
        skipped = len(result.names("skipped"))
        if skipped:
            parts.append(f"{skipped} not run")
        line = f"datamake: {', '.join(parts)} in {result.seconds:.2f}s"
        slow = sorted(((o.seconds, n) for n, o in result.outcomes.items()
                       if o.status in ("built", "failed") and o.seconds >= 0.5), reverse=True)[:3]
        if slow and len([o for o in result.outcomes.values() if o.status == "built"]) > 1:
            line += "\ndatamake: slowest: " + ", ".join(f"{n} {s:.2f}s" for s, n in slow)
        if counts["failed"]:
            self.err.write(line + "\n")
            if counts["built"] or counts["fresh"]:
                self.err.write("datamake: the outputs of every step that finished are kept\n")
            if resume:
                self.err.write(f"datamake: fix the error, then run `{resume}` to resume\n")
            self.err.flush()
        elif not self.quiet:
            self.print(line)


def _failure_body(text: str, help: str | None) -> str:
    """What follows `FAILED step`: a recipe's traceback as is, a one-line message as an
    error, then the hint."""
    body = text if text.endswith("\n") else text + "\n"
    if "\n" not in text.rstrip("\n"):
        body = f"datamake: error: {body}"
    return body + (f"help: {help}\n" if help else "")


def _listed(names: list[str], most: int = 5) -> str:
    shown = ", ".join(f"`{n}`" for n in names[:most])
    return shown + (f" and {len(names) - most} more" if len(names) > most else "")


def _targets(result: "BuildResult") -> str:
    names = ", ".join(f"`{t}`" for t in result.targets)
    return f"{names} is" if len(result.targets) == 1 else f"{names} are"


class QuietReporter(Reporter):
    """Says nothing (the Python API); errors are raised or returned instead."""

    def __init__(self) -> None:
        super().__init__(quiet=True)

    def diagnostics(self, diags: list[Diagnostic]) -> None:
        pass

    def note(self, text: str) -> None:
        pass

    def step_failed(self, step: str, text: str, help: str | None, seconds: float) -> None:
        pass

    def print(self, text: str) -> None:
        pass

    def finish(self, result: "BuildResult", resume: str | None = None) -> None:
        pass


class JsonReporter(Reporter):
    """One JSON document on stdout at the end; failures' tracebacks still go to stderr."""

    json = True

    def step_start(self, step: str, reasons: tuple["Reason", ...]) -> None:
        pass

    def step_done(self, step: str, status: str, seconds: float) -> None:
        pass

    def document(self, doc: Any) -> None:
        self.out.write(json.dumps(doc, indent=2) + "\n")
        self.out.flush()

    def finish(self, result: "BuildResult", resume: str | None = None) -> None:
        self.document(build_json(result))


def plan_json(result: "BuildResult") -> dict[str, Any]:
    """`-n --json`: {"run": [...], "fresh": [...], "reasons": {...}} (docs/cli.md)."""
    run = [n for n, o in result.outcomes.items() if o.status == "planned"]
    doc: dict[str, Any] = {
        "run": run,
        "fresh": [n for n, o in result.outcomes.items() if o.status == "fresh"],
        "reasons": {n: [{"code": r.code, "name": r.name} for r in result.outcomes[n].reasons]
                    for n in run},
    }
    if result.failed:  # steps that cannot be judged (a missing input): a build would fail
        doc["failed"] = [{"node": n, "error": result.outcomes[n].error or "failed"}
                         for n in result.failed]
    return doc


def build_json(result: "BuildResult") -> dict[str, Any]:
    """A build's `--json`: built, fresh, cached, failed and seconds (docs/cli.md)."""
    return {
        "built": result.names("built"),
        "fresh": result.names("fresh"),
        "cached": result.names("cached"),
        "failed": [{"node": n, "error": result.outcomes[n].error or "failed"}
                   for n in result.failed],
        "seconds": round(result.seconds, 6),
    }


class LiveReporter(Reporter):
    """A live view for terminals: overall progress and each running step's time."""

    def __init__(self, out: TextIO | None = None, err: TextIO | None = None,
                 quiet: bool = False):
        super().__init__(out, err, quiet)
        from rich.console import Console

        self.console = Console(file=self.out, highlight=False)
        self.progress = None
        self._tasks: dict[str, Any] = {}
        self._overall = None

    def start(self, total: int, dry_run: bool) -> None:
        super().start(total, dry_run)
        if dry_run or self.quiet:
            return
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, SpinnerColumn,
                                   TextColumn, TimeElapsedColumn)

        self.progress = Progress(SpinnerColumn(), TextColumn("{task.description}"),
                                 BarColumn(bar_width=24), MofNCompleteColumn(),
                                 TimeElapsedColumn(), console=self.console, transient=True)
        self.progress.start()
        self._overall = self.progress.add_task("[bold]checking", total=total)

    def _advance(self) -> None:
        if self.progress is not None and self._overall is not None:
            self.progress.update(self._overall, advance=1)

    def step_fresh(self, step: str) -> None:
        pass

    def rule_progress(self, rule: str, done: int, total: int) -> None:
        if self.progress is None or total < 2:
            return
        task = self._tasks.get(f"{rule}[*]")
        if task is None:
            task = self._tasks[f"{rule}[*]"] = self.progress.add_task(f"  {rule}[*]", total=total)
        self.progress.update(task, completed=done, total=total,
                             description=f"  {rule}[*]  [dim]{done} of {total} partitions[/]")

    def rule_done(self, rule: str) -> None:
        task = self._tasks.pop(f"{rule}[*]", None)
        if self.progress is not None and task is not None:
            self.progress.remove_task(task)
        self._advance()

    def step_start(self, step: str, reasons: tuple["Reason", ...]) -> None:
        if self.progress is None:
            return
        why = ", ".join(reason_text(r) for r in reasons)
        self.console.print(f"[cyan]run[/]    {step}  [dim]({why})[/]")
        self.progress.update(self._overall, description="[bold]building")
        self._tasks[step] = self.progress.add_task(f"  {step}", total=None)

    def step_progress(self, step: str, done: int, total: int | None) -> None:
        task = self._tasks.get(step)
        if self.progress is not None and task is not None:
            what = f"{done} of {total}" if total else f"{done}"
            self.progress.update(task, description=f"  {step}  [dim]{what} partitions[/]")

    def step_done(self, step: str, status: str, seconds: float) -> None:
        if self.progress is None:
            return
        task = self._tasks.pop(step, None)
        if task is not None:
            self.progress.remove_task(task)
        self.console.print(f"[green]{status:<6}[/] {step}  [dim]{seconds:.2f}s[/]")

    def step_failed(self, step: str, text: str, help: str | None, seconds: float) -> None:
        task = self._tasks.pop(step, None)
        if self.progress is not None and task is not None:
            self.progress.remove_task(task)
        if self.progress is not None:
            self.progress.console.print(f"[bold red]FAILED[/] {step}  [dim]{seconds:.2f}s[/]")
            self.progress.console.print(_failure_body(text, help).rstrip("\n"), markup=False,
                                        highlight=False)
            return
        super().step_failed(step, text, help, seconds)

    def _stop(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None

    def finish(self, result: "BuildResult", resume: str | None = None) -> None:
        self._stop()
        super().finish(result, resume)
