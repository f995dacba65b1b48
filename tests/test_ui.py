"""The pipeline page: `datamake --ui` (a live local page) and `--dag --format html|svg`.

Unit-level checks talk to the Source and the server in this process (Starlette's
TestClient); the page itself is driven in headless Chromium (tests/browser.py), against
a server in this process and real `datamake` builds in other processes."""
from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

import ui_pipeline
from browser import chromium
from conftest import REPO, Proj, clean_env

from datamake.ui import events as events_mod
from datamake.ui.source import LocalSource

SPACEFLIGHTS_NODES = {
    "companies", "shuttles", "reviews",  # sources
    "features", "test_size", "random_state",  # parameters
    "preprocessed_companies", "preprocessed_shuttles", "model_input", "X_train",
    "regressor", "metrics", "report", "evaluation",  # rules (X_train also writes X_test,
    # y_train, y_test; evaluation is a notebook)
    "all",  # the alias
}

WAITING = """
    dataset src = "src.txt"
    dataset slow = "out/slow.txt"
    dataset after = "out/after.txt"

    python:
        import os, time

        def wait_for(name):
            # The test creates the file when it has seen the step running (never a
            # sleep as synchronisation); the deadline only guards against a hang.
            deadline = time.time() + 120
            while not os.path.exists(name):
                if time.time() > deadline:
                    raise TimeoutError(name)
                time.sleep(0.02)

    ## A step that waits for the test.
    slow: src
        wait_for(os.environ.get("GO_FILE", "go"))
        src.upper()

    after: slow
        slow + "!"
"""


@pytest.fixture
def spaceflights(tmp_path: Path) -> Proj:
    shutil.copy(REPO / "Datafile.example", tmp_path / "Datafile")
    ignore = shutil.ignore_patterns("0[2-9]_*", "results", ".datamake", "__pycache__")
    shutil.copytree(REPO / "examples" / "spaceflights", tmp_path / "examples" / "spaceflights",
                    ignore=ignore)
    return Proj(tmp_path)


@pytest.fixture(scope="module")
def built_spaceflights(tmp_path_factory) -> Proj:
    """The spaceflights example, built once for the tests that only read it."""
    root = tmp_path_factory.mktemp("spaceflights")
    shutil.copy(REPO / "Datafile.example", root / "Datafile")
    ignore = shutil.ignore_patterns("0[2-9]_*", "results", ".datamake", "__pycache__")
    shutil.copytree(REPO / "examples" / "spaceflights", root / "examples" / "spaceflights",
                    ignore=ignore)
    p = Proj(root)
    p.build()
    return p


@contextlib.contextmanager
def inside(root: Path):
    old = os.getcwd()
    os.chdir(root)
    try:
        yield
    finally:
        os.chdir(old)


def source_of(proj: Proj, *overrides: str) -> LocalSource:
    from datamake.cli import split_args

    _, params, raw = split_args(overrides)
    return LocalSource("Datafile", params, raw)


# -- the source: graph, panels, previews ------------------------------------------------


def test_the_graph_has_every_node_of_spaceflights_with_its_status(spaceflights):
    with inside(spaceflights.root):
        g = source_of(spaceflights).graph()
    assert g["error"] is None and g["default"] == "all"
    nodes = {n["id"]: n for n in g["nodes"]}
    assert set(nodes) == SPACEFLIGHTS_NODES
    assert nodes["X_train"]["outputs"] == ["X_train", "X_test", "y_train", "y_test"]
    assert {n["status"] for i, n in nodes.items() if n["kind"] == "rule"} == {"stale"}
    assert nodes["model_input"]["reasons"] == ["no-record"]
    assert {(n["kind"], n["status"]) for i, n in nodes.items()
            if i in ("companies", "test_size", "all")} == {
        ("dataset", "source"), ("param", "param"), ("alias", "stale")}
    edges = {(e["from"], e["to"]) for e in g["edges"]}
    assert {("companies", "preprocessed_companies"), ("model_input", "X_train"),
            ("test_size", "X_train"), ("X_train", "regressor"), ("report", "all")} <= edges
    spaceflights.build()
    with inside(spaceflights.root):
        g = source_of(spaceflights).graph()
        stale = source_of(spaceflights, "test_size=0.3").graph()
    assert {n["status"] for n in g["nodes"] if n["kind"] in ("rule", "alias")} == {"fresh"}
    by = {n["id"]: n for n in stale["nodes"]}
    assert (by["X_train"]["status"], by["X_train"]["reasons"]) == ("stale", ["param-changed"])
    assert (by["regressor"]["status"], by["regressor"]["reasons"]) == ("stale", ["upstream"])
    assert by["model_input"]["status"] == "fresh"


