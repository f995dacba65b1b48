"""Housekeeping a project needs beside building it: `--clean` (remove what datamake
built), `--init` (scaffold a new project), `--runs` (the run history) and the plain build
log of `--log-file`. Options, never targets, so none collides with a user's rule names."""
from __future__ import annotations

import json
import os
import re
import shlex
import time
from pathlib import Path
from typing import Any, NamedTuple, TextIO

from .errors import UsageError
from .steps import split_step

# -------------------------------------------------------------------------- --clean


class Doomed(NamedTuple):
    """One thing `--clean` removes: a dataset (or one partition, or one saved version)."""

    shown: str  # as the user knows it: a path relative to the project, or a URL
    name: str
    key: str | None = None
    version_url: str | None = None


def to_clean(project) -> list[Doomed]:
    """What datamake built for this Datafile and still stores: the outputs of rules (each
    partition of a partitioned one) and the saved versions of versioned ones. A source
    (a dataset no rule writes) is never in it, nor anything at a source's location."""
    g, cat = project.graph, project.catalog
    sources = {cat.location(n).url for n in g.datasets if n not in g.producer
               and not cat.is_partitioned(n)}
    doomed: list[Doomed] = []
    for name in g.producer:
        if cat.is_partitioned(name):
            for key in sorted(cat.partitions(name)):
                loc = cat.location(name, key)
                if loc.url not in sources:
                    doomed.append(Doomed(cat.shown(loc), name, key))
        else:
            loc = cat.location(name)
            if loc.url not in sources and cat.exists(name):
                doomed.append(Doomed(cat.shown(loc), name))
        info = g.datasets.get(name)
        if info is not None and info.versioned:
            for v in cat.versions(name):
                doomed.append(Doomed(_shown_url(project, v.url), name, version_url=v.url))
    return doomed


def _shown_url(project, url: str) -> str:
    if "://" in url:
        return url
    try:
        return os.path.relpath(url, project.root)
    except ValueError:
        return url


def clean(project, doomed: list[Doomed]) -> tuple[int, int]:
    """Remove `doomed`, the records of the steps that built them and the local cache's
    objects (the shared cache is the team's: never touched). Returns (records dropped,
    cached objects removed). Raises CatalogError when something cannot be removed."""
    from .cache import LocalCache

    cat, state = project.catalog, project.state
    for d in doomed:
        if d.version_url is None:
            cat.remove(d.name, d.key)
        elif "://" in d.version_url:
            cat.fs(d.version_url).rm(d.version_url)
        else:
            Path(d.version_url).unlink(missing_ok=True)
    rules = set(project.graph.rules)
    nodes = [n for n in state.nodes() if split_step(n)[0] in rules]
    state.forget_many(nodes)
    removed, _ = LocalCache(project.root, state).gc(0)
    return len(nodes), removed


# --------------------------------------------------------------------------- --init

DATAFILE = '''\
# A datamake project. Datasets live in Kedro's layers:
#   data/01_raw  02_intermediate  03_primary  04_feature  05_model_input
#   06_models  07_model_output  08_reporting
# `datamake` builds the first rule (`all`); `datamake --list` shows the targets;
# `datamake scale=3` runs again with another parameter: only what uses it reruns.

param scale = 2

dataset numbers = "data/01_raw/numbers.json"
dataset scaled  = "data/02_intermediate/scaled.json"
dataset summary = "data/08_reporting/summary.json"  versioned

python:
    from nodes import scale_all, summarise

## Everything: the summary of the scaled numbers.
all: summary

## The raw numbers, times `scale`.
scaled: numbers scale
    scale_all(numbers, scale)

## How many, their sum and their mean.
summary: scaled
    summarise(scaled)
'''

NODES = '''\
"""The project's helper functions: recipes in the Datafile call them. datamake reruns a
recipe when a function it calls changes (comments and formatting do not count)."""


def scale_all(numbers: list[float], factor: float) -> list[float]:
    """Every number times `factor`."""
    return [n * factor for n in numbers]


def summarise(numbers: list[float]) -> dict[str, float]:
    """Count, sum and mean: the metrics `datamake --diff summary` compares."""
    total = sum(numbers)
    return {"count": len(numbers), "sum": total, "mean": total / len(numbers) if numbers else 0.0}
'''

TEST = '''\
from nodes import scale_all, summarise


def test_scale_all():
    assert scale_all([1, 2], 3) == [3, 6]


def test_summarise():
    assert summarise([2, 4]) == {"count": 2, "sum": 6, "mean": 3.0}
'''

CONFTEST = '''\
# Here so that pytest puts the project's folder on sys.path: tests import `nodes`.
'''

GITIGNORE = '''\
# datamake's state, its local cache and the parsed Datafile
.datamake/
# What the pipeline builds (rebuild it with `datamake`); raw data is kept.
data/0[2-8]_*/**
!data/*/.gitkeep
__pycache__/
# Each developer's own environment: parameters laid over conf/base, credentials.
conf/local/
'''

LAYERS = ("01_raw", "02_intermediate", "03_primary", "04_feature", "05_model_input",
          "06_models", "07_model_output", "08_reporting")


