"""Partitions, pattern rules and incremental writes: each test is a
sequence of real builds asserting exactly which steps (and partitions) ran."""
from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import signal
import subprocess
import sys
import time

import pytest

from conftest import calls as logged, clean_env, mermaid_graph

WORDS = """
    param top = 2
    dataset books  = "books/{name}.txt"
    dataset counts = "counts/{name}.json"
    dataset table  = "out/table.json"

    all: table

    ## One count per book.
    counts[name]: books[name]
        from collections import Counter
        {"book": name, "counts": dict(Counter(books.split()))}

    ## The most frequent words over all books, read one partition at a time.
    table: counts top
        assert len(counts) == len(list(counts.keys())) and all(k in counts for k in counts)
        rows = {}
        for key, c in counts.items():
            assert c["book"] == key
            rows[key] = sorted(c["counts"], key=lambda w: (-c["counts"][w], w))[:top]
        rows
"""


@pytest.fixture
def books(proj):
    proj.write("Datafile", WORDS)
    proj.write("books/a.txt", "x y x\n")
    proj.write("books/b.txt", "y y z\n")
    proj.write("books/c.txt", "z\n")
    assert proj.built() == ["counts[a]", "counts[b]", "counts[c]", "table"]
    return proj


def table(proj):
    return json.loads(proj.read("out/table.json"))


def test_pattern_rule_builds_one_step_per_partition(books):
    assert table(books) == {"a": ["x", "y"], "b": ["y", "z"], "c": ["z"]}
    assert json.loads(books.read("counts/b.json")) == {"book": "b", "counts": {"y": 2, "z": 1}}
    assert books.built() == []
    assert books.plan() == {"run": [], "fresh": ["counts[a]", "counts[b]", "counts[c]", "table"],
                            "reasons": {}}


def test_add_change_and_remove_one_partition(books):
    books.write("books/d.txt", "w\n")
    plan = books.plan()
    assert plan["run"] == ["counts[d]", "table"]
    assert plan["reasons"]["counts[d]"] == [{"code": "no-record", "name": None}]
    assert books.built() == ["counts[d]", "table"]
    books.write("books/b.txt", "q q\n")
    assert books.plan()["reasons"] == {
        "counts[b]": [{"code": "input-changed", "name": "books"}],
        "table": [{"code": "upstream", "name": None}]}
    assert books.built() == ["counts[b]", "table"]
    assert table(books)["b"] == ["q"]
    os.unlink(books.path("books/a.txt"))
    r = books.run("--json")
    assert r.json["built"] == ["table"]
    assert "removed counts[a]: its input partition is gone" in r.err
    assert not books.path("counts/a.json").exists()
    assert sorted(table(books)) == ["b", "c", "d"]
    assert books.built() == []


def test_touching_a_partition_runs_nothing(books):
    later = time.time() + 5
    os.utime(books.path("books/a.txt"), (later, later))
    assert books.built() == []


def test_partition_with_unchanged_output_stops_early(books):
    books.write("books/c.txt", "z\n\n")  # new bytes, same words
    assert books.built() == ["counts[c]"]


def test_parameter_and_recipe_changes(books):
    assert books.built("top=1") == ["table"]  # only the rule that uses `top`
    books.write("Datafile", WORDS.replace("Counter(books.split())", "Counter(books.upper().split())"))
    assert books.built("top=1") == ["counts[a]", "counts[b]", "counts[c]", "table"]
    assert table(books)["a"] == ["X"]


def test_pattern_rule_with_a_parameter_reruns_every_partition(proj):
    proj.write("Datafile", """
        param scale = 2
        dataset raw = "raw/{id}.json"
        dataset scaled = "scaled/{id}.json"
        scaled[id]: raw[id] scale
            [x * scale for x in raw]
    """)
    for i in range(3):
        proj.write(f"raw/{i}.json", json.dumps([i, i + 1]))
    assert proj.built() == ["scaled[0]", "scaled[1]", "scaled[2]"]
    assert proj.built("scale=3") == ["scaled[0]", "scaled[1]", "scaled[2]"]
    assert json.loads(proj.read("scaled/2.json")) == [6, 9]
    assert proj.built("scale=3") == []