def test_a_panel_shows_the_recipe_at_its_datafile_lines_and_the_helpers_it_follows(
        built_spaceflights):
    p = built_spaceflights
    with inside(p.root):
        doc = source_of(p).panel("model_input")
    lines = p.read("Datafile").split("\n")
    code = doc["code"]
    assert code["file"] == "Datafile"
    shown = {ln["n"]: "".join(t for _, t in ln["tokens"]) for ln in code["lines"]}
    header = lines.index("model_input: preprocessed_shuttles preprocessed_companies reviews") + 1
    assert shown == {header: lines[header - 1], header + 1: lines[header]}
    # The helpers: the import in the Datafile's python: block, and the function itself at
    # its own lines in nodes.py.
    titles = [h["title"] for h in doc["helpers"]]
    nodes_py = (p.root / "examples/spaceflights/nodes.py").read_text().split("\n")
    line = next(i for i, t in enumerate(nodes_py, 1) if t.startswith("def create_model_input_table"))
    assert f"examples.spaceflights.nodes.create_model_input_table  (examples/spaceflights/nodes.py:{line})" in titles
    helper = next(h for h in doc["helpers"] if "nodes.py" in h["title"] and "create_model" in h["title"])
    assert helper["lines"][0]["n"] == line
    assert "".join(t for _, t in helper["lines"][0]["tokens"]) == nodes_py[line - 1]
    assert ["k", "def"] in helper["lines"][0]["tokens"]  # highlighted by Pygments
    assert titles[0].startswith("python:create_model_input_table  (Datafile:")
    out = doc["outputs"][0]
    assert (out["name"], out["format"], out["exists"], out["preview"]) == (
        "model_input", "parquet", True, True)
    assert out["location"] == "examples/spaceflights/data/03_primary/model_input_table.parquet"
    assert out["size"] > 1000 and out["built_at"] > 0 and out["seconds"] > 0
    assert [d["name"] for d in doc["inputs"]] == ["preprocessed_shuttles",
                                                  "preprocessed_companies", "reviews"]
    assert doc["target"] == "model_input" and doc["readers"] == ["X_train"]


def test_a_stale_panel_says_why_in_the_words_of_explain(built_spaceflights):
    p = built_spaceflights
    with inside(p.root):
        doc = source_of(p, "test_size=0.3").panel("X_train")
    explain = p.run("--explain", "--json", "test_size=0.3").json["explain"]
    assert doc["status"] == "stale" and doc["reasons"] == ["param-changed"]
    assert doc["explain"] == [{"step": "X_train", "lines": explain["X_train"]}]
    assert doc["explain"][0]["lines"][0] == "param-changed: parameter `test_size`: 0.2 -> 0.3"
    assert doc["params"] == [{"name": "features", "value": doc["params"][0]["value"]},
                             {"name": "test_size", "value": "0.3"},
                             {"name": "random_state", "value": "3"}]


def test_a_failed_step_shows_its_traceback_at_datafile_lines(proj):
    proj.write("Datafile", """
        param n = 0
        dataset out = "out.txt"

        ## Divides.
        out: n
            x = 1
            str(x / n)
    """)
    assert proj.run().code == 1
    with inside(proj.root):
        g = LocalSource("Datafile").graph()
        doc = LocalSource("Datafile").panel("out")
    assert [n["status"] for n in g["nodes"] if n["id"] == "out"] == ["failed"]
    assert doc["failure"]["step"] == "out"
    assert 'File "Datafile", line 7, in out' in doc["failure"]["text"]
    assert "ZeroDivisionError: division by zero" in doc["failure"]["text"]
    assert proj.run("n=2").code == 0
    with inside(proj.root):
        doc = LocalSource("Datafile").panel("out")
    # Built since (with n=2): no failure to show; with n=0 it is a step to run again.
    assert doc["failure"] is None and doc["status"] == "stale"
    # Its recent runs, newest first: the success with its peak memory, the failure without.
    assert [(h["status"], h["peak_mb"] is None) for h in doc["history"]] == [
        ("built", False), ("failed", True)]
    assert doc["history"][0]["peak_mb"] > 1


def test_previews_of_tables_values_images_pages_and_versions(built_spaceflights):
    p = built_spaceflights
    with inside(p.root):
        src = source_of(p)
        companies = src.preview("companies")
        shuttles = src.preview("shuttles")
        model_input = src.preview("model_input")
        metrics = src.preview("metrics")
        report = src.preview("report")
        x_train = src.preview("X_train")
        regressor = src.preview("regressor")
    import pandas as pd

    real = pd.read_csv(p.root / "examples/spaceflights/data/01_raw/companies.csv", nrows=20)
    assert companies["kind"] == "table" and len(companies["rows"]) == 20
    assert [c["name"] for c in companies["columns"]] == list(real.columns)
    assert companies["rows"][0][0] == str(real.iloc[0, 0])
    assert shuttles["kind"] == "table" and shuttles["format"] == "excel"
    assert shuttles["rows"][0][0] == str(pd.read_excel(
        p.root / "examples/spaceflights/data/01_raw/shuttles.xlsx", nrows=1).iloc[0, 0])
    assert model_input["kind"] == "table" and model_input["total_rows"] > 1000
    assert metrics["kind"] == "value" and json.loads(metrics["text"]).keys() == {
        "r2", "mae", "max_error", "test_rows"}
    assert report["kind"] == "html" and "<html" in report["html"]
    assert [set(v["metrics"]) for v in report["versions"]] == [{"r2", "mae", "max_error", "test_rows"}]
    assert x_train["kind"] == "table"  # a DataFrame pickled in .datamake/data
    assert regressor["kind"] == "none"
    assert "sklearn.linear_model" in regressor["text"] and "not loaded" in regressor["text"]


