"""What a Kedro, Make or DVC user expects on day one: nested parameter overrides, strict
values, compressed formats, static checks before running, dry runs that never fail, and
readable notebook answers."""
from __future__ import annotations

import json

import pytest

import datamake


# -- parameters -----------------------------------------------------------------------


@pytest.fixture
def model_proj(proj):
    proj.write("Datafile", """
        param model = {"depth": 3, "lr": 0.1, "opt": {"name": "adam"}}
        dataset depth = "depth.json"
        dataset lr = "lr.json"
        depth: model
            {"depth": model["depth"]}
        lr: model
            model
    """)
    return proj


def test_nested_override_sets_one_key(model_proj):
    assert model_proj.built("depth", "lr") == ["depth", "lr"]
    assert model_proj.built("depth", "lr", "model.lr=0.5") == ["lr"]
    assert json.loads(model_proj.read("lr.json")) == {
        "depth": 3, "lr": 0.5, "opt": {"name": "adam"}}
    assert model_proj.built("depth", "lr", "model.opt.name=sgd", "model.lr=0.5") == ["lr"]
    assert json.loads(model_proj.read("lr.json"))["opt"] == {"name": "sgd"}
    assert model_proj.built("depth", "lr", "model.depth=4", "model.lr=0.5") == ["depth", "lr"]
    assert json.loads(model_proj.read("depth.json")) == {"depth": 4}


def test_nested_override_of_an_unknown_key_is_a_usage_error(model_proj):
    r = model_proj.run("depth", "model.deph=4")
    assert r.code == 2 and "`model` has no key `deph`" in r.err and "`depth`" in r.err
    r = model_proj.run("depth", "model.lr.x=4")
    assert r.code == 2 and "`model.lr` is not a mapping" in r.err
    r = model_proj.run("depth", "modle.lr=4")
    assert r.code == 2 and "unknown parameter `modle.lr`" in r.err


def test_project_takes_nested_overrides(model_proj):
    p = datamake.Project(model_proj.path("Datafile"), params={"model.depth": 9})
    try:
        assert p.load("model") == {"depth": 9, "lr": 0.1, "opt": {"name": "adam"}}
        assert p.graph.params["model"]["depth"] == 3  # the declared value is untouched
    finally:
        p.close()


def test_malformed_override_is_an_error_not_a_string(proj):
    proj.write("Datafile", """
        param p = [0]
        dataset out = "out.json"
        out: p
            p
    """)
    for bad in ("p=[1,", "p={'a': 1", "p=(1, 2", "p='abc"):
        r = proj.run(bad)
        assert r.code == 2, (bad, r)
        assert "is not a Python literal" in r.err and "Traceback" not in r.err
        assert not proj.path("out.json").exists()
    assert proj.built("p=hello world") == ["out"]  # an ordinary word is still a string
    assert json.loads(proj.read("out.json")) == "hello world"


def test_recipe_ending_with_an_assignment_is_a_static_error(proj):
    proj.write("Datafile", """
        dataset out = "out.json"
        dataset made = "made.txt" as path
        out:
            x = 1
            y = x + 1
        made:
            open(made, "w").write("hi")
            done = True
    """)
    r = proj.run("--check")
    assert r.code == 2, r
    assert "Datafile:5:5: error: the recipe of `out` ends with an assignment" in r.err
    assert "5 |     y = x + 1\n  |     ^^^^^^^^^" in r.err and "help:" in r.err
    assert "`made`" not in r.err  # a path output is written by the recipe itself


def test_environment_variables_expand_in_params_paths(proj):
    from conftest import clean_env

    proj.write("Datafile", """
        params "conf/${STAGE}/parameters.yaml"
        dataset out = "out.json"
        out: rate
            rate
    """)
    proj.write("conf/dev/parameters.yaml", "rate: 1\n")
    proj.write("conf/prod/parameters.yaml", "rate: 2\n")
    r = proj.run("--json", env=clean_env(STAGE="dev"))
    assert r.code == 0 and r.json["built"] == ["out"], r
    assert json.loads(proj.read("out.json")) == 1
    r = proj.run("--json", env=clean_env(STAGE="dev"))
    assert r.json["built"] == []
    # Another value names another file: parsed again (not the cached parse), rebuilt.
    r = proj.run("--json", env=clean_env(STAGE="prod"))
    assert r.json["built"] == ["out"] and json.loads(proj.read("out.json")) == 2
    env = clean_env()
    env.pop("STAGE", None)
    r = proj.run(env=env)
    assert r.code == 2
    assert "Datafile:1:8: error: params file `conf/${STAGE}/parameters.yaml`: environment " \
           "variable `STAGE` is not set" in r.err, r.err


# -- formats --------------------------------------------------------------------------


