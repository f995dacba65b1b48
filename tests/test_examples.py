"""The bundled examples, built end to end as a new user would, in a copy of the repo."""
from __future__ import annotations

import json
import shutil

import pytest

from browser import chromium
from conftest import REPO, Proj


@pytest.fixture
def repo_copy(tmp_path) -> Proj:
    shutil.copy(REPO / "Datafile.example", tmp_path / "Datafile.example")
    ignore = shutil.ignore_patterns("0[2-9]_*", "results", ".datamake", "__pycache__")
    shutil.copytree(REPO / "examples", tmp_path / "examples", ignore=ignore)
    return Proj(tmp_path)


def test_spaceflights_report(repo_copy):
    p = repo_copy
    doc = p.build("-f", "Datafile.example", "report")
    assert doc["built"] == ["preprocessed_companies", "preprocessed_shuttles", "model_input",
                            "X_train", "regressor", "metrics", "report"]
    metrics = json.loads(p.read("examples/spaceflights/data/08_reporting/metrics.json"))
    assert set(metrics) == {"r2", "mae", "max_error", "test_rows"}
    assert 0.2 < metrics["r2"] < 0.6 and metrics["test_rows"] > 1000
    assert p.build("-f", "Datafile.example", "report")["built"] == []
    # A parameter change reruns the split and what depends on it, not the preprocessing.
    doc = p.build("-f", "Datafile.example", "report", "test_size=0.3")
    assert doc["built"] == ["X_train", "regressor", "metrics", "report"]
    assert doc["fresh"] == ["preprocessed_companies", "preprocessed_shuttles", "model_input"]

    page = p.path("examples/spaceflights/data/08_reporting/report.html")
    html = page.read_text()
    assert "https://" not in html and "http://" not in html  # self-contained
    with chromium() as browser:
        browser.get(page.as_uri())
        assert browser.title == "Spaceflights: a price model for space shuttles"
        state = browser.execute_script("""
            const img = document.querySelector('figure img');
            return {loaded: img.complete, width: img.naturalWidth,
                    metrics: [...document.querySelectorAll('.metric .name')].map(e => e.textContent),
                    rows: document.querySelectorAll('table tbody tr').length};
        """)
    assert state["loaded"] and state["width"] > 300  # the embedded figure really renders
    assert state["metrics"] == ["r2", "mae", "max_error", "test_rows"]
    assert state["rows"] == 10


def test_dag_page_renders(repo_copy):
    p = repo_copy
    r = p.run("-f", "Datafile.example", "--dag", "--format", "html", "-o", "dag.html")
    assert r.code == 0, r.err
    with chromium() as browser:
        browser.get(p.path("dag.html").as_uri())
        ids = browser.execute_script(
            "return [...document.querySelectorAll('g.node')].map(g => g.dataset.id)")
        boxes = browser.execute_script(
            "return [...document.querySelectorAll('g.node rect')].map(r => r.getBBox().width)")
    assert {"companies", "shuttles", "reviews", "model_input", "report"} <= set(ids)
    assert all(w > 50 for w in boxes)


def test_wordcount_shell_and_path(repo_copy):
    p = repo_copy
    wc = p.root / "examples" / "wordcount"
    doc = p.build("-C", str(wc))
    assert doc["built"] == ["isles_counts", "abyss_counts", "plots", "summary"]
    assert sorted(x.name for x in (wc / "results" / "plots").iterdir()) == ["abyss.png", "isles.png"]
    summary = (wc / "results" / "summary.md").read_text()
    assert summary.startswith("# The 10 most frequent words\n## isles\n")
    assert summary.split("\n")[2].split() == ["3822", "the"]
    assert p.build("-C", str(wc))["built"] == []
    assert p.build("-C", str(wc), "top=3")["built"] == ["plots", "summary"]
    assert len((wc / "results" / "summary.md").read_text().splitlines()) == 1 + 2 * 4


def test_zipf_partitions(repo_copy):
    p = repo_copy
    z = p.root / "examples" / "zipf"
    doc = p.build("-C", str(z))
    assert doc["built"] == ["counts[abyss]", "counts[isles]", "counts[last]", "counts[sierra]",
                            "zipf", "plot", "embeddings", "similarity"]
    assert len(list((z / "results" / "embeddings").iterdir())) > 50
    sim = json.loads((z / "results" / "similarity.json").read_text())
    assert set(sim) == {"abyss~isles", "abyss~last", "abyss~sierra", "isles~last",
                        "isles~sierra", "last~sierra"}
    assert p.build("-C", str(z))["built"] == []
    # A fifth book: one more count; the table, plot and the whole-books job rerun. The
    # new book is a copy of another, so its count has a signature already built: it is
    # restored from the cache instead of run.
    shutil.copy(p.root / "examples" / "books" / "isles.txt", p.root / "examples" / "books" / "isles2.txt")
    doc = p.build("-C", str(z))
    assert doc["cached"] == ["counts[isles2]"]
    assert doc["built"] == ["zipf", "plot", "embeddings", "similarity"]
    assert p.build("-C", str(z), "top=5")["built"] == ["zipf", "plot"]