def test_previews_of_partitions_images_and_versions_across_builds(proj):
    pytest.importorskip("matplotlib")
    proj.write("Datafile", """
        param k = 1
        dataset books = "books/{name}.txt"
        dataset counts = "counts/{name}.json"
        dataset plot = "plot.png"
        dataset score = "score.json" versioned

        all: plot score

        counts[name]: books[name]
            {"words": len(books.split())}

        plot: counts k
            import matplotlib
            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
            fig, ax = plt.subplots()
            ax.bar(list(counts), [counts[n]["words"] * k for n in counts])
            fig

        score: counts k
            {"total": k * sum(c["words"] for c in counts.values())}
    """)
    for name, text in (("a", "one two"), ("b", "one two three"), ("c", "x")):
        proj.write(f"books/{name}.txt", text)
    proj.build()
    proj.build("k=2")
    with inside(proj.root):
        src = LocalSource("Datafile")
        g = src.graph()
        counts = src.preview("counts")
        second = src.preview("counts", "b")
        plot = src.preview("plot")
        score = src.preview("score")
        panel = src.panel("counts")
    labels = {n["id"]: n["label"] for n in g["nodes"]}
    assert labels["counts"] == "counts[3]" and labels["books"] == "books[3]"
    assert not any("[" in n["id"] for n in g["nodes"])  # one node per pattern rule
    assert counts["keys"] == ["a", "b", "c"] and counts["key"] == "a"
    assert json.loads(counts["text"]) == {"words": 2}
    assert json.loads(second["text"]) == {"words": 3}
    assert plot["kind"] == "image" and plot["src"].startswith("data:image/png;base64,")
    assert [v["metrics"] for v in score["versions"]] == [{"total": 6}, {"total": 12}]
    assert [(x["key"], x["status"]) for x in panel["partitions"]] == [
        ("a", "fresh"), ("b", "fresh"), ("c", "fresh")]


def test_missing_sources_cached_steps_and_a_broken_datafile(proj):
    proj.write("Datafile", """
        param n = 1
        dataset here = "here.txt"
        dataset gone = "gone.txt"
        dataset out = "out.txt"

        out: here n
            here * n
        other: gone
            gone
    """)
    proj.write("here.txt", "x")
    assert proj.built("out") == ["out"]
    assert proj.built("out", "n=2") == ["out"]
    assert proj.build("out")["cached"] == ["out"]  # n back to 1: restored from the cache
    with inside(proj.root):
        g = LocalSource("Datafile").graph()
        other = LocalSource("Datafile").panel("other")
    status = {n["id"]: n["status"] for n in g["nodes"]}
    assert status == {"here": "source", "gone": "missing", "out": "cached", "other": "failed",
                      "n": "param"}
    # A step whose input is missing would fail: the panel says why.
    assert other["failure"] == {"step": "other",
                                "text": "input `gone` does not exist at `gone.txt`"}
    proj.write("Datafile", "out: nowhere\n    nowhere\n")
    with inside(proj.root):
        g = LocalSource("Datafile").graph()
    assert g["nodes"] == [] and g["error"].startswith(
        "Datafile:1:6: error: unknown name `nowhere`\n")


def test_namespaces_of_included_files(proj):
    proj.write("Datafile", """
        include "features/Datafile" as features
        dataset report = "report.json"

        report: features.top
            {"top": top}
    """)
    proj.write("features/Datafile", """
        dataset words = "words.txt"
        top: words
            words.split()[:2]
    """)
    proj.write("features/words.txt", "a b c")
    with inside(proj.root):
        g = LocalSource("Datafile").graph()
        doc = LocalSource("Datafile").panel("features.top")
    ns = {n["id"]: n["ns"] for n in g["nodes"]}
    assert ns == {"features.top": "features", "features.words": "features", "report": ""}
    assert g["namespaces"] == [{"id": "features", "label": "features", "parent": None}]
    assert doc["code"]["file"] == "features/Datafile"
    assert [ln["n"] for ln in doc["code"]["lines"]] == [2, 3]


def test_a_generated_pipeline_of_300_rules_has_every_node(tmp_path):
    ui_pipeline.write(tmp_path, 300)
    with inside(tmp_path):
        g = LocalSource("Datafile").graph()
    ids = {n["id"] for n in g["nodes"]}
    assert ids == {f"r{i:03d}" for i in range(300)} | {f"src{j}" for j in range(10)} | {"scale"}
    rules = re.findall(r"^(r\d{3}): (.*)$", (tmp_path / "Datafile").read_text(), re.M)
    assert {(e["from"], e["to"]) for e in g["edges"]} == {
        (i, r) for r, ins in rules for i in ins.split()}


# -- the events builds write for an open page -------------------------------------------


def test_a_build_writes_events_only_while_a_page_server_is_alive(proj):
    proj.write("Datafile", """
        dataset src = "src.txt"
        all: out bad
        out: src
            src.upper()
        bad: src
            src + str(1 / 0)
    """)
    proj.write("src.txt", "x")
    events = proj.path(".datamake/events")
    proj.run("-k")
    assert not events.exists()  # no page: not a byte written
    proj.path(".datamake/ui").write_text("999999999")  # a page server that is gone
    proj.run("-k")
    assert not events.exists()
    with inside(proj.root):
        src = LocalSource("Datafile")
        src.follow()
        try:
            _, cursor = src.events(None)
            proj.path("src.txt").write_text("y")
            r = proj.run("-k")
            assert r.code == 1
            found, cursor = src.events(cursor)
        finally:
            src.unfollow()
    kinds = [(e["event"], e.get("step")) for e in found]
    assert kinds[0] == ("start", None) and kinds[-1] == ("end", None)
    assert ("step-start", "out") in kinds and ("step-done", "out") in kinds
    assert ("step-failed", "bad") in kinds
    failed = next(e for e in found if e["event"] == "step-failed")
    assert "ZeroDivisionError" in failed["error"]
    start = next(e for e in found if e["event"] == "step-start" and e["step"] == "out")
    assert start["reasons"] == [{"code": "input-changed", "name": "src"}]
    assert found[-1]["status"] == "failed"
    assert {e["pid"] for e in found} == {found[0]["pid"]} != {os.getpid()}
    assert not proj.path(".datamake/ui").exists() and not events.exists()


