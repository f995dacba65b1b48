"""The staleness scenarios of docs/staleness.md, each a sequence of real builds that
asserts exactly which steps ran (and, through -n --json, why)."""
from __future__ import annotations

import json
import os
import time

import pytest

DATAFILE = """
    param factor = 2
    param label = "total"

    dataset numbers = "data/numbers.txt"
    dataset parsed  = "data/parsed.json"
    dataset scaled  = "data/scaled.json"
    dataset summary = "out/summary.json"
    dataset notes   = "data/notes.txt"
    dataset loud    = "out/notes.txt"

    python:
        from helpers import parse_numbers, scale

    all: summary loud

    parsed: numbers
        parse_numbers(numbers)

    scaled: parsed factor
        scale(parsed, factor)

    ## Add it all up.
    summary: scaled label
        {label: sum(scaled)}

    loud: notes
        notes.upper()
"""

HELPERS = """
    def parse_numbers(text):
        return [int(x) for x in text.split()]


    def scale(xs, k):
        return [x * k for x in xs]


    def unrelated():
        return 1
"""

ALL = ["parsed", "scaled", "summary", "loud"]


@pytest.fixture
def pipeline(proj):
    proj.write("Datafile", DATAFILE)
    proj.write("helpers.py", HELPERS)
    proj.write("data/numbers.txt", "1 2 3\n")
    proj.write("data/notes.txt", "hello\n")
    assert proj.built() == ALL
    return proj


def summary(proj):
    return json.loads(proj.read("out/summary.json"))


def test_first_build_then_noop(pipeline):
    assert summary(pipeline) == {"total": 12}
    assert pipeline.read("out/notes.txt") == "HELLO\n"
    assert pipeline.built() == []
    assert pipeline.built() == []
    plan = pipeline.plan()
    assert plan == {"run": [], "fresh": ALL, "reasons": {}}


def test_touch_without_change_runs_nothing(pipeline):
    later = time.time() + 5
    os.utime(pipeline.path("data/numbers.txt"), (later, later))
    os.utime(pipeline.path("data/parsed.json"), (later, later))
    assert pipeline.plan()["run"] == []
    assert pipeline.built() == []
    # The new stamps were remembered: the file is not hashed again next time.
    assert pipeline.built() == []


def test_one_input_changed_reruns_only_its_downstream(pipeline):
    pipeline.write("data/notes.txt", "bye\n")
    assert pipeline.plan()["reasons"] == {"loud": [{"code": "input-changed", "name": "notes"}]}
    assert pipeline.built() == ["loud"]
    assert pipeline.read("out/notes.txt") == "BYE\n"
    pipeline.write("data/numbers.txt", "1 2 3 4\n")
    plan = pipeline.plan()
    assert plan["run"] == ["parsed", "scaled", "summary"]
    assert plan["reasons"] == {"parsed": [{"code": "input-changed", "name": "numbers"}],
                               "scaled": [{"code": "upstream", "name": None}],
                               "summary": [{"code": "upstream", "name": None}]}
    assert pipeline.built() == ["parsed", "scaled", "summary"]
    assert summary(pipeline) == {"total": 20}
    assert pipeline.built() == []


def test_same_parse_of_a_changed_input_stops_early(pipeline):
    pipeline.write("data/numbers.txt", "1  2\n3\n")  # other bytes, same numbers
    assert pipeline.built() == ["parsed"]
    assert pipeline.built() == []


def test_parameter_change_reruns_only_its_users(pipeline):
    plan = pipeline.plan("factor=3")
    assert plan["run"] == ["scaled", "summary"]
    assert plan["reasons"]["scaled"] == [{"code": "param-changed", "name": "factor"}]
    assert pipeline.built("factor=3") == ["scaled", "summary"]
    assert summary(pipeline) == {"total": 18}
    assert pipeline.built("factor=3") == []
    assert pipeline.built("factor=3", "label='sum'") == ["summary"]
    assert summary(pipeline) == {"sum": 18}
    # Editing the Datafile's value is the same change as overriding it. `label` goes
    # back to "total": that summary was built before, so it is restored, not run.
    pipeline.write("Datafile", DATAFILE.replace("param factor = 2", "param factor = 3"))
    doc = pipeline.build()
    assert (doc["built"], doc["cached"]) == ([], ["summary"])
    assert summary(pipeline) == {"total": 18}


def test_recipe_change_reruns_the_rule(pipeline):
    pipeline.write("Datafile", DATAFILE.replace("{label: sum(scaled)}",
                                                "{label: sum(scaled), 'n': len(scaled)}"))
    plan = pipeline.plan()
    assert plan["reasons"] == {"summary": [{"code": "recipe-changed", "name": None}]}
    assert pipeline.built() == ["summary"]
    assert summary(pipeline) == {"total": 12, "n": 3}
    assert pipeline.built() == []


def test_comment_and_formatting_changes_run_nothing(pipeline):
    text = DATAFILE.replace("{label: sum(scaled)}", "{ label : sum( scaled ) }  # the total")
    text = text.replace("    parse_numbers(numbers)", "    # parse\n        parse_numbers(numbers)")
    text = text.replace("## Add it all up.", "## Add it all up, nicely.\n    # a comment")
    pipeline.write("Datafile", text)
    assert pipeline.built() == []
    pipeline.write("helpers.py", HELPERS.replace("def scale(xs, k):",
                                                 "def scale(xs, k):\n        \"\"\"Doc.\"\"\"  # c"))
    assert pipeline.built() == []