def test_compression_by_extension(proj):
    import bz2
    import gzip

    proj.write("Datafile", """
        dataset table = "out/t.csv.gz"
        dataset forced = "out/f.csv.gz" as csv
        dataset doc = "out/d.json.bz2"
        dataset lines = "out/l.jsonl"
        dataset back = "out/back.json"
        table:
            import pandas as pd
            pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})
        forced: table
            table
        doc:
            {"k": [1, 2]}
        lines: doc
            [{"n": n} for n in doc["k"]]
        back: table forced doc lines
            {"table": table.to_dict("list"), "forced": forced.to_dict("list"), "doc": doc,
             "lines": lines}
    """)
    assert proj.built("back") == ["table", "forced", "doc", "lines", "back"]
    assert gzip.decompress(proj.path("out/t.csv.gz").read_bytes()) == b"a,b\n1,x\n2,y\n"
    assert gzip.decompress(proj.path("out/f.csv.gz").read_bytes()) == b"a,b\n1,x\n2,y\n"
    assert json.loads(bz2.decompress(proj.path("out/d.json.bz2").read_bytes())) == {"k": [1, 2]}
    assert proj.read("out/l.jsonl") == '{"n": 1}\n{"n": 2}\n'
    assert json.loads(proj.read("out/back.json")) == {
        "table": {"a": [1, 2], "b": ["x", "y"]}, "forced": {"a": [1, 2], "b": ["x", "y"]},
        "doc": {"k": [1, 2]}, "lines": [{"n": 1}, {"n": 2}]}
    # The same value compresses to the same bytes: a forced rebuild changes nothing after.
    before = proj.path("out/t.csv.gz").read_bytes()
    assert proj.built("back", "--force", "table") == ["table"]
    assert proj.path("out/t.csv.gz").read_bytes() == before


def test_feather_and_arrow_and_parquet_codecs(proj):
    proj.write("Datafile", """
        dataset f = "out/t.feather"
        dataset a = "out/t.arrow"
        dataset z = "out/t.parquet" as parquet(compression="zstd")
        dataset back = "out/back.json"
        f:
            import pandas as pd
            pd.DataFrame({"a": [1, 2]})
        a: f
            f
        z: a
            a
        back: z
            z.to_dict("list")
    """)
    assert proj.built("back") == ["f", "a", "z", "back"]
    assert proj.path("out/t.feather").read_bytes()[:6] == b"ARROW1"
    assert proj.path("out/t.arrow").read_bytes()[:6] == b"ARROW1"
    import pyarrow.parquet as pq

    meta = pq.ParquetFile(proj.path("out/t.parquet")).metadata
    assert meta.row_group(0).column(0).compression == "ZSTD"
    assert json.loads(proj.read("out/back.json")) == {"a": [1, 2]}


def test_unknown_extension_is_a_static_error(proj):
    proj.write("Datafile", """
        dataset m = "out/model.fether"
        dataset tool = "out/tool.tsv"
        dataset seen = "out/seen.json"
        m:
            1
        tool:
            $ printf 'a\\tb\\n' > {tool}
        seen: tool
            open(tool).read()
    """)
    r = proj.run("--check")
    assert r.code == 2
    assert "Datafile:1:13: error: no format is known for the extension `.fether` of `m`" in r.err
    assert ".feather" in r.err and ".csv" in r.err and "as path" in r.err
    assert "tool" not in r.err  # a shell recipe's files are paths, a Python one reads it so
    r = proj.run("m")
    assert r.code == 2 and not proj.path("out").exists()


# -- --check before running -----------------------------------------------------------


def test_two_datasets_at_one_location_is_a_static_error(proj):
    proj.write("Datafile", """
        dataset raw = "data/raw.json"
        dataset clean = "data/./raw.json"
        dataset other = "data/other.json"
        clean: raw
            raw
        other: raw
            raw
    """)
    proj.write("data/raw.json", "[1]")
    r = proj.run("--check")
    assert r.code == 2
    assert "Datafile:2:17: error: `clean` and `raw` are at one location" in r.err, r.err
    assert "`raw` is declared at Datafile:1:9" in r.err
    r = proj.run("clean")
    assert r.code == 2 and proj.read("data/raw.json") == "[1]"


def test_check_finds_unknown_format_options(proj):
    proj.write("Datafile", """
        dataset raw = "raw.csv" as csv(sepp=";")
        dataset out = "out.txt" as text(encodin="utf-8")
        dataset fine = "fine.csv" as csv(sep=";", header=0)
        out: raw
            str(raw)
        fine: raw
            raw
    """)
    r = proj.run("--check")
    assert r.code == 2, r
    assert "Datafile:1:28: error: format `csv` of `raw` has no option `sepp`" in r.err
    assert "did you mean `sep`?" in r.err
    assert "Datafile:2:28: error: format `text` of `out` has no option `encodin`" in r.err
    assert "`fine`" not in r.err
    r = proj.run("--check", "--json")
    assert [e["message"] for e in r.json["errors"]] == [
        "format `csv` of `raw` has no option `sepp`",
        "format `text` of `out` has no option `encodin`"]


