"""Going back is free: every output stays addressable by its step's signature in the
local cache, within a size limit (`--gc`); versioned datasets keep every version."""
from __future__ import annotations

import json
import os

import pytest

from conftest import calls, clean_env

DATAFILE = """
    param k = 1
    dataset numbers = "numbers.txt"
    dataset scaled = "out/scaled.json"
    dataset report = "out/report.html" versioned

    python:
        from datamake import Report

        def log(name):
            with open("calls.log", "a") as f:
                f.write(name + "\\n")

    report: scaled
        log("report")
        Report("Numbers").metric("total", sum(scaled)).metric("n", len(scaled))

    scaled: numbers k
        log("scaled")
        [int(x) * k for x in numbers.split()]
"""


@pytest.fixture
def nums(proj):
    proj.write("Datafile", DATAFILE)
    proj.write("numbers.txt", "1 2 3\n")
    assert proj.built() == ["scaled", "report"]
    return proj


def test_switching_a_parameter_back_restores_without_running(nums):
    assert nums.built("k=2") == ["scaled", "report"]
    doc = nums.build()  # k back to 1
    assert (doc["built"], doc["cached"]) == ([], ["scaled", "report"])
    assert calls(nums) == ["scaled", "report", "scaled", "report"]
    assert json.loads(nums.read("out/scaled.json")) == [1, 2, 3]
    doc = nums.build("k=2")
    assert (doc["built"], doc["cached"]) == ([], ["scaled", "report"])
    assert json.loads(nums.read("out/scaled.json")) == [2, 4, 6]


MODEL = """
    param k = 2
    dataset model = "out/model" as path

    python:
        import os

        def log(name):
            with open("calls.log", "a") as f:
                f.write(name + "\\n")

    ## A model saved as a folder, as training libraries do.
    model: k
        log("model")
        os.makedirs(f"{model}/weights")
        with open(f"{model}/config.json", "w") as f:
            f.write(str(k))
        with open(f"{model}/weights/w.bin", "wb") as f:
            f.write(bytes([k]) * 1000)
        with open(f"{model}/weights/same.bin", "wb") as f:
            f.write(bytes([k]) * 1000)  # the same bytes twice: one object
"""


def folder(proj, rel):
    root = proj.path(rel)
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


def test_switching_back_restores_a_folder_output(proj):
    # A folder output is kept as its files and the list of them: going back brings the
    # folder back, whole, without running its recipe.
    proj.write("Datafile", MODEL)
    assert proj.built() == ["model"]
    first = folder(proj, "out/model")
    assert sorted(first) == ["config.json", "weights/same.bin", "weights/w.bin"]
    assert proj.built("k=3") == ["model"]
    assert folder(proj, "out/model")["config.json"] == b"3"
    doc = proj.build()
    assert (doc["built"], doc["cached"]) == ([], ["model"])
    assert calls(proj) == ["model", "model"]
    assert folder(proj, "out/model") == first
    assert proj.built() == []
    # A file of it damaged in the cache: never restored, the recipe runs.
    from datamake.hashing import hash_bytes

    obj = proj.path(f".datamake/cache/objects/{hash_bytes(bytes([3]) * 1000)}")
    obj.chmod(0o644)
    obj.write_bytes(b"garbage")
    doc = proj.build("k=3")
    assert (doc["built"], doc["cached"]) == (["model"], [])
    assert folder(proj, "out/model")["weights/w.bin"] == bytes([3]) * 1000


def test_gc_trims_the_cache_and_going_back_then_runs(nums):
    assert nums.built("k=2") == ["scaled", "report"]
    r = nums.run("--gc", "1")
    assert r.code == 0 and r.out.startswith("datamake: removed 4 cached objects")
    assert nums.built() == ["scaled", "report"]  # the cache was emptied: really run
    assert len(calls(nums)) == 6
    r = nums.run("--gc", "nonsense")
    assert r.code == 2 and "is not a size" in r.err


def test_the_size_limit_applies_after_each_build(nums):
    env = clean_env(DATAMAKE_CACHE_LIMIT="10")
    assert nums.run("--json", "k=2", env=env).json["built"] == ["scaled", "report"]
    r = nums.run("--json", env=env)
    assert r.json["built"] == ["scaled", "report"]  # over the limit: nothing was kept