def test_helper_function_change_reruns_only_its_callers(pipeline):
    pipeline.write("helpers.py", HELPERS.replace("return 1", "return 2"))
    assert pipeline.built() == []  # nothing calls `unrelated`
    pipeline.write("helpers.py", HELPERS.replace("x * k", "x * k + 1"))
    plan = pipeline.plan()
    assert plan["reasons"] == {"scaled": [{"code": "recipe-changed", "name": None}],
                               "summary": [{"code": "upstream", "name": None}]}
    assert pipeline.built() == ["scaled", "summary"]
    assert summary(pipeline) == {"total": 15}
    r = pipeline.run("--explain", "factor=4")
    assert "scaled: stale" in r.out and "parameter `factor`: 2 -> 4" in r.out


def test_deleted_intermediate_reruns_and_cuts_off_early(pipeline):
    """Without the cache the step reruns; with it (the default) it is restored; either
    way its output comes out identical and nothing below it runs."""
    before = pipeline.path("out/summary.json").stat().st_mtime_ns
    os.unlink(pipeline.path("data/scaled.json"))
    plan = pipeline.plan()
    assert plan["run"] == ["scaled", "summary"]
    assert plan["reasons"]["scaled"] == [{"code": "missing-output", "name": "scaled"}]
    explain = pipeline.run("--explain").out
    assert "early cutoff should stop the rebuild here" in explain
    # Its signature was built before: the output comes back from the local cache.
    doc = pipeline.build()
    assert (doc["built"], doc["cached"]) == ([], ["scaled"])
    assert pipeline.path("out/summary.json").stat().st_mtime_ns == before
    assert pipeline.built() == []
    import shutil

    shutil.rmtree(pipeline.path(".datamake/cache"))
    os.unlink(pipeline.path("data/scaled.json"))
    assert pipeline.built() == ["scaled"]  # really rerun: early cutoff stops the rest
    assert pipeline.path("out/summary.json").stat().st_mtime_ns == before


def test_output_edited_by_hand_is_rebuilt(pipeline):
    pipeline.write("out/summary.json", '{"total": 999}\n')
    plan = pipeline.plan()
    assert plan["reasons"] == {"summary": [{"code": "output-changed", "name": "summary"}]}
    assert pipeline.built() == ["summary"]
    assert summary(pipeline) == {"total": 12}


def test_failing_recipe_keeps_old_outputs_and_the_next_run_is_correct(pipeline):
    old_scaled = pipeline.read("data/scaled.json")
    pipeline.write("helpers.py", HELPERS.replace("return [x * k for x in xs]",
                                                 "return [x * k / 0 for x in xs]"))
    pipeline.write("data/notes.txt", "again\n")
    r = pipeline.run("--json")
    assert r.code == 1
    doc = r.json
    assert (doc["built"], doc["fresh"]) == ([], ["parsed"])  # stops at the first failure
    assert [f["node"] for f in doc["failed"]] == ["scaled"]
    r = pipeline.run("--json", "-k")  # keeps going with what does not depend on it
    assert r.code == 1
    assert (r.json["built"], [f["node"] for f in r.json["failed"]]) == (["loud"], ["scaled"])
    doc = r.json
    assert "ZeroDivisionError: division by zero" in doc["failed"][0]["error"]
    assert pipeline.read("data/scaled.json") == old_scaled  # the old version is intact
    assert 'File "Datafile", line 20, in scaled' in r.err
    assert "helpers.py\", line 6, in scale" in r.err
    assert "datamake:" not in r.err.split("Traceback")[1].split("ZeroDivisionError")[0]
    # Plain output says how to resume.
    r2 = pipeline.run()
    assert r2.code == 1
    assert "run `datamake` to resume" in r2.err
    pipeline.write("helpers.py", HELPERS.replace("x * k", "x * k * 10"))
    assert pipeline.built() == ["scaled", "summary"]
    assert summary(pipeline) == {"total": 120}
    assert pipeline.built() == []


def test_forced_and_always_make(pipeline):
    assert pipeline.built("-B") == ALL
    plan = pipeline.plan("--force", "parsed")
    assert plan["run"] == ["parsed", "scaled", "summary"]
    assert plan["reasons"]["parsed"] == [{"code": "forced", "name": None}]
    # What depends on a forced rule reruns only if its output changes.
    assert pipeline.built("--force", "parsed") == ["parsed"]


def test_question_mode_exit_codes(pipeline):
    assert pipeline.run("-q").code == 0
    pipeline.write("data/notes.txt", "changed\n")
    r = pipeline.run("-q")
    assert (r.code, r.out) == (1, "")
    assert pipeline.run("-q", "summary").code == 0
    assert pipeline.built() == ["loud"]
    assert pipeline.run("-q").code == 0


def test_building_one_target_builds_only_what_it_needs(pipeline):
    pipeline.write("data/numbers.txt", "5\n")
    pipeline.write("data/notes.txt", "x\n")
    assert pipeline.built("scaled") == ["parsed", "scaled"]
    assert pipeline.built("loud") == ["loud"]
    assert pipeline.built() == ["summary"]


def test_deleting_the_state_folder_is_safe(pipeline):
    import shutil

    shutil.rmtree(pipeline.path(".datamake"))
    # Nothing can be verified: every step reruns, with identical results.
    assert pipeline.built() == ALL
    assert summary(pipeline) == {"total": 12}
    assert pipeline.built() == []
