"""`include "FILE" [as NS]`: modular pipelines, their names reached as NS.name, their
locations relative to their own folder, their own python: blocks and modules."""
from __future__ import annotations

import json

FEATURES = """
    param n = 2
    dataset words = "data/words.txt"
    dataset top = "out/top.json"

    python:
        from wordtools import count

    ## The n most common words.
    top: words n
        count(words)[:n]
"""

TOOLS = """
def count(text):
    from collections import Counter
    return [w for w, _ in Counter(text.split()).most_common()]
"""

MAIN = """
    include "features/Datafile" as features

    dataset report = "report.json"

    python:
        import json as j

    report: features.top features.n as k
        {"top": top, "k": k}
"""


def setup(proj):
    proj.write("Datafile", MAIN)
    proj.write("features/Datafile", FEATURES)
    proj.write("features/wordtools.py", TOOLS)
    proj.write("features/data/words.txt", "a b a c a b\n")


def test_an_included_pipeline_builds_under_its_namespace(proj):
    setup(proj)
    assert proj.built() == ["features.top", "report"]
    # Locations are the included file's own, relative to its folder.
    assert json.loads(proj.read("features/out/top.json")) == ["a", "b"]
    assert json.loads(proj.read("report.json")) == {"top": ["a", "b"], "k": 2}
    assert proj.built() == []
    assert proj.built("features.n=1") == ["features.top", "report"]
    assert json.loads(proj.read("report.json")) == {"top": ["a"], "k": 1}
    listed = proj.run("--list").out
    assert "features.top  The n most common words." in listed


def test_changes_to_included_files_are_seen(proj):
    setup(proj)
    proj.built()
    proj.write("features/Datafile", FEATURES.replace("[:n]", "[:n + 1]"))
    plan = proj.plan()
    assert plan["reasons"]["features.top"] == [{"code": "recipe-changed", "name": None}]
    assert proj.built() == ["features.top", "report"]
    proj.write("features/wordtools.py", TOOLS.replace("most_common()]", "most_common()]  # sorted"))
    assert proj.built() == []
    proj.write("features/wordtools.py", TOOLS.replace("text.split()", "text.lower().split()"))
    assert proj.plan()["run"] == ["features.top", "report"]


def test_a_failing_included_recipe_points_at_its_own_file(proj):
    setup(proj)
    proj.write("features/Datafile", FEATURES.replace("count(words)[:n]", "count(words)[:n] + 1"))
    r = proj.run()
    assert r.code == 1
    assert 'File "features/Datafile", line 10, in top' in r.err


def test_include_without_a_namespace_merges_names(proj):
    proj.write("Datafile", """
        include "lib/Datafile"
        both: left
            left * 2
    """)
    proj.write("lib/Datafile", """
        left:
            "L"
    """)
    assert proj.built() == ["left", "both"]


def test_include_errors(proj):
    proj.write("Datafile", 'include "a/Datafile" as a\nx: a.y\n    y\n')
    proj.write("a/Datafile", 'include "../Datafile" as back\ny:\n    1\n')
    r = proj.run()
    assert r.code == 2
    assert "error: include cycle: `Datafile` -> `a/Datafile` -> `Datafile`" in r.err
    proj.write("Datafile", 'include "nowhere/Datafile" as n\n')
    r = proj.run()
    assert r.code == 2 and "no Datafile at `nowhere/Datafile` to include" in r.err
    proj.write("Datafile", 'include "b/Datafile" as b\nx: b.yess\n    yess\n')
    proj.write("b/Datafile", 'yes:\n    1\n')
    r = proj.run()
    assert r.code == 2 and "unknown name `b.yess`" in r.err and "did you mean `b.yes`" in r.err


BOXES = """
    python:
        class Box:
            def __init__(self, v):
                self.v = v

            def kind(self):
                return "a box from the included file"

    made:
        Box(1)
"""

CRATES = """
    include "sub/Datafile" as sub

    dataset use = "out/use.json"

    python:
        class Box:  # the same name, another class: each file has its own globals
            def kind(self):
                return "a box from the top file"

    use: sub.made
        [made.kind(), Box().kind()]
"""


def test_values_of_an_included_files_classes_load_in_the_including_file(proj):
    # An undeclared output is a pickle; its class lives in its own file's `python:`
    # block, a module of its own, which a reader in another file gets run first.
    proj.write("sub/Datafile", BOXES)
    proj.write("Datafile", CRATES)
    want = ["a box from the included file", "a box from the top file"]
    assert proj.built("use") == ["sub.made", "use"]
    assert json.loads(proj.path("out/use.json").read_text()) == want
    # The reader alone, in a new process (the producer fresh), and in a pool worker.
    proj.path("out/use.json").unlink()
    assert proj.built("use", "--force", "use") == ["use"]
    assert json.loads(proj.path("out/use.json").read_text()) == want
    proj.path("out/use.json").unlink()
    assert proj.built("use", "--force", "use", "-j", "2") == ["use"]
    assert json.loads(proj.path("out/use.json").read_text()) == want


def test_values_of_an_included_files_classes_load_from_python(proj, monkeypatch):
    import datamake

    proj.write("sub/Datafile", BOXES)
    proj.write("Datafile", CRATES)
    assert proj.built("use") == ["sub.made", "use"]
    monkeypatch.chdir(proj.root)
    p = datamake.Project("Datafile")
    try:
        assert p.load("sub.made").kind() == "a box from the included file"
    finally:
        p.close()


def test_a_reader_of_an_included_files_json_does_not_run_its_python_block(proj):
    # Only pickles need another file's classes: a JSON input is read as it is, and the
    # other file's block (here: a marker, standing for heavy imports) does not run.
    proj.write("sub/Datafile", """
        dataset numbers = "numbers.json"

        python:
            open("sub-block-ran", "w").close()

        numbers:
            [1, 2, 3]
    """)
    proj.write("Datafile", """
        include "sub/Datafile" as sub

        dataset total = "total.json"

        total: sub.numbers
            sum(numbers)
    """)
    assert proj.built() == ["sub.numbers", "total"]
    proj.path("sub-block-ran").unlink()
    assert proj.built("--force", "total") == ["total"]
    assert json.loads(proj.read("total.json")) == 6
    assert not proj.path("sub-block-ran").exists()