def test_tail_reads_whole_lines_and_starts_over_on_a_new_file(tmp_path):
    path = tmp_path / "events"
    path.write_bytes(b'{"event":"start","pid":1}\n{"event":"step-st')
    found, pos, ino = events_mod.tail(path, 0, None)
    assert [e["event"] for e in found] == ["start"]
    with open(path, "ab") as f:
        f.write(b'art","pid":1,"step":"a"}\nnot json\n')
    found, pos, ino = events_mod.tail(path, pos, ino)
    assert [(e["event"], e["step"]) for e in found] == [("step-start", "a")]
    path.unlink()
    path.write_bytes(b'{"event":"end","pid":1}\n')
    found, pos, ino = events_mod.tail(path, pos, ino)
    assert [e["event"] for e in found] == ["end"]
    # Read to its end, it may be emptied (a long session does not grow it for ever).
    assert events_mod.truncate_read(path, pos - 1, ino) == pos - 1  # not all read: kept
    assert events_mod.truncate_read(path, pos, ino) == 0 and path.stat().st_size == 0
    with open(path, "ab") as f:
        f.write(b'{"event":"start","pid":2}\n')
    found, pos, ino = events_mod.tail(path, 0, ino)
    assert [(e["event"], e["pid"]) for e in found] == [("start", 2)]


# -- the server: who may ask, and what it answers ---------------------------------------


@contextlib.contextmanager
def client(source: LocalSource):
    """Starlette's TestClient on the page's application, as a browser on 127.0.0.1
    reaches it; yields (client, token)."""
    from starlette.testclient import TestClient

    from datamake.ui.server import PageServer

    server = PageServer(source)
    try:
        with TestClient(server.app(), base_url=f"http://127.0.0.1:{server.port}") as c:
            yield c, server.token
    finally:
        server.sock.close()
        if source._proc is not None and source._proc.poll() is None:
            source._proc.kill()
            source._proc.wait()


def test_every_request_needs_the_token(built_spaceflights):
    with inside(built_spaceflights.root), client(source_of(built_spaceflights)) as (c, token):
        assert c.get("/").status_code == 403
        assert c.get("/?token=not-it").status_code == 403
        page = c.get(f"/?token={token}")
        assert page.status_code == 200 and f"static/app.js?token={token}" in page.text
        assert "default-src 'none'" in page.headers["content-security-policy"]
        for path in ("/api/graph", "/api/panel?id=model_input", "/api/preview?name=companies",
                     "/api/events", "/static/app.js", "/static/vendor/dagre.min.js"):
            assert c.get(path).status_code == 403, path
            assert c.get(path, headers={"X-Datamake-Token": "not-it"}).status_code == 403, path
        assert c.post("/api/build", json={"target": None}).status_code == 403
        assert c.get(f"/static/app.js?token={token}").status_code == 200
        assert c.get(f"/static/../server.py?token={token}").status_code == 404
        auth = {"X-Datamake-Token": token}
        graph = c.get("/api/graph", headers=auth).json()
        assert {n["id"] for n in graph["nodes"]} == SPACEFLIGHTS_NODES
        assert graph["live"] == [] and isinstance(graph["now"], float)
        rows = c.get("/api/preview?name=companies", headers=auth).json()["rows"]
        assert len(rows) == 20
        r = c.get("/api/panel?id=no_such_node", headers=auth)
        assert r.status_code == 404 and "no node `no_such_node`" in r.json()["error"]


@pytest.mark.parametrize("host,allowed", [
    ("127.0.0.1:8000", True), ("localhost:8000", True), ("LOCALHOST", True),
    ("evil.example:8000", False), ("127.0.0.1.evil.example", False), ("", False),
    ("[::1]:8000", False)])
def test_other_host_headers_are_refused(built_spaceflights, host, allowed):
    # A page of another site whose name it makes resolve to 127.0.0.1 (DNS rebinding)
    # sends its own name as Host: refused, even with the token.
    with inside(built_spaceflights.root), client(source_of(built_spaceflights)) as (c, token):
        r = c.get(f"/api/graph?token={token}", headers={"Host": host})
        assert (r.status_code == 200) is allowed, (host, r.status_code)
        if not allowed:
            assert r.status_code == 403 and "127.0.0.1 and localhost" in r.text


def test_the_server_listens_on_loopback_only(built_spaceflights):
    from datamake.ui.server import PageServer

    with inside(built_spaceflights.root):
        server = PageServer(source_of(built_spaceflights))
    try:
        assert server.sock.getsockname()[0] == "127.0.0.1"
        assert server.url.startswith(f"http://127.0.0.1:{server.port}/?token=")
        assert len(server.token) >= 32
    finally:
        server.sock.close()


def test_a_build_from_the_page_runs_once_at_a_time(proj):
    proj.write("Datafile", WAITING)
    proj.write("src.txt", "x")
    with inside(proj.root), client(LocalSource("Datafile")) as (c, token):
        auth = {"X-Datamake-Token": token}
        for bad in ("-B", "--gc", "nope", "src[x]"):
            r = c.post("/api/build", json={"target": bad}, headers=auth)
            assert r.status_code == 404, bad
        assert c.post("/api/build", json={"target": 3}, headers=auth).status_code == 400
        assert c.post("/api/build", content=b"{", headers=auth).status_code == 400
        first = c.post("/api/build", json={"target": "slow"}, headers=auth)
        assert first.status_code == 202 and first.json()["target"] == "slow"
        second = c.post("/api/build", json={"target": "after"}, headers=auth)
        assert second.status_code == 409
        assert second.json()["error"] == (f"a build started from this page (pid "
                                          f"{first.json()['pid']}) is still running: wait "
                                          f"for it to end")
        proj.path("go").write_text("")
        deadline = time.monotonic() + 120
        while not proj.path("out/slow.txt").exists():
            assert time.monotonic() < deadline, "the page's build never finished"
            time.sleep(0.05)
        for _ in range(2400):
            r = c.post("/api/build", json={"target": "after"}, headers=auth)
            if r.status_code == 202:
                break
            time.sleep(0.05)
        assert r.status_code == 202
        deadline = time.monotonic() + 120
        while not proj.path("out/after.txt").exists():
            assert time.monotonic() < deadline, "the second build never finished"
            time.sleep(0.05)
    assert proj.read("out/after.txt") == "X!"