def test_a_corrupt_cached_object_is_never_restored(nums):
    assert nums.built("k=2") == ["scaled", "report"]
    objects = nums.path(".datamake/cache/objects")
    for obj in objects.iterdir():
        obj.write_bytes(b"garbage")  # in place: breaks the hard-linked copies too
    doc = nums.build()
    assert doc["built"] == ["scaled", "report"]
    assert json.loads(nums.read("out/scaled.json")) == [1, 2, 3]


def test_versions_history_pins_and_diff(nums):
    assert nums.built("k=10") == ["scaled", "report"]
    hist = nums.run("--history", "report", "--json").json
    assert len(hist) == 2
    assert [h["number"] for h in hist] == [1, 2]
    assert [h["signature"][:4] != "none" for h in hist] == [True, True]
    # The text numbers them as `--diff` and `name@N` inputs name them.
    rows = nums.run("--history", "report").out.splitlines()[2:]
    assert [(r.split()[0], r.split()[1]) for r in rows] == [
        ("@1", hist[0]["version"]), ("@2", hist[1]["version"])]
    assert rows[-1].endswith("(latest)") and not rows[0].endswith("(latest)")
    assert nums.run("--diff", "report@1", "report@2").out == nums.run("--diff", "report").out
    assert os.path.exists(hist[0]["path"]) and hist[0]["path"].startswith(
        str(nums.path("out/.versions/report.html")))
    r = nums.run("--diff", "report")
    lines = r.out.splitlines()[1:]
    assert lines[:3] == [
        "  metric        before         after  change",
        "  n                  3             3  +0 (+0.0%)",
        "  total              6            60  +54 (+900.0%)"]
    # And what the two were built from: the parameter, and the input it changed.
    assert lines[3:5] == ["  parameters that changed:", "    k  1 -> 10"], lines
    assert lines[5] == "  inputs that changed:" and lines[6].split()[0] == "scaled", lines
    # Pin the first version as an input of another rule.
    first = hist[0]["version"]
    nums.write("Datafile", DATAFILE + f"""
    dataset compare = "out/compare.txt"
    compare: report@{first} as before report
        str(before.count("metric")) + " " + str(len(report) > 0)
    """)
    assert nums.built("compare", "k=10") == ["compare"]
    r = nums.run("compare", "k=10")
    assert r.code == 0
    nums.write("Datafile", DATAFILE + """
    compare: scaled@2026
        scaled
    """)
    r = nums.run("compare")
    assert r.code == 2 and "`scaled@2026` pins a version, but `scaled` is not versioned" in r.err


def test_a_saved_version_never_changes(nums):
    assert nums.built("k=10") == ["scaled", "report"]
    hist = nums.run("--history", "report", "--json").json
    latest = hist[-1]["path"]
    saved = open(latest, "rb").read()
    # The output edited in place (not replaced): the saved version keeps its bytes.
    with open(nums.path("out/report.html"), "r+b") as f:
        f.seek(0)
        f.write(b"<!-- edited by hand -->")
    assert open(latest, "rb").read() == saved
    assert not os.access(latest, os.W_OK) or os.geteuid() == 0
    assert oct(os.stat(latest).st_mode & 0o777) == oct(0o444)
    r = nums.run("--diff", "report", "--json")
    assert r.code == 0, r.err
    assert r.json["metrics"]["total"] == {"before": 6, "after": 60, "change": 54,
                                          "relative": 9.0}
    # A version edited anyway (a user with the rights to) is never read as that version.
    os.chmod(latest, 0o644)
    with open(latest, "r+b") as f:
        f.write(b"<!-- edited -->")
    r = nums.run("--diff", "report")
    assert r.code == 1  # a dataset that cannot be read as what it claims to be
    assert f"version {hist[-1]['version']} of `report` was changed after it was saved" in r.err
    assert "Traceback" not in r.err
    # Nor as a pinned input.
    nums.write("Datafile", DATAFILE + f"""
    dataset compare = "out/compare.txt"
    compare: report@{hist[-1]['version']} as before
        before[:20]
    """)
    r = nums.run("compare", "k=10")
    assert r.code == 1
    assert f"version {hist[-1]['version']} of `report` was changed after it was saved" in r.err
