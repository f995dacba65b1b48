"""The staleness scenarios, in process: each a sequence of builds through the Python API
(the same planner, builder, catalog and SQLite state as the CLI, without a process per
build), asserting exactly which steps ran each time and why. The whole module runs in
well under two seconds; tests/test_staleness.py keeps the same story end to end.
"""
from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path

import pytest

from datamake.api import Project
from datamake.scheduler import Scheduler

# The pipeline of the end-to-end staleness tests, built here in-process.
from test_staleness import ALL, DATAFILE, HELPERS  # noqa: E402


class Pipeline:
    """A project in a temporary folder, built in this process."""

    def __init__(self, root: Path):
        self.root = root

    def write(self, rel: str, text: str) -> None:
        p = self.root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(textwrap.dedent(text).lstrip("\n"))

    def read(self, rel: str) -> str:
        return (self.root / rel).read_text()

    def build(self, *targets: str, params: dict | None = None, **options):
        project = Project(self.root / "Datafile", params=params)
        try:
            return project.build(list(targets) or None, **options)
        finally:
            project.close()

    def built(self, *targets: str, **kw) -> list[str]:
        """The steps that ran, in the order they ran."""
        r = self.build(*targets, **kw)
        assert not r.failed, r.outcomes
        return r.names("built")

    def restored(self, *targets: str, **kw) -> tuple[list[str], list[str]]:
        """The steps that ran, and those restored from the local cache."""
        r = self.build(*targets, **kw)
        assert not r.failed, r.outcomes
        return r.names("built"), r.names("cached")

    def why(self, *targets: str, **kw) -> dict[str, list[str]]:
        """A dry run: each step that would run, with its reasons' codes."""
        r = self.build(*targets, dry_run=True, **kw)
        return {s: [x.code for x in o.reasons] for s, o in r.outcomes.items()
                if o.status == "planned"}


@pytest.fixture
def pipe(tmp_path) -> Pipeline:
    p = Pipeline(tmp_path)
    p.write("Datafile", DATAFILE)
    p.write("helpers.py", HELPERS)
    p.write("data/numbers.txt", "1 2 3\n")
    p.write("data/notes.txt", "hello\n")
    assert p.built() == ALL
    return p


def edit(p: Pipeline, rel: str, old: str, new: str) -> None:
    text = p.read(rel)
    assert old in text
    (p.root / rel).write_text(text.replace(old, new))