# -- the command line -------------------------------------------------------------------


def _read_line(p: subprocess.Popen, timeout: float = 60) -> str:
    import select

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([p.stdout], [], [], 0.2)
        if ready:
            return p.stdout.readline()
        if p.poll() is not None:
            break
    raise AssertionError(f"no line from datamake --ui; stderr: {p.stderr.read() if p.poll() is not None else ''}")


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    import urllib.error
    import urllib.request

    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_datamake_ui_prints_its_url_serves_and_stops_on_ctrl_c(proj):
    proj.write("Datafile", WAITING)
    proj.write("src.txt", "x")
    p = subprocess.Popen([sys.executable, "-m", "datamake", "--ui"], cwd=proj.root,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env=clean_env())
    try:
        line = _read_line(p)
        m = re.fullmatch(r"datamake: the pipeline page is at "
                         r"(http://127\.0\.0\.1:(\d+)/)\?token=([A-Za-z0-9_-]{32,})\n", line)
        assert m, line
        base, token = m.group(1), m.group(3)
        assert proj.read(".datamake/ui") == str(p.pid)
        assert _get(base)[0] == 403
        status, body = _get(f"{base}?token={token}")
        assert status == 200 and "<title>Datafile — datamake</title>" in body
        status, body = _get(f"{base}api/graph", {"X-Datamake-Token": token})
        assert status == 200 and {n["id"] for n in json.loads(body)["nodes"]} == {
            "src", "slow", "after"}
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()
    assert p.returncode == 0, err
    assert "Traceback" not in err
    assert not proj.path(".datamake/ui").exists()


def test_datamake_ui_with_watch_builds_and_serves(proj):
    proj.write("Datafile", """
        dataset src = "src.txt"
        dataset out = "out.txt"
        out: src
            src.upper()
    """)
    proj.write("src.txt", "x")
    p = subprocess.Popen([sys.executable, "-m", "datamake", "--ui", "--watch", "--port", "0"],
                         cwd=proj.root, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, env=clean_env())
    try:
        assert _read_line(p).startswith("datamake: the pipeline page is at http://127.0.0.1:")
        deadline = time.monotonic() + 120
        while not proj.path("out.txt").exists():
            assert time.monotonic() < deadline and p.poll() is None, "no build"
            time.sleep(0.05)
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()
    assert p.returncode == 0, err
    assert proj.read("out.txt") == "X"
    assert "pipeline page is at" not in out  # once (read above): the watch's builds serve none
    assert "Traceback" not in err


def test_a_port_in_use_is_a_clear_error(proj):
    import socket

    proj.write("Datafile", WAITING)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        r = proj.run("--ui", "--port", str(port))
    assert r.code == 2
    assert r.err == (f"datamake: error: cannot serve the page on 127.0.0.1:{port}: Address "
                     f"already in use\nhelp: choose another port with --port N, or leave it "
                     f"out for a free one\n")


def test_no_datafile_is_a_command_line_error_and_a_broken_one_is_served(proj):
    r = proj.run("--ui")
    assert r.code == 2
    assert r.err == proj.run().err == ("datamake: error: no Datafile at `Datafile`\n"
                                       "help: create one, or name it with `-f FILE`\n")
    proj.write("Datafile", "out: nowhere\n    nowhere\n")
    p = subprocess.Popen([sys.executable, "-m", "datamake", "--ui"], cwd=proj.root,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env=clean_env())
    try:
        assert _read_line(p).startswith("datamake: the pipeline page is at ")
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()
    assert p.returncode == 0
    assert err.startswith("Datafile:1:6: error: unknown name `nowhere`\n")


def test_without_the_ui_extra_one_line_names_it(proj, tmp_path):
    # Starlette and uvicorn hidden from the import system, as when the extra is missing.
    shim = tmp_path / "shim"
    shim.mkdir()
    (shim / "sitecustomize.py").write_text(
        "import sys\n"
        "class Hide:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('starlette', 'uvicorn'):\n"
        "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
        "sys.meta_path.insert(0, Hide())\n")
    proj.write("Datafile", WAITING)
    proj.write("src.txt", "x")
    env = clean_env(PYTHONPATH=str(shim))
    r = proj.run("--ui", env=env)
    assert (r.code, r.out) == (2, "")
    assert r.err == 'datamake: error: --ui needs the page\'s web server: pip install "datamake[ui]"\n'
    # The static export needs no server.
    r = proj.run("--dag", "--format", "html", "-o", "page.html", env=env)
    assert r.code == 0 and proj.read("page.html").startswith("<!doctype html>")


# -- the static export ------------------------------------------------------------------


def test_the_svg_picture_has_every_node_and_no_overlaps(tmp_path):
    ui_pipeline.write(tmp_path, 120)
    p = Proj(tmp_path)
    r = p.run("--dag", "--format", "svg", "-o", "dag.svg", "r119")
    assert r.code == 0, r.err
    root = ET.fromstring(p.read("dag.svg"))
    ns = {"s": "http://www.w3.org/2000/svg"}
    groups = root.findall(".//s:g[@data-id]", ns)
    needed = p.plan("r119")["run"]
    ids = {g.get("data-id") for g in groups}
    assert set(needed) <= ids and "r119" in ids
    boxes = []
    for g in groups:
        rect = g.find("s:rect", ns)
        boxes.append((float(rect.get("x")), float(rect.get("y")),
                      float(rect.get("width")), float(rect.get("height"))))
    for i, (x, y, w, h) in enumerate(boxes):
        for (x2, y2, w2, h2) in boxes[i + 1:]:
            assert x + w <= x2 or x2 + w2 <= x or y + h <= y2 or y2 + h2 <= y, "boxes overlap"
    assert len(root.findall(".//s:path[@marker-end]", ns)) > len(needed)