def test_several_placeholders(proj):
    proj.write("Datafile", """
        dataset sales = "sales/{year}/{month}.txt"
        dataset totals = "totals/{year}-{month}.json"
        totals[ym]: sales[ym]
            {"period": ym, "total": sum(int(x) for x in sales.split())}
        all: totals
    """)
    proj.write("sales/2025/12.txt", "1 2")
    proj.write("sales/2026/01.txt", "3 4")
    proj.write("sales/2026/notes.md", "not a partition")
    assert proj.built("totals") == ["totals[2025/12]", "totals[2026/01]"]
    assert json.loads(proj.read("totals/2026-01.json")) == {"period": "2026/01", "total": 7}
    proj.write("sales/2026/02.txt", "5")
    assert proj.built("totals[2026/02]") == ["totals[2026/02]"]
    r = proj.run("totals[2026]")
    assert (r.code, r.err) == (2, "datamake: error: `totals[2026]`: `2026` is not a partition "
                                  "key of `sales`\nhelp: its location has 2 placeholder(s); a "
                                  "key has as many non-empty parts, joined by `/`\n")


CHAIN = """
    dataset raw = "raw/{id}.txt"
    dataset clean = "clean/{id}.txt"
    dataset upper = "upper/{id}.txt"
    dataset joined = "out/joined.txt"

    joined: upper
        "".join(upper[k] for k in sorted(upper))

    clean[id]: raw[id]
        raw.strip() + "!"

    upper[id]: clean[id]
        clean.upper()
"""


def test_one_partition_as_a_target(proj):
    proj.write("Datafile", CHAIN)
    for k in "abc":
        proj.write(f"raw/{k}.txt", f" {k} ")
    # `upper[b]` needs `clean[b]`, nothing else.
    assert proj.run("--list").out == ("Targets in Datafile (default: joined):\n"
                                      "  joined\n  clean[id]\n  upper[id]\n")
    assert proj.built("upper[b]") == ["clean[b]", "upper[b]"]
    assert os.listdir(proj.path("upper")) == ["b.txt"]
    assert proj.read("upper/b.txt") == "B!"
    assert proj.built("upper[b]") == []
    assert proj.run("-q", "upper[b]").code == 0
    assert proj.run("-q", "upper[c]").code == 1
    assert proj.plan("upper[c]") == {
        "run": ["clean[c]", "upper[c]"], "fresh": [],
        "reasons": {"clean[c]": [{"code": "no-record", "name": None}],
                    "upper[c]": [{"code": "no-record", "name": None}]}}
    assert proj.built("clean[a]", "upper[c]") == ["clean[a]", "clean[c]", "upper[c]"]
    # The whole output needs every partition: only the one never built runs.
    assert proj.built("joined") == ["upper[a]", "joined"]
    assert proj.read("out/joined.txt") == "A!B!C!"
    # A partition asked for alone never removes the others, even those whose input
    # is gone; a build of the whole does.
    os.unlink(proj.path("raw/a.txt"))
    proj.write("raw/b.txt", "bb")
    assert proj.built("upper[b]") == ["clean[b]", "upper[b]"]
    assert sorted(os.listdir(proj.path("upper"))) == ["a.txt", "b.txt", "c.txt"]
    r = proj.run("--json", "joined")
    assert r.json["built"] == ["joined"]
    assert "removed upper[a]: its input partition is gone" in r.err
    assert sorted(os.listdir(proj.path("upper"))) == ["b.txt", "c.txt"]
    assert proj.read("out/joined.txt") == "BB!C!"
    # Asked for whole and in part at once: whole.
    os.unlink(proj.path("upper/c.txt"))
    assert proj.plan("upper[b]")["run"] == []
    assert proj.plan("upper[b]", "upper")["run"] == ["upper[c]"]
    r = proj.build("upper", "upper[b]")
    assert (r["built"], r["cached"]) == ([], ["upper[c]"])  # from the local cache


def test_partition_target_errors(proj):
    proj.write("Datafile", CHAIN)
    proj.write("raw/a.txt", "a")
    r = proj.run("upper[zz]")
    assert (r.code, r.out) == (2, "")
    assert r.err == ("datamake: error: no partition `clean[zz]` to build: its input `raw` "
                     "has no partition `zz`\n"
                     "help: `raw/zz.txt` does not exist; `datamake -n clean` lists the "
                     "partitions\n")
    # Told before the lock is taken or a run recorded: the typo left no trace.
    if os.path.exists(proj.path(".datamake/state.db")):
        with contextlib.closing(sqlite3.connect(proj.path(".datamake/state.db"))) as db:
            assert db.execute("SELECT count(*) FROM runs").fetchone() == (0,)
    assert proj.built() == ["clean[a]", "upper[a]", "joined"]  # nothing was left locked
    r = proj.run("joined[a]")
    assert (r.code, r.err) == (2, "datamake: error: `joined[a]`: `joined` is not the output "
                                  "of a pattern rule\nhelp: one partition is built by itself "
                                  "when a pattern rule writes it (`name[key]: input[key]`)\n")
    r = proj.run("raw[a]")
    assert (r.code, r.err) == (2, "datamake: error: `raw[a]`: no rule writes `raw`\n"
                                  "help: it is a source: datamake reads it and never builds it\n")
    r = proj.run("uper[a]")
    assert (r.code, r.err) == (2, "datamake: error: no rule or dataset named `uper[a]`\n"
                                  "help: did you mean `upper`?\n")