def scaffold() -> dict[str, str]:
    """The files `--init` writes: path -> text."""
    files = {"Datafile": DATAFILE, "nodes.py": NODES, "tests/test_nodes.py": TEST,
             "conftest.py": CONFTEST, ".gitignore": GITIGNORE,
             "data/01_raw/numbers.json": "[1, 2, 3, 4, 5]\n"}
    for layer in LAYERS[1:]:
        files[f"data/{layer}/.gitkeep"] = ""
    return files


def init(folder: Path) -> list[str]:
    """Write the scaffold into `folder`; returns the paths written. Raises UsageError,
    writing nothing, when any of them exists already."""
    files = scaffold()
    there = [p for p in files if os.path.lexists(folder / p)]
    if there:
        raise UsageError("init-exists", files=", ".join(f"`{p}`" for p in there),
                         verb="exists" if len(there) == 1 else "exist")
    for rel, text in files.items():
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "x", encoding="utf-8") as f:
            f.write(text)
    return list(files)


# --------------------------------------------------------------------------- --runs

# Options that take a value, so that a value is not taken for a target.
_VALUED = {"-f", "--file", "-C", "--directory", "--force", "-j", "--jobs", "--executor",
           "--format", "-o", "--output", "--cache", "--history", "--diff", "--poll", "--port",
           "--log-file", "--runs", "--env"}


def targets_of(argv: list[str]) -> list[str]:
    """The targets of a recorded command line (`[]`: the default target)."""
    out, skip = [], False
    for a in argv[1:]:
        if skip:
            skip = False
        elif a in _VALUED:
            skip = not (a in ("-j", "--jobs"))
        elif a.startswith("-") or re.match(r"^[A-Za-z_][\w.]*=", a):
            continue
        else:
            out.append(a)
    return out


def runs(state, limit: int = 50) -> list[dict[str, Any]]:
    """The latest `limit` builds, oldest first: when, targets, counts of steps built,
    cached and failed, seconds, status."""
    rows = state.runs(limit)
    found = []
    for run_id, started, finished, argv_json, status, counts in rows:
        try:
            argv = [str(a) for a in json.loads(argv_json)]
        except (ValueError, TypeError):
            argv = []
        found.append({
            "run": run_id, "started": _iso(started), "targets": targets_of(argv),
            "command": shlex.join(["datamake", *argv[1:]]) if argv else "",
            "built": counts.get("built", 0), "cached": counts.get("cached", 0),
            "failed": counts.get("failed", 0),
            "seconds": None if finished is None else round(finished - started, 3),
            "status": status or "running"})
    return found


def step_runs(state, step: str, limit: int = 50) -> list[dict[str, Any]]:
    """One step's latest runs, oldest first: when, status, seconds, peak memory (MB, of
    the process that ran it, while it ran; None where not measured: restored from a
    cache, failed, or not Linux), and the failure's first line when it failed last."""
    last_failure = state.failure(step)
    rows = list(reversed(state.history(step, limit)))
    found = [{"started": _iso(started), "status": status, "seconds": round(seconds, 3),
              "peak_mb": None if peak is None else round(peak / 1024, 1)}
             for started, status, seconds, peak in rows]
    if found and found[-1]["status"] == "failed" and last_failure:
        found[-1]["failure"] = last_failure
    return found


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(t))


def runs_table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "no builds recorded yet"
    head = ("when", "targets", "built", "cached", "failed", "seconds", "status")
    body = [(r["started"].replace("T", " "), " ".join(r["targets"]) or "(default)",
             str(r["built"]), str(r["cached"]), str(r["failed"]),
             "" if r["seconds"] is None else f"{r['seconds']:.2f}", r["status"]) for r in rows]
    return _table(head, body, right={2, 3, 4, 5})


def step_table(step: str, rows: list[dict[str, Any]]) -> str:
    if not rows:
        return f"`{step}` has not run in the recorded builds"
    head = ("when", "status", "seconds", "peak MB")
    body = [(r["started"].replace("T", " "), r["status"], f"{r['seconds']:.2f}",
             "" if r.get("peak_mb") is None else f"{r['peak_mb']:.1f}") for r in rows]
    text = f"Runs of `{step}`, oldest first:\n" + _table(head, body, right={2, 3})
    fail = rows[-1].get("failure")
    if fail:
        text += "\nlast failure:\n" + "\n".join("  " + ln for ln in fail.splitlines())
    return text


def _table(head: tuple[str, ...], body: list[tuple[str, ...]], right: set[int]) -> str:
    widths = [max(len(r[i]) for r in [head, *body]) for i in range(len(head))]

    def line(r):
        return "  ".join(c.rjust(w) if i in right else c.ljust(w)
                         for i, (c, w) in enumerate(zip(r, widths))).rstrip()

    return "\n".join(line(r) for r in [head, *body])


# ----------------------------------------------------------------------- --log-file


class TeeReporter:
    """Everything a reporter is told, told to a second, plain one writing to a log file
    (no colours, no live redraws)."""

    def __init__(self, main, log_file: TextIO):
        from .console import Reporter

        self._main = main
        self._log = Reporter(out=log_file, err=log_file)
        self._log.color = False
        self.json = main.json
        self.quiet = main.quiet

    def __getattr__(self, name: str):
        first = getattr(self._main, name)
        if not callable(first):
            return first
        second = getattr(self._log, name, None)

        def both(*args, **kwargs):
            if second is not None:
                try:
                    second(*args, **kwargs)
                except OSError:  # a full disk under the log never fails the build
                    pass
            return first(*args, **kwargs)

        return both
