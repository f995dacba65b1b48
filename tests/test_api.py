"""The Python API: the same catalog, parameters and values the build uses."""
from __future__ import annotations

import pytest

import datamake
from datamake.errors import CatalogError, UsageError


@pytest.fixture
def built(proj):
    proj.write("Datafile", """
        param k = 2
        dataset raw = "raw.json"
        dataset scaled = "out/scaled.json"
        python:
            class Box:
                def __init__(self, v):
                    self.v = v
        scaled: raw k
            [x * k for x in raw]
        boxed: scaled
            Box(sum(scaled))
        all: boxed
    """)
    proj.write("raw.json", "[1, 2, 3]")
    assert proj.built("boxed") == ["scaled", "boxed"]
    return proj


def test_project_loads_values(built):
    p = datamake.Project(built.path("Datafile"))
    try:
        assert p.load("raw") == [1, 2, 3]
        assert p.load("scaled") == [2, 4, 6]
        assert p.load("k") == 2
        # An undeclared output, pickled in .datamake/, of a class from the python: block.
        assert p.load("boxed").v == 12
        with pytest.raises(UsageError, match="unknown name `scaledd`"):
            p.load("scaledd")
        with pytest.raises(UsageError, match="alias"):
            p.load("all")
    finally:
        p.close()


def test_load_finds_the_nearest_datafile(built, monkeypatch):
    sub = built.path("notebooks")
    sub.mkdir()
    monkeypatch.chdir(sub)
    assert datamake.load("scaled") == [2, 4, 6]


def test_project_build_and_status(built):
    p = datamake.Project(built.path("Datafile"), params={"k": 3})
    try:
        status = p.status()
        assert status.names("planned") == ["scaled"]  # boxed waits for it (upstream)
        result = p.build("scaled")
        assert result.names("built") == ["scaled"] and result.ok
        assert p.load("scaled") == [3, 6, 9]
    finally:
        p.close()


def test_not_built_yet(proj):
    proj.write("Datafile", 'dataset out = "out.json"\nout:\n    [1]\n')
    p = datamake.Project(proj.path("Datafile"))
    with pytest.raises(CatalogError, match="`out` has not been built yet"):
        p.load("out")
    p.close()


def test_import_datamake_is_light():
    import subprocess
    import sys

    code = ("import sys, datamake; heavy = [m for m in ('pandas', 'lark', 'click', 'fsspec',"
            " 'rich', 'sqlite3') if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout
    assert out.strip() == "[]"


def test_a_partitioned_dataset_loads_as_a_lazy_mapping(proj):
    proj.write("Datafile", """
        dataset raw = "raw/{id}.txt"
        dataset up = "up/{id}.txt"
        up[id]: raw[id]
            raw.upper()
    """)
    for k in "abc":
        proj.write(f"raw/{k}.txt", k)
    assert proj.built() == ["up[a]", "up[b]", "up[c]"]
    p = datamake.Project(proj.path("Datafile"))
    try:
        up = p.load("up")
        assert (len(up), "b" in up, list(up)) == (3, True, ["a", "b", "c"])
        assert dict(up.items()) == {"a": "A", "b": "B", "c": "C"}
    finally:
        p.close()