def test_the_svg_picture_shows_hostile_text_as_text(proj):
    write_hostile(proj)
    r = proj.run("--dag", "--format", "svg", "-o", "dag.svg")
    assert r.code == 0, r.err
    root = ET.fromstring(proj.read("dag.svg"))  # well-formed: every text escaped
    ns = {"s": "http://www.w3.org/2000/svg"}
    assert root.findall(".//s:script", ns) == [] and root.findall(".//s:img", ns) == []
    titles = [t.text for t in root.iter("{http://www.w3.org/2000/svg}title")]
    assert "out\n<script>window.pwned = 1; alert(1)</script><img src=x onerror=\"window.pwned=2\">" in titles


# -- the page, in headless Chromium ------------------------------------------------------


@pytest.fixture(scope="module")
def browser():
    with chromium(1400, 900) as b:
        yield b


@contextlib.contextmanager
def page_of(root: Path, browser, *overrides: str):
    """`datamake --ui`'s server for the project in `root`, in this process, and the page
    open in the browser."""
    from datamake.cli import split_args
    from datamake.ui.server import PageServer

    _, params, raw = split_args(overrides)
    with inside(root):
        source = LocalSource("Datafile", params, raw)
        server = PageServer(source)
        server.start()
        try:
            open_page(browser, server.url)
            yield server
        finally:
            server.stop()
            if source._proc is not None and source._proc.poll() is None:
                source._proc.kill()
                source._proc.wait()


def open_page(browser, url: str) -> None:
    browser.get(url)
    wait(browser, "return document.body.dataset.ready === '1'")


def wait(browser, script: str, *args, timeout: float = 60):
    """Until the script returns something true (a hang guard, not a timing)."""
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(browser, timeout, poll_frequency=0.05).until(
        lambda b: b.execute_script(script, *args), f"never true: {script}")


def node_ids(browser) -> list[str]:
    return browser.execute_script(
        "return [...document.querySelectorAll('#viewport g.node')].map(g => g.dataset.id)")


def status(browser, node: str) -> str:
    return browser.execute_script(
        "const g = document.querySelector(`g.node[data-id=\"${arguments[0]}\"]`);"
        "return g ? g.dataset.status : null", node)


def click_node(browser, node: str) -> None:
    from selenium.webdriver.common.by import By

    browser.execute_script("datamakePage.search(arguments[0])", node)  # into view
    browser.find_element(By.CSS_SELECTOR, f'g.node[data-id="{node}"] rect').click()
    wait(browser, "const p = document.getElementById('panel');"
                  "return !p.hidden && p.querySelector('h2') && p.querySelector('h2').textContent"
                  " .startsWith(arguments[0])", node)


def panel_text(browser) -> str:
    return browser.execute_script("return document.getElementById('panel').innerText")


def test_the_page_of_spaceflights_shows_every_node(built_spaceflights, browser):
    with page_of(built_spaceflights.root, browser):
        assert set(node_ids(browser)) == SPACEFLIGHTS_NODES
        assert status(browser, "model_input") == "fresh"
        assert status(browser, "companies") == "source"
        # Laid out left to right: each edge goes from a box to one further right.
        boxes = browser.execute_script("""
            const out = {};
            for (const g of document.querySelectorAll('#viewport g.node')) {
              const b = g.getBBox(); out[g.dataset.id] = [b.x, b.y, b.width, b.height];
            }
            return out;""")
        assert boxes["companies"][0] < boxes["preprocessed_companies"][0] < boxes["model_input"][0] \
            < boxes["X_train"][0] < boxes["regressor"][0] < boxes["report"][0]
        assert all(w > 100 and h > 30 for _, _, w, h in boxes.values())
        legend = browser.execute_script("return document.getElementById('legend').innerText")
        for word in ("fresh", "stale", "running", "failed", "cached", "missing"):
            assert word in legend


def test_a_build_in_another_terminal_shows_running_then_fresh_without_a_reload(proj, browser):
    proj.write("Datafile", WAITING)
    proj.write("src.txt", "x")
    build = None
    with page_of(proj.root, browser):
        assert status(browser, "slow") == "stale"
        browser.execute_script("window.notReloaded = true")
        build = subprocess.Popen([sys.executable, "-m", "datamake", "after"], cwd=proj.root,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                 env=clean_env())
        try:
            wait(browser, "return document.querySelector('g.node[data-id=\"slow\"]')"
                          ".dataset.status === 'running'")
            sub = wait(browser, "const t = document.querySelector('g.node[data-id=\"slow\"] .sub')"
                                ".textContent; return /^running \\d+\\.\\ds$/.test(t) && t")
            assert sub.startswith("running ")
            assert status(browser, "after") == "stale"
            proj.path("go").write_text("")
            wait(browser, "return document.querySelector('g.node[data-id=\"slow\"]')"
                          ".dataset.status === 'fresh'")
            wait(browser, "return document.querySelector('g.node[data-id=\"after\"]')"
                          ".dataset.status === 'fresh'")
            assert build.wait(timeout=120) == 0, build.stderr.read()
        finally:
            if build.poll() is None:
                build.kill()
                build.wait()
        assert browser.execute_script("return window.notReloaded") is True