def test_partition_errors_are_static(proj):
    proj.write("Datafile", """
        dataset src = "src/{id}.txt"
        dataset out = "out.txt"
        out: src[id]
            src
    """)
    r = proj.run()
    assert r.code == 2
    assert "`src[id]` picks one partition, but `out` is not a pattern rule" in r.err
    proj.write("Datafile", """
        dataset src = "src/{id}.txt"
        dataset out = "out/{id}.txt"
        out: src
            src
    """)
    r = proj.run()
    assert r.code == 2
    assert "`out` is partitioned (its location has `{id}`), but its rule writes it whole" in r.err


FOLDERS = """
    dataset srcs = "src/{id}.txt"
    dataset outs = "out/{id}" as path

    outs[id]: srcs[id]
        $ mkdir -p {outs} && cp {srcs} {outs}/copy.txt
"""


def test_a_symlinked_partition_folder_is_removed_as_a_link(proj, tmp_path_factory):
    # A partition folder moved to another disk and linked back: when its input partition
    # goes, the link goes, never what it points to (and the build does not fail with
    # "Cannot call rmtree on a symbolic link", build after build).
    proj.write("Datafile", FOLDERS)
    proj.write("src/a.txt", "a")
    proj.write("src/b.txt", "b")
    assert proj.built() == ["outs[a]", "outs[b]"]
    elsewhere = tmp_path_factory.mktemp("other-disk") / "b"
    os.rename(proj.path("out/b"), elsewhere)
    os.symlink(elsewhere, proj.path("out/b"))
    assert proj.built() == []
    os.unlink(proj.path("src/b.txt"))
    r = proj.run()
    assert (r.code, r.err) == (0, "datamake: removed outs[b]: its input partition is gone\n")
    assert not os.path.lexists(proj.path("out/b"))
    assert (elsewhere / "copy.txt").read_text() == "b"
    assert proj.built() == []


def test_partitions_are_listed_no_deeper_than_their_pattern(proj):
    # A link that loops (`src/x/up -> ..`) is not followed forever (it was an OSError
    # "Too many levels of symbolic links" from the listing).
    proj.write("Datafile", """
        dataset srcs = "src/{a}/{b}.txt"
        dataset outs = "out/{a}/{b}.txt"

        outs[k]: srcs[k]
            srcs.upper()
    """)
    proj.write("src/x/1.txt", "one")
    os.symlink("..", proj.path("src/x/up"))
    assert proj.built() == ["outs[x/1]"]
    assert proj.read("out/x/1.txt") == "ONE"


CHUNKS = """
    param n = 6
    dataset emb = "emb/{chunk}.json"
    dataset total = "out/total.json"

    python:
        import os, time

        def embed(i):
            with open("calls.log", "a") as f:
                f.write(f"{i}\\n")
            time.sleep(float(os.environ.get("CHUNK_SECONDS", "0")))
            return {"chunk": i, "vector": [i] * 1000}

    ## A long job, written chunk by chunk: it can die and resume.
    emb: n
        for i in range(n):
            if f"c{i:03d}" in done:
                continue
            yield f"c{i:03d}", embed(i)

    total: emb
        sum(v["vector"][0] for v in emb.values())
"""


def calls(proj):
    return [int(x) for x in logged(proj)]