def test_noop_and_touch(pipe):
    assert json.loads(pipe.read("out/summary.json")) == {"total": 12}
    assert pipe.built() == []
    for f in ("data/numbers.txt", "data/parsed.json", "out/summary.json"):
        st = os.stat(pipe.root / f)
        os.utime(pipe.root / f, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    assert pipe.why() == {}
    assert pipe.built() == []


def test_input_change_and_early_cutoff(pipe):
    pipe.write("data/numbers.txt", "1 2 3 4\n")
    assert pipe.why() == {"parsed": ["input-changed"], "scaled": ["upstream"],
                          "summary": ["upstream"]}
    assert pipe.built() == ["parsed", "scaled", "summary"]
    pipe.write("data/numbers.txt", "1  2 3 4\n")  # same numbers, other spacing
    assert pipe.built() == ["parsed"]  # parsed is the same: nothing below reruns
    assert pipe.built() == []


def test_parameter_changes_rerun_only_their_users(pipe):
    assert pipe.why(params={"factor": 3}) == {"scaled": ["param-changed"],
                                              "summary": ["upstream"]}
    assert pipe.built(params={"factor": 3}) == ["scaled", "summary"]
    assert pipe.built(params={"factor": 3}) == []
    assert pipe.built(params={"label": "sum", "factor": 3}) == ["summary"]
    assert json.loads(pipe.read("out/summary.json")) == {"sum": 18}
    # Back to the Datafile's values: outputs built before come from the local cache.
    assert pipe.restored() == ([], ["scaled", "summary"])
    assert json.loads(pipe.read("out/summary.json")) == {"total": 12}


def test_code_changes(pipe):
    edit(pipe, "Datafile", "notes.upper()", "notes.upper() + '!'")
    assert pipe.built() == ["loud"]
    edit(pipe, "Datafile", "parsed: numbers\n", "# read them\nparsed: numbers\n")
    edit(pipe, "Datafile", "{label: sum(scaled)}", "{label:   sum( scaled )}")
    assert pipe.built() == []  # comments and formatting are not code
    edit(pipe, "helpers.py", "return 1", "return 2")
    assert pipe.built() == []  # nobody calls it
    edit(pipe, "helpers.py", "x * k", "k * x")
    assert pipe.why() == {"scaled": ["recipe-changed"], "summary": ["upstream"]}
    assert pipe.built() == ["scaled"]  # same values: summary is cut off
    edit(pipe, "helpers.py", "k * x", "k * x + 1")  # this process imported it: still seen
    assert pipe.built() == ["scaled", "summary"]
    assert json.loads(pipe.read("out/summary.json")) == {"total": 15}


def test_lost_or_edited_outputs(pipe):
    os.unlink(pipe.root / "data/parsed.json")
    assert pipe.why() == {"parsed": ["missing-output"], "scaled": ["upstream"],
                          "summary": ["upstream"]}
    assert pipe.restored() == ([], ["parsed"])  # the same again: the rest is fresh
    pipe.write("out/notes.txt", "edited by hand\n")
    assert pipe.why() == {"loud": ["output-changed"]}
    assert pipe.built() == ["loud"]
    assert pipe.read("out/notes.txt") == "HELLO\n"


def test_a_failure_keeps_what_finished_and_the_next_build_resumes(pipe):
    edit(pipe, "helpers.py", "return [x * k for x in xs]", "raise ValueError('boom')")
    pipe.write("data/notes.txt", "bye\n")
    r = pipe.build(keep_going=True)  # the helper this process imported was edited
    assert (r.names("built"), r.failed, r.names("skipped")) == (["loud"], ["scaled"],
                                                                ["summary"])
    assert "ValueError: boom" in r.outcomes["scaled"].error
    assert json.loads(pipe.read("data/scaled.json")) == [2, 4, 6]  # the old output stays
    edit(pipe, "helpers.py", "raise ValueError('boom')", "return [x * k for x in xs]")
    assert pipe.built() == []  # the recipe is back as it was recorded
    edit(pipe, "helpers.py", "return [x * k for x in xs]", "return [k * x for x in xs]")
    assert pipe.built() == ["scaled"]


def test_targets_forcing_and_always(pipe):
    pipe.write("data/numbers.txt", "5\n")
    pipe.write("data/notes.txt", "hey\n")
    assert pipe.built("loud") == ["loud"]
    assert pipe.built("parsed") == ["parsed"]
    assert pipe.built("summary", forced={"summary"}) == ["scaled", "summary"]
    assert pipe.why(forced={"parsed"}) == {"parsed": ["forced"], "scaled": ["upstream"],
                                           "summary": ["upstream"]}
    assert pipe.built(forced={"parsed"}) == ["parsed"]  # same output: cut off
    assert pipe.built(always=True) == ALL


def test_partitions_added_changed_and_removed(tmp_path):
    p = Pipeline(tmp_path)
    p.write("Datafile", """
        dataset raw = "raw/{key}.txt"
        dataset upper = "upper/{key}.txt"
        dataset joined = "joined.txt"

        joined: upper
            "".join(upper[k] for k in sorted(upper))

        upper[key]: raw[key]
            raw.upper()
    """)
    p.write("raw/a.txt", "a")
    p.write("raw/b.txt", "b")
    assert p.built() == ["upper[a]", "upper[b]", "joined"]
    assert p.built() == []
    p.write("raw/c.txt", "c")
    assert p.built() == ["upper[c]", "joined"]
    p.write("raw/a.txt", "aa")
    assert p.built() == ["upper[a]", "joined"]
    os.unlink(tmp_path / "raw/b.txt")
    assert p.built() == ["joined"]
    assert sorted(os.listdir(tmp_path / "upper")) == ["a.txt", "c.txt"]
    assert p.read("joined.txt") == "AAC"
    assert p.built("upper[c]") == []


class _Rule:
    def __init__(self, name, inputs, versions=None):
        self.name, self.inputs = name, inputs
        self.versions = versions or [None] * len(inputs)


class _Graph:
    def __init__(self, rules):
        self.producer = {r.name: r.name for r in rules}


def test_the_scheduler_releases_rules_as_what_they_read_settles():
    a, b, c = _Rule("a", ["src"]), _Rule("b", ["src"]), _Rule("c", ["a", "b"])
    d = _Rule("d", ["c", "b"], versions=[None, "1"])  # b@1 is a saved version
    s = Scheduler(_Graph([a, b, c, d]), [a, b, c, d])
    assert [s.pop().name, s.pop().name] == ["a", "b"]  # in the graph's order
    assert not s
    s.settled("b")
    assert not s  # c still waits on a; d never waited on b
    s.settled("a")
    assert s.pop().name == "c" and not s
    s.settled("c")
    assert s.pop().name == "d" and not s