def test_clicking_a_node_shows_its_recipe_at_its_datafile_lines(built_spaceflights, browser):
    lines = built_spaceflights.read("Datafile").split("\n")
    header = lines.index("report: regressor metrics X_test y_test") + 1
    with page_of(built_spaceflights.root, browser):
        click_node(browser, "report")
        code = browser.execute_script("""
            const box = [...document.querySelectorAll('#panel .codebox')][0];
            return {title: box.querySelector('.ctitle').textContent,
                    lines: [...box.querySelectorAll('.line')].map(l => [
                      l.querySelector('.n').textContent,
                      l.textContent.slice(l.querySelector('.n').textContent.length)])};""")
        assert code["title"] == f"Datafile:{header}"
        want = [[str(header + i), lines[header - 1 + i]] for i in range(len(code["lines"]))]
        assert code["lines"] == want
        assert code["lines"][-1][1] == "    r"  # the recipe's last line, as written
        assert browser.execute_script(
            "return document.querySelectorAll('#panel .codebox .tk-k').length") > 0


def test_a_table_preview_shows_real_rows(built_spaceflights, browser):
    import pandas as pd

    real = pd.read_csv(built_spaceflights.root / "examples/spaceflights/data/01_raw/reviews.csv",
                       nrows=3)
    with page_of(built_spaceflights.root, browser):
        click_node(browser, "reviews")
        wait(browser, "return document.querySelectorAll('#panel .preview table tbody tr').length > 0")
        table = browser.execute_script("""
            const t = document.querySelector('#panel .preview table');
            return {head: [...t.querySelectorAll('thead th')].map(th => th.firstChild.textContent),
                    rows: [...t.querySelectorAll('tbody tr')].map(r =>
                      [...r.querySelectorAll('td')].map(td => td.textContent))};""")
    assert table["head"] == list(real.columns)
    assert len(table["rows"]) == 20
    for i in range(3):
        row = [real[c].iloc[i] for c in real.columns]
        assert table["rows"][i] == ["" if pd.isna(v) else str(v) for v in row]


def test_a_stale_node_shows_its_reason(built_spaceflights, browser):
    with page_of(built_spaceflights.root, browser, "test_size=0.3"):
        assert status(browser, "X_train") == "stale"
        sub = browser.execute_script(
            "return document.querySelector('g.node[data-id=\"X_train\"] .sub').textContent")
        assert sub == "stale · param-changed"
        click_node(browser, "X_train")
        wait(browser, "return document.querySelector('#panel pre.explain')")
        explain = browser.execute_script(
            "return document.querySelector('#panel pre.explain').textContent")
    assert explain == "param-changed: parameter `test_size`: 0.2 -> 0.3"


def test_the_build_button_builds_and_a_second_click_is_refused(proj, browser):
    from selenium.webdriver.common.by import By

    proj.write("Datafile", WAITING)
    proj.write("src.txt", "x")
    with page_of(proj.root, browser):
        click_node(browser, "after")
        button = browser.find_element(By.ID, "build-node")
        assert button.text == "Build after"
        button.click()
        wait(browser, "return document.querySelector('g.node[data-id=\"slow\"]')"
                      ".dataset.status === 'running'")
        browser.find_element(By.ID, "build-node").click()
        refused = wait(browser, "const m = document.querySelector('#panel .refused');"
                                "return m && m.textContent")
        assert "is still running: wait for it to end" in refused
        proj.path("go").write_text("")
        wait(browser, "return document.querySelector('g.node[data-id=\"after\"]')"
                      ".dataset.status === 'fresh'")
    assert proj.read("out/after.txt") == "X!"
    assert proj.built("after") == []


def test_a_pipeline_of_300_rules_renders_every_node_and_search_finds_one(tmp_path, browser):
    ui_pipeline.write(tmp_path, 300)
    with page_of(tmp_path, browser):
        ids = node_ids(browser)
        assert sorted(ids) == sorted([f"r{i:03d}" for i in range(300)] +
                                     [f"src{j}" for j in range(10)] + ["scale"])
        browser.execute_script("""
            const box = document.getElementById('search');
            box.value = 'r257';
            box.dispatchEvent(new KeyboardEvent('keydown', {key: 'Enter'}));""")
        hit = wait(browser, "const g = document.querySelector('g.node.hit'); return g && g.dataset.id")
        assert hit == "r257"
        # Centred in view: its box is inside the canvas.
        inside_view = browser.execute_script("""
            const r = document.querySelector('g.node[data-id="r257"]').getBoundingClientRect();
            const c = document.getElementById('graph').getBoundingClientRect();
            return r.left >= c.left && r.right <= c.right && r.top >= c.top && r.bottom <= c.bottom;""")
        assert inside_view


def test_namespaces_fold_and_unfold(proj, browser):
    from selenium.webdriver.common.by import By

    proj.write("Datafile", """
        include "features/Datafile" as features
        dataset report = "report.json"

        report: features.top features.count
            {"top": top, "count": count}
    """)
    proj.write("features/Datafile", """
        dataset words = "words.txt"
        top: words
            words.split()[:2]
        count: words
            len(words.split())
    """)
    proj.write("features/words.txt", "a b c")
    with page_of(proj.root, browser):
        assert set(node_ids(browser)) == {"features.top", "features.count", "features.words",
                                          "report"}
        browser.find_element(By.CSS_SELECTOR, 'g.cluster[data-ns="features"] text').click()
        wait(browser, "return document.querySelector('g.node[data-id=\"ns:features\"]')")
        assert set(node_ids(browser)) == {"ns:features", "report"}
        browser.find_element(By.CSS_SELECTOR, 'g.node[data-id="ns:features"] rect').click()
        wait(browser, "return document.querySelector('g.node[data-id=\"features.top\"]')")
        assert set(node_ids(browser)) == {"features.top", "features.count", "features.words",
                                          "report"}