def test_yielding_recipe_writes_and_records_each_partition(proj):
    proj.write("Datafile", CHUNKS)
    assert proj.built("total") == ["emb", "total"]
    assert calls(proj) == list(range(6))
    assert sorted(os.listdir(proj.path("emb"))) == [f"c{i:03d}.json" for i in range(6)]
    assert json.loads(proj.read("out/total.json")) == 15
    assert proj.built("total") == []
    # A changed parameter invalidates the partitions built with the old value.
    assert proj.built("total", "n=4") == ["emb", "total"]
    assert calls(proj)[6:] == [0, 1, 2, 3]
    assert sorted(os.listdir(proj.path("emb"))) == [f"c{i:03d}.json" for i in range(4)]
    # Deleting one partition: the step is stale, and its partitions come back from
    # the local cache, as any step's outputs do.
    os.unlink(proj.path("emb/c002.json"))
    assert proj.plan("total", "n=4")["reasons"]["emb"] == [
        {"code": "missing-output", "name": "emb"}]
    r = proj.build("total", "n=4")
    assert (r["built"], r["cached"]) == ([], ["emb"])  # same result: early cutoff
    assert calls(proj)[10:] == []
    assert sorted(os.listdir(proj.path("emb"))) == [f"c{i:03d}.json" for i in range(4)]
    # With the cache emptied, the step reruns, and its recipe skips what is done.
    assert proj.run("--gc", "0").code == 0
    os.unlink(proj.path("emb/c002.json"))
    assert proj.built("total", "n=4") == ["emb"]
    assert calls(proj)[10:] == [2]


def test_one_partition_of_a_pattern_rule_after_a_yielding_one(proj):
    proj.write("Datafile", CHUNKS + """
    dataset norm = "norm/{chunk}.json"

    norm[chunk]: emb[chunk]
        emb["chunk"] * 10

    everything: total norm
""")
    # Which chunks `emb` yields is known once it has run: a dry run cannot tell yet.
    assert proj.plan("norm[c002]")["run"] == ["emb"]
    assert proj.built("norm[c002]") == ["emb", "norm[c002]"]
    assert os.listdir(proj.path("norm")) == ["c002.json"]
    assert json.loads(proj.read("norm/c002.json")) == 20
    assert proj.plan("norm[c004]")["run"] == ["norm[c004]"]
    r = proj.run("norm[c999]")
    assert (r.code, r.err) == (2, "datamake: error: no partition `norm[c999]` to build: its "
                                  "input `emb` has no partition `c999`\nhelp: rule `emb` wrote "
                                  "no partition `c999` of it; `datamake -n norm` lists the "
                                  "partitions\n")
    r = proj.run("emb[c001]")
    assert (r.code, r.err) == (2, "datamake: error: `emb[c001]`: `emb` is not the output of a "
                                  "pattern rule\nhelp: rule `emb` writes all of `emb` in one "
                                  "run (it yields its partitions): build `emb`\n")
    r = proj.run("everything[c001]")
    assert (r.code, r.err) == (2, "datamake: error: `everything[c001]`: `everything` is an "
                                  "alias, not a partitioned output\nhelp: build `everything`, "
                                  "or one partition of what it names\n")
    assert calls(proj) == list(range(6))  # `emb` ran once


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_going_back_restores_a_yielding_steps_partitions(proj, jobs):
    # Each partition is kept in the local cache as it is written (by the build's own
    # process or a pool worker), so an earlier parameter value brings them all back.
    proj.write("Datafile", CHUNKS)
    assert proj.built("total", "-j", jobs) == ["emb", "total"]
    first = {f: proj.path(f"emb/{f}").read_bytes() for f in os.listdir(proj.path("emb"))}
    assert proj.built("total", "n=4", "-j", jobs) == ["emb", "total"]
    assert len(calls(proj)) == 10
    r = proj.build("total", "-j", jobs)
    assert (r["built"], r["cached"]) == ([], ["emb", "total"])
    assert len(calls(proj)) == 10  # no recipe ran
    assert {f: proj.path(f"emb/{f}").read_bytes() for f in os.listdir(proj.path("emb"))} \
        == first
    assert proj.built("total") == []  # recorded as if built


def test_sigkill_after_k_partitions_resumes_with_the_rest(proj):
    proj.write("Datafile", CHUNKS)
    p = subprocess.Popen([sys.executable, "-m", "datamake", "total"], cwd=proj.root,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         env=clean_env(CHUNK_SECONDS="0.4"))
    seen_bad = []
    deadline = time.monotonic() + 60
    # Watch the dataset's folder while it is written: only whole partitions appear.
    while time.monotonic() < deadline:
        folder = proj.path("emb")
        names = sorted(os.listdir(folder)) if folder.exists() else []
        for name in names:
            try:
                data = json.loads((folder / name).read_text())
                assert len(data["vector"]) == 1000
            except Exception as e:  # noqa: BLE001 - a half-written or temporary file
                seen_bad.append((name, repr(e)))
        if len(names) >= 3:
            break
        time.sleep(0.01)
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert seen_bad == []
    done_before = len(os.listdir(proj.path("emb")))
    assert 3 <= done_before < 6
    assert calls(proj)[:done_before] == list(range(done_before))
    started = len(calls(proj))  # the one in flight when killed was started, not finished
    assert started in (done_before, done_before + 1)
    # The next run keeps every finished partition and computes only the rest.
    assert proj.built("total") == ["emb", "total"]
    assert calls(proj)[started:] == list(range(done_before, 6))
    assert json.loads(proj.read("out/total.json")) == 15
    assert not any(".datamake-tmp" in n for n in os.listdir(proj.path("emb")))


