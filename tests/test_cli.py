"""The command line: JSON documents, listing, the DAG, -C/-f, overrides, exit codes."""
from __future__ import annotations

import json
import os
import re
import textwrap

import pytest

from conftest import mermaid_graph

DATAFILE = """
    param n = 3
    dataset words = "in/words.txt"
    dataset counts = "out/counts.json"

    ## Everything.
    all: counts

    ## Split the text into words.
    tokens: words
        words.split()

    ## How often each word occurs, for the `n` most common.
    counts: tokens n
        from collections import Counter
        dict(Counter(tokens).most_common(n))
"""


@pytest.fixture
def words(proj):
    proj.write("Datafile", DATAFILE)
    proj.write("in/words.txt", "a b a c a b d\n")
    return proj


def test_build_json_document(words):
    r = words.run("--json")
    assert r.code == 0
    doc = r.json
    assert set(doc) == {"built", "fresh", "cached", "failed", "seconds"}
    assert (doc["built"], doc["fresh"], doc["cached"], doc["failed"]) == (
        ["tokens", "counts"], [], [], [])
    assert isinstance(doc["seconds"], float) and doc["seconds"] >= 0
    assert json.loads(words.read("out/counts.json")) == {"a": 3, "b": 2, "c": 1}
    doc = words.build()
    assert (doc["built"], doc["fresh"]) == ([], ["tokens", "counts"])


def test_dry_run_json_document(words):
    doc = words.plan()
    assert doc == {"run": ["tokens", "counts"], "fresh": [],
                   "reasons": {"tokens": [{"code": "no-record", "name": None}],
                               "counts": [{"code": "no-record", "name": None}]}}
    assert not words.path("out/counts.json").exists()  # a dry run runs nothing
    words.built()
    os.unlink(words.path("out/counts.json"))
    assert words.plan("n=2") == {
        "run": ["counts"], "fresh": ["tokens"],
        "reasons": {"counts": [{"code": "missing-output", "name": "counts"},
                               {"code": "param-changed", "name": "n"}]}}


def test_plain_dry_run_and_build_output(words):
    r = words.run("-n")
    assert r.out == ("tokens  (no-record)\ncounts  (no-record)\n"
                     "datamake: 2 of 2 steps would run\n")
    r = words.run()
    lines = r.out.splitlines()
    assert lines[0] == "run    tokens  (no-record)"
    assert lines[1].startswith("built  tokens  ")
    assert lines[2] == "run    counts  (no-record)"
    assert lines[-1].startswith("datamake: 2 built in ")
    assert "\x1b" not in r.out + r.err  # no escape codes when not on a terminal
    assert words.run().out == "datamake: `all` is up to date\n"
    assert words.run("-n").out == "datamake: `all` is up to date\n"


def test_list(words):
    r = words.run("--list")
    assert r.out == textwrap.dedent("""\
        Targets in Datafile (default: all):
          all     Everything.
          tokens  Split the text into words.
          counts  How often each word occurs, for the `n` most common.
    """)
    assert words.run("--list", "--json").json == {"default": "all", "targets": [
        {"name": "all", "description": "Everything.", "alias": True},
        {"name": "tokens", "description": "Split the text into words.", "alias": False},
        {"name": "counts", "description": "How often each word occurs, for the `n` most common.",
         "alias": False}]}


def test_dag_formats(words):
    words.built("tokens")
    dot = words.run("--dag").out
    assert 'digraph datamake {' in dot
    assert '"tokens" [label="tokens", shape=box, fillcolor="#9be29b"' in dot  # fresh
    assert '"counts" [label="counts", shape=box, fillcolor="#ffb366"' in dot  # stale
    assert '"words" -> "tokens";' in dot and '"n" -> "counts";' in dot
    nodes, edges = mermaid_graph(words.run("--dag", "--format", "mermaid").out)
    assert nodes == {"tokens": ("rule", "fresh"), "counts": ("rule", "stale"),
                     "words": ("dataset", "source"), "n": ("param", "param")}
    assert edges == {("words", "tokens"), ("tokens", "counts"), ("n", "counts")}
    data = words.run("--dag", "--format", "json").json
    assert {(e["from"], e["to"]) for e in data["edges"]} == {
        ("words", "tokens"), ("tokens", "counts"), ("n", "counts")}
    status = {n["id"]: n["status"] for n in data["nodes"]}
    assert status == {"tokens": "fresh", "counts": "stale", "words": "source", "n": "param"}
    r = words.run("--dag", "--format", "html", "-o", "dag.html")
    assert r.code == 0
    page = words.read("dag.html")
    assert page.startswith("<!doctype html>") and "<svg" in page
    # Self-contained: the only URL in the page (its scripts inlined) is the SVG namespace.
    assert set(re.findall(r"https?://[^\s\"'<>)]*", page)) == {"http://www.w3.org/2000/svg"}


def test_directory_and_file_options(words, tmp_path):
    other = tmp_path / "elsewhere"
    other.mkdir()
    r = words.run("-C", str(words.root), "--json", cwd=other)
    assert r.json["built"] == ["tokens", "counts"]
    (words.root / "Datafile").rename(words.root / "pipeline.dm")
    r = words.run("-f", "pipeline.dm", "-n", "--json")
    assert r.json["run"] == [] and r.json["fresh"] == ["tokens", "counts"]
    r = words.run("-C", "nowhere")
    assert r.code == 2 and "cannot change to `nowhere`" in r.err


def test_overrides_are_python_literals_or_strings(proj):
    proj.write("Datafile", """
        param value = 0
        dataset out = "out.json"
        out: value
            {"type": type(value).__name__, "value": value}
    """)
    for arg, expected in [("value=3", {"type": "int", "value": 3}),
                          ("value=0.5", {"type": "float", "value": 0.5}),
                          ("value=[1, 2]", {"type": "list", "value": [1, 2]}),
                          ("value=hello", {"type": "str", "value": "hello"}),
                          ("value='3'", {"type": "str", "value": "3"}),
                          ("value=None", {"type": "NoneType", "value": None})]:
        assert proj.built(arg) == ["out"], arg
        assert json.loads(proj.read("out.json")) == expected


def test_explain_shows_what_changed(words):
    words.built()
    words.write("Datafile", DATAFILE.replace("most_common(n)", "most_common(n + 1)"))
    r = words.run("--explain", "n=2")
    assert r.code == 0
    assert r.out == textwrap.dedent("""\
        tokens: fresh
        counts: stale
          recipe-changed: the recipe changed:
              --- before
              +++ now
              @@ -1,2 +1,2 @@
               from collections import Counter
              -dict(Counter(tokens).most_common(n))
              +dict(Counter(tokens).most_common(n + 1))
          param-changed: parameter `n`: 3 -> 2
    """)
    doc = words.run("--explain", "--json").json
    assert doc["run"] == ["counts"]
    assert doc["explain"]["tokens"][0].startswith("fresh")


def test_version_and_help(proj):
    r = proj.run("--version")
    assert r.code == 0 and r.out.startswith("datamake, version ")
    r = proj.run("--help")
    assert r.code == 0 and "Usage: datamake [OPTIONS] [TARGET ...] [NAME=VALUE ...]" in r.out
