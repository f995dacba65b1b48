"""The versions index and comparison pages of a versioned report: what they list, that
their links lead to the versions, that they open offline, that nothing in them runs."""
from __future__ import annotations

import json
import re

from browser import chromium
from pages import external_refs, open_offline

from datamake import versions
from datamake.hashing import hash_text
from datamake.report import Report
from datamake.report_index import Layout, VersionRecord, compare, pages

EVIL = "</script><script>window.pwned=1</script><img src=x onerror=window.pwned=2>"


def three_versions(folder, evil: bool = False):
    """Three saved versions of report.html, as a build leaves them, with their records."""
    vdir = folder / ".versions" / "report.html"
    vdir.mkdir(parents=True)
    runs = [({"test_size": 0.2, "model": "linear"}, {"r2": 0.41, "mae": 550.0}),
            ({"test_size": 0.3, "model": "linear"}, {"r2": 0.39, "mae": 560.5}),
            ({"test_size": 0.3, "model": EVIL if evil else "ridge"},
             {"r2": 0.45, "mae": 530.25, (EVIL if evil else "rows"): 1206})]
    records = []
    for n, (params, metrics) in enumerate(runs):
        r = Report(f"Run {n + 1}")
        for k, v in metrics.items():
            r.metric(k, v)
        text = r.to_html()
        digest = hash_text(text)
        vid = versions.new_id(1764583200 + 3600 * n)
        path = vdir / versions.file_name(vid, digest, f"{n:016x}", ".html")
        path.write_text(text)
        v = versions.parse(path.name, str(path), path.stat().st_size)
        records.append(VersionRecord(
            v, versions.metrics_of(text.encode(), "html"), params,
            {"model_input": "a" * 32, "regressor": f"{n:032x}"}))
    return records


def write_pages(folder, records):
    for rel, text in pages("report.html", records).items():
        target = folder / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)


def test_compare_says_what_changed_as_data(tmp_path):
    a, b, c = three_versions(tmp_path)
    doc = compare(b, c)
    assert doc["from"] == b.version.id and doc["to"] == c.version.id
    assert doc["params"] == {"model": {"before": "linear", "after": "ridge"}}
    assert doc["inputs"] == {"regressor": {"before": f"{1:032x}", "after": f"{2:032x}"}}
    assert doc["metrics"]["r2"]["change"] == 0.45 - 0.39
    assert doc["metrics"]["rows"] == {"before": None, "after": 1206, "change": None,
                                      "relative": None}
    assert compare(a, b)["params"] == {"test_size": {"before": 0.2, "after": 0.3}}


def test_the_pages_and_where_they_go(tmp_path):
    records = three_versions(tmp_path)
    written = pages("report.html", records)
    a, b, c = (r.version for r in records)
    assert sorted(written) == sorted([
        "report.versions.html",
        f".versions/report.html.compare/{a.id}..{b.id}.html",
        f".versions/report.html.compare/{b.id}..{c.id}.html"])
    index = written["report.versions.html"]
    data = json.loads(re.search(r'id="datamake-versions">(.*?)</script>', index).group(1))
    assert [d["id"] for d in data] == [a.id, b.id, c.id]
    assert data[0]["href"] == Layout("report.html").version(a)
    for text in written.values():
        assert external_refs(text) == []


def test_index_and_comparison_in_chromium(tmp_path):
    records = three_versions(tmp_path)
    write_pages(tmp_path, records)
    a, b, c = (r.version for r in records)
    with chromium() as browser:
        assert open_offline(browser, tmp_path / "report.versions.html") == []
        index = browser.execute_script("""
            const rows = [...document.querySelectorAll('table.versions tbody tr')];
            return {ids: rows.map(r => r.cells[0].innerText),
                    params: rows.map(r => r.cells[2].innerText),
                    changed: rows.map(r => [...r.cells[2].querySelectorAll('.changed')]
                                              .map(e => e.innerText)),
                    r2: rows.map(r => r.cells[4].innerText),
                    trends: [...document.querySelectorAll('.trend')].map(t => [
                        t.querySelector('.name').firstChild.textContent.trim(),
                        t.querySelectorAll('circle').length]),
                    links: rows.map(r => r.cells[0].querySelector('a').href),
                    compare: rows.map(r => (r.cells[r.cells.length - 1]
                                            .querySelector('a') || {}).href || null)};
        """)
        assert index["ids"] == [c.id, b.id, a.id]  # newest first
        assert index["changed"] == [["model: ridge"], ["test_size: 0.3"], []]
        assert index["r2"] == ["0.45 (+0.06)", "0.39 (-0.02)", "0.41"]
        assert index["trends"] == [["r2", 3], ["mae", 3], ["rows", 1]]
        # Each link opens that version's page; the compare link, its comparison page.
        browser.get(index["links"][1])
        assert browser.title == "Run 2"
        comparison = index["compare"][0]
        assert index["compare"][2] is None
        requested = open_offline(browser, tmp_path / ".versions" / "report.html.compare"
                                 / f"{b.id}..{c.id}.html")
        assert sorted(requested) == sorted(
            (tmp_path / Layout("report.html").version(v)).as_uri() for v in (b, c))
        assert browser.current_url == comparison
        # The frames are sandboxed (no script of a version reaches this page), so their
        # documents are not readable here: the requests above show they were loaded.
        page = browser.execute_script("""
            return {frames: [...document.querySelectorAll('.side iframe')].map(f => f.src),
                    metrics: [...document.querySelectorAll('#metrics + table tbody tr')]
                               .map(r => [...r.cells].map(x => x.innerText)),
                    params: [...document.querySelectorAll('#params + table tbody tr')]
                               .map(r => [...r.cells].map(x => x.innerText)),
                    back: document.querySelector('p.meta a').href};
        """)
    assert page["frames"] == [(tmp_path / Layout("report.html").version(v)).as_uri()
                              for v in (b, c)]  # the two pages, side by side
    assert page["metrics"] == [["mae", "560.5", "530.2", "-30.25 (-5.4%)"],
                               ["r2", "0.39", "0.45", "+0.06 (+15.4%)"],
                               ["rows", "", "1,206", ""]]
    assert page["params"] == [["model", "linear", "ridge"]]
    assert page["back"] == (tmp_path / "report.versions.html").as_uri()


def test_names_and_values_cannot_inject_markup(tmp_path):
    records = three_versions(tmp_path, evil=True)
    write_pages(tmp_path, records)
    written = pages("report.html", records)
    for text in written.values():
        assert "<script>window.pwned" not in text and "<img src=x" not in text
        assert external_refs(text) == []
    last = Layout("report.html").comparison(records[1].version, records[2].version)
    with chromium() as browser:
        for rel in written:
            open_offline(browser, tmp_path / rel)
            assert browser.execute_script("return window.pwned === undefined")
            shown = browser.execute_script("return document.body.innerText")
            assert (EVIL in shown) == (rel in ("report.versions.html", last))  # as text