def test_changed_recipe_invalidates_old_partitions(proj):
    proj.write("Datafile", CHUNKS)
    assert proj.built("total") == ["emb", "total"]
    proj.write("Datafile", CHUNKS.replace('"vector": [i] * 1000', '"vector": [i + 1] * 1000'))
    assert proj.built("total") == ["emb", "total"]
    assert calls(proj) == list(range(6)) * 2
    assert json.loads(proj.read("out/total.json")) == 21


def test_partition_names_in_explain_and_dag(books):
    books.write("books/b.txt", "new words\n")
    out = books.run("--explain").out
    assert "counts[b]: stale\n  input-changed: input `books` has new content" in out
    dag = books.run("--dag", "--format", "json").json
    ids = {n["id"]: n["status"] for n in dag["nodes"]}
    assert ids["counts[b]"] == "stale" and ids["counts[a]"] == "fresh"
    assert {"from": "books[b]", "to": "counts[b]"} in dag["edges"]
    assert {"from": "counts[b]", "to": "table"} in dag["edges"]
    # Mermaid takes no `[` in an id: names are labels.
    nodes, edges = mermaid_graph(books.run("--dag", "--format", "mermaid").out)
    assert nodes["counts[b]"] == ("rule", "stale") and nodes["books[b]"] == ("dataset", "source")
    assert ("books[b]", "counts[b]") in edges and ("counts[b]", "table") in edges
    # One partition as the target: its own graph.
    nodes, edges = mermaid_graph(books.run("--dag", "--format", "mermaid", "counts[b]").out)
    assert nodes == {"counts[b]": ("rule", "stale"), "books[b]": ("dataset", "source")}
    assert edges == {("books[b]", "counts[b]")}


YIELD_ABC = """
    dataset parts = "parts/{k}.txt"
    dataset total = "total.txt"

    total: parts
        "".join(parts[k] for k in sorted(parts))

    parts:
        for k in "abc":
            yield k, k.upper()
"""


@pytest.mark.parametrize("cache", ["cache", "no cache"])
@pytest.mark.parametrize("failure", ["raise", "bad key"])
def test_a_failed_then_reverted_yielding_recipe_is_stale(proj, failure, cache):
    # The edited recipe writes `a` with another value, then fails at `b`; reverted, the
    # recipe's signature is the one of the first, complete build, but what is on disk
    # is the failed run's `a` alone: the step must run (or be restored), never be
    # called fresh.
    proj.write("Datafile", YIELD_ABC)
    assert proj.built() == ["parts", "total"]
    assert proj.read("total.txt") == "ABC"
    bad = ('            if k == "b":\n                raise ValueError("no b")\n'
           if failure == "raise" else
           '            if k == "b":\n                yield "../up", "x"\n')
    proj.write("Datafile", YIELD_ABC.replace('            yield k, k.upper()\n',
                                             bad + '            yield k, k * 2\n'))
    assert proj.run().code == 1
    proj.write("Datafile", YIELD_ABC)
    assert proj.plan()["reasons"] == {"parts": [{"code": "missing-output", "name": "parts"}],
                                      "total": [{"code": "upstream", "name": None}]}
    assert proj.run("-q").code == 1
    # The first build's partitions come back from the local cache (or, without it, the
    # recipe runs again, all of it); `total`, built from them, is fresh (early cutoff).
    if cache == "no cache":
        assert proj.run("--gc", "0").code == 0
    r = proj.build()
    assert (r["built"], r["cached"], r["fresh"]) == (
        ([], ["parts"], ["total"]) if cache == "cache" else (["parts"], [], ["total"]))
    assert sorted(os.listdir(proj.path("parts"))) == ["a.txt", "b.txt", "c.txt"]
    assert proj.read("parts/a.txt") == "A"
    assert proj.read("total.txt") == "ABC"
    assert proj.built() == []