HOSTILE = """
    param evil = '"><img src=x onerror="window.pwned=3;console.log(`PWNED`)">'
    dataset evil_src = 'in/"><img src=x onerror=window.pwned=4>.txt'
    dataset page = "in/page.html"
    dataset parts = "parts/{name}.txt"
    dataset out = "out.txt"

    all: out counts

    ## <script>window.pwned = 1; alert(1)</script><img src=x onerror="window.pwned=2">
    out: evil_src evil page
        s = "<script>window.pwned = 5; console.log('PWNED')</script>"
        evil_src + evil + s + page[:0]

    counts[name]: parts[name]
        parts + "<b onmouseover=window.pwned=6>"
"""
HOSTILE_NAME = '"><img src=x onerror=window.pwned=7>'


def write_hostile(proj: Proj) -> None:
    proj.write("Datafile", HOSTILE)
    proj.write('in/"><img src=x onerror=window.pwned=4>.txt',
               "<script>window.pwned = 8; console.log('PWNED')</script>")
    proj.write("in/page.html", "<p>report</p><script>window.parent.pwned = 9;"
                               "console.log('PWNED')</script>")
    proj.write(f"parts/{HOSTILE_NAME}.txt", "<img src=x onerror=window.pwned=10>")


def check_hostile(browser) -> None:
    """Every panel and preview opened: all the hostile text shown, none of it run."""
    for node in ("out", "evil", "evil_src", "page", "counts", "parts", "all"):
        browser.execute_script("datamakePage.openPanel(arguments[0])", node)
        wait(browser, "const h = document.querySelector('#panel h2');"
                      "return h && h.textContent.startsWith(arguments[0]) &&"
                      "!document.querySelector('#panel .preview p.muted')?.textContent"
                      ".startsWith('Loading')", node)
        text = panel_text(browser)
        if node == "out":
            assert "<script>window.pwned = 5; console.log('PWNED')</script>" in text
            assert "<script>window.pwned = 1; alert(1)</script>" in text  # the description
            assert 'in/"><img src=x onerror=window.pwned=4>.txt' in text  # a location
        if node == "evil":
            assert '"><img src=x onerror="window.pwned=3;console.log(`PWNED`)">' in text
        if node == "evil_src":
            assert "<script>window.pwned = 8; console.log('PWNED')</script>" in text
        if node == "counts":
            assert HOSTILE_NAME in text  # a partition key, from a file name
    assert browser.execute_script(
        "return document.querySelector('#panel iframe') === null || "
        "document.querySelector('#panel iframe').getAttribute('sandbox') === ''")
    assert browser.execute_script("return window.pwned") is None
    from selenium.common.exceptions import NoAlertPresentException

    with pytest.raises(NoAlertPresentException):
        browser.switch_to.alert.text
    logs = [e["message"] for e in browser.get_log("browser")]
    assert not [m for m in logs if "PWNED" in m], logs


def test_hostile_names_and_texts_are_shown_never_run_on_the_live_page(proj, browser):
    write_hostile(proj)
    proj.build()
    with page_of(proj.root, browser):
        browser.get_log("browser")  # from here on
        check_hostile(browser)
        browser.execute_script("datamakePage.openPanel('page')")
        wait(browser, "return document.querySelector('#panel iframe.report')")
        assert browser.execute_script("return window.pwned") is None


def test_hostile_names_and_texts_are_shown_never_run_in_the_static_page(proj, browser):
    write_hostile(proj)
    proj.build()
    r = proj.run("--dag", "--format", "html", "-o", "page.html")
    assert r.code == 0, r.err
    browser.get(proj.path("page.html").as_uri())
    wait(browser, "return document.body.dataset.ready === '1'")
    browser.get_log("browser")
    assert set(node_ids(browser)) >= {"out", "evil", "evil_src", "page", "counts", "parts"}
    assert browser.execute_script("return document.getElementById('build-all')") is None
    check_hostile(browser)


def test_the_static_page_has_every_panel_offline(built_spaceflights, browser):
    p = built_spaceflights
    r = p.run("--dag", "--format", "html", "-o", "dag.html")
    assert r.code == 0, r.err
    browser.get(p.path("dag.html").as_uri())
    wait(browser, "return document.body.dataset.ready === '1'")
    assert set(node_ids(browser)) == SPACEFLIGHTS_NODES
    browser.execute_script("datamakePage.openPanel('model_input')")
    wait(browser, "return document.querySelectorAll('#panel .preview table tbody tr').length > 0")
    assert "create_model_input_table" in panel_text(browser)
    browser.execute_script("datamakePage.openPanel('report')")
    wait(browser, "return document.querySelector('#panel svg.chart[data-metric=\"r2\"]')")
    assert "no live updates" in browser.execute_script(
        "return document.getElementById('snapshot').textContent")


@pytest.mark.parametrize("ci,outcome", [("", "1 skipped"), ("true", "1 failed")])
def test_browser_tests_skip_without_chromium_but_fail_in_ci(tmp_path, ci, outcome):
    (tmp_path / "test_page.py").write_text(
        "from browser import chromium\n\n"
        "def test_page():\n"
        "    with chromium():\n"
        "        pass\n")
    env = clean_env(CI=ci, PATH=str(tmp_path / "no-browser-here"),
                    PYTHONPATH=str(Path(__file__).parent))
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rsf",
                        str(tmp_path / "test_page.py")], capture_output=True, text=True,
                       env=env, cwd=tmp_path, timeout=120)
    assert outcome in r.stdout, r.stdout + r.stderr
    assert "no chromium on PATH (apt-get install chromium chromium-driver)" in r.stdout