# -- dry runs never fail ----------------------------------------------------------------


@pytest.fixture
def unknowable(proj):
    proj.write("Datafile", """
        dataset raw = "${DATA_DIR}/raw.json"
        dataset agg = "agg.json"
        dataset local = "local.json"
        all: agg local
        agg: raw
            raw
        local:
            1
    """)
    return proj


def test_a_dry_run_says_what_it_cannot_know_once_and_exits_2(unknowable):
    r = unknowable.run("-n")
    assert r.code == 2, r
    assert "FAILED" not in r.out + r.err and "up to date\n" not in r.out
    assert r.out == ("local  (no-record)\nagg  (cannot tell: see below)\n"
                     "datamake: 1 of 2 steps would run; 1 cannot be judged\n")
    assert r.err == ("datamake: error: cannot tell whether `agg` is up to date: dataset `raw`: "
                     "environment variable `DATA_DIR` is not set\n"
                     "help: set it, e.g. `export DATA_DIR=...`\n")
    r = unknowable.run("-n", "--json")
    assert r.code == 2 and r.err == ""
    assert r.json["run"] == ["local"] and "failed" not in r.json
    assert r.json["unknown"] == [{"node": "agg", "error": "dataset `raw`: environment "
                                                           "variable `DATA_DIR` is not set"}]
    r = unknowable.run("-q")
    assert r.code == 2 and "cannot tell whether `agg`" in r.err
    # Nothing ran, and a real build still fails as a build does (exit 1).
    assert not unknowable.path("local.json").exists()
    r = unknowable.run()
    assert r.code == 1 and "FAILED agg" in r.err


def test_a_dry_run_with_storage_out_of_reach_exits_2(proj):
    from conftest import clean_env

    proj.write("Datafile", """
        dataset raw = "s3://bucket/raw.json"
        dataset agg = "agg.json"
        agg: raw
            raw
    """)
    env = clean_env(AWS_ENDPOINT_URL="http://127.0.0.1:9", AWS_ACCESS_KEY_ID="x",
                    AWS_SECRET_ACCESS_KEY="y", DATAMAKE_STORAGE_RETRIES="0")
    r = proj.run("-n", env=env)
    assert r.code == 2, r
    assert "FAILED" not in r.err and "cannot tell whether `agg` is up to date" in r.err
    assert "cannot reach the storage endpoint" in r.err


# -- notebooks --------------------------------------------------------------------------


@pytest.fixture
def nb(proj):
    proj.write("Datafile", """
        param k = 2
        param model = {"depth": 3, "lr": 0.1}
        dataset raw = "raw.json"
        dataset scaled = "out/scaled.json"
        dataset deep = "out/deep.json"
        scaled: raw k
            [x * k for x in raw]
        deep: scaled model
            {"depth": model["depth"], "sum": sum(scaled)}
    """)
    proj.write("raw.json", "[1, 2, 3]")
    return proj


def test_status_is_a_readable_table(nb):
    p = datamake.Project(nb.path("Datafile"))
    try:
        status = p.status("deep")
        assert status.names("planned") == ["scaled", "deep"]  # as a BuildResult has
        assert repr(status) == ("step    state      why\n"
                                "scaled  would run  no-record\n"
                                "deep    would run  no-record")
        assert status._repr_html_().startswith("<table class=\"datamake-status\">")
        assert "<td><code>scaled</code></td><td>would run</td><td>no-record</td>" in \
            status._repr_html_()
        p.build("deep")
        assert repr(p.status("deep")) == ("step    state       why\n"
                                          "scaled  up to date\n"
                                          "deep    up to date")
    finally:
        p.close()


def test_loading_a_value_built_with_other_params_warns(nb):
    from datamake.status import StaleValueWarning

    assert nb.built("deep") == ["scaled", "deep"]
    import warnings

    p = datamake.Project(nb.path("Datafile"), params={"k": 3, "model.lr": 0.5})
    try:
        with pytest.warns(StaleValueWarning) as caught:
            assert p.load("deep") == {"depth": 3, "sum": 12}
        # `deep` reads model["depth"] only: `lr` is not said; `k` is, through `scaled`.
        assert str(caught[0].message).startswith(
            "`deep` was built with other parameters: `k` was 2, now 3;")
        with pytest.warns(StaleValueWarning, match="`k` was 2, now 3"):
            p.load("scaled")
        p.build("deep")
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert p.load("deep") == {"depth": 3, "sum": 18}
            assert p.load("raw") == [1, 2, 3]
    finally:
        p.close()
    p = datamake.Project(nb.path("Datafile"), params={"k": 3, "model.lr": 0.9})
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # lr is not read by any step deep came from
            assert p.load("deep") == {"depth": 3, "sum": 18}
    finally:
        p.close()
