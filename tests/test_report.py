"""`datamake.Report`: charts, sortable tables, contents, the build header, and pages
that open with the network off."""
from __future__ import annotations

import datetime as dt
import json
import re

import pytest

from browser import chromium
from pages import external_refs, open_offline

from datamake.report import BuildContext, Report
from datamake.versions import metrics_of

WHEN = dt.datetime(2026, 11, 26, 10, 4, 5, tzinfo=dt.timezone.utc)


def _frame(n: int = 30):
    import pandas as pd

    return pd.DataFrame({"city": [f"c{(i * 7) % n:02d}" for i in range(n)],
                         "price": [float((i * 37) % 101) * 10.5 for i in range(n)],
                         "rank": [(i * 13) % n for i in range(n)]})


def _long_report() -> Report:
    import altair as alt

    r = Report("Shuttle prices")
    r.text("An introduction.\n\n## Data\n\nWhere it comes from.")
    r.section("Model").metric("r2", 0.8731).metric("rows", 1200)
    r.table(_frame(30), "Prices", max_rows=20)
    r.section("Charts")
    r.chart(alt.Chart(_frame(30)).mark_point().encode(x="rank", y="price", tooltip=["city"]),
            "Price by rank")
    r.chart({"$schema": "https://vega.github.io/schema/vega-lite/v6.json",
             "data": {"values": [{"a": "x", "b": 3}, {"a": "y", "b": 5}]},
             "mark": "bar", "encoding": {"x": {"field": "a", "type": "nominal"},
                                         "y": {"field": "b", "type": "quantitative"}}})
    return r


def test_existing_api_and_embedded_metrics_unchanged():
    r = Report("Demo").text("Some **bold** words.").metric("r2", 0.9312345).metric("rows", 1200)
    r.table(_frame(100), "Numbers", max_rows=5)
    page = r.to_html()
    assert "<strong>bold</strong>" in page and "0.9312" in page and "1,200" in page
    assert "first 5 of 100 rows" in page
    assert metrics_of(page.encode(), "html") == {"r2": 0.9312345, "rows": 1200}
    assert r._repr_html_() == page


def test_a_page_without_charts_stays_small():
    page = Report("Small").metric("a", 1).table(_frame(10)).to_html()
    assert "vegaEmbed" not in page and len(page) < 20_000
    assert "vegaEmbed" in _long_report().to_html()


def test_header_says_what_built_the_page_and_nothing_without_a_context():
    r = Report("Built").metric("n", 3)
    plain = r.to_html()
    assert 'class="dm-build"' not in plain and "datamake-build" not in plain
    assert "built by" not in plain
    ctx = BuildContext("report", WHEN, {"test_size": 0.3, "features": ["a", "b"]},
                       "9.9.9", "0123456789abcdef")
    page = r.to_html(ctx)
    assert "built by datamake 9.9.9" in page and "<code>report</code>" in page
    assert "2026-11-26 10:04:05 UTC" in page and "0123456789ab" in page
    assert "<dt>features</dt><dd>[&quot;a&quot;, &quot;b&quot;]</dd>" in page
    build = json.loads(re.search(r'id="datamake-build">(.*?)</script>', page).group(1))
    assert build == {"target": "report", "built_at": "2026-11-26T10:04:05+00:00",
                     "params": {"test_size": 0.3, "features": ["a", "b"]},
                     "datamake_version": "9.9.9", "signature": "0123456789abcdef"}
    assert metrics_of(page.encode(), "html") == {"n": 3}
    # Without a time, the same report built twice is the same bytes.
    timeless = BuildContext("report", None, {"k": 1}, "9.9.9")
    assert r.to_html(timeless) == Report("Built").metric("n", 3).to_html(timeless)
    assert "<time" not in r.to_html(timeless) and '"built_at": null' in r.to_html(timeless)


def test_every_name_and_value_is_escaped():
    evil = "</script><script>alert(1)</script>"
    r = Report(evil).section(evil).metric(evil, 1).text(f"## {evil}\n\n{evil}")
    r.table(_frame(3).rename(columns={"city": evil}), evil)
    r.chart({"data": {"values": [{"a": evil}]}, "mark": "point",
             "encoding": {"x": {"field": "a", "type": "nominal"}}}, evil)
    page = r.to_html(BuildContext(evil, WHEN, {evil: evil}, evil, evil))
    assert "<script>alert(1)" not in page
    assert metrics_of(page.encode(), "html") == {evil: 1}


def test_contents_list_sections_and_markdown_headings_with_unique_ids():
    page = _long_report().to_html()
    nav = re.search(r'<nav class="toc".*?</nav>', page).group(0)
    links = re.findall(r'href="#([^"]+)">([^<]+)</a>', nav)
    assert [text for _, text in links] == ["Data", "Model", "Charts"]
    for ident, _ in links:
        assert page.count(f'id="{ident}"') == 1
    short = Report("Two").section("A").section("A").to_html()
    assert "<nav" not in short and 'id="a"' in short and 'id="a-2"' in short


def test_charts_take_altair_or_a_spec_with_their_data_inside():
    with pytest.raises(TypeError, match="Altair chart or a Vega-Lite spec"):
        Report("x").chart("not a chart")
    with pytest.raises(ValueError, match="loads its data from `https://example.com/d.csv`"):
        Report("x").chart({"data": {"url": "https://example.com/d.csv"}, "mark": "point"})
    with pytest.raises(ValueError, match="data.json"):  # Vega: a list of data sources
        Report("x").chart({"data": [{"name": "t", "url": "data.json"}], "marks": []})


def test_page_in_chromium_offline_sorts_draws_and_links(tmp_path):
    page = _long_report().to_html(BuildContext("report", WHEN, {"k": 2}, "1.0"))
    assert external_refs(page) == []
    path = tmp_path / "report.html"
    path.write_text(page)
    with chromium() as browser:
        assert open_offline(browser, path) == []
        browser.set_script_timeout(30)
        state = browser.execute_async_script("""
            const done = arguments[arguments.length - 1];
            const wait = () => {
              const svgs = document.querySelectorAll('figure.chart svg.marks');
              if (svgs.length < 2) return setTimeout(wait, 50);
              const col = t => [...document.querySelectorAll('table.dm-sortable tbody tr')]
                                .map(r => r.cells[t].textContent);
              const th = [...document.querySelectorAll('table.dm-sortable thead th')];
              const before = col(2);
              th[2].click(); const asc = col(2), ascFlag = th[2].getAttribute('aria-sort');
              th[2].click(); const desc = col(2);
              th[1].click(); const cities = col(1);
              done({before, asc, ascFlag, desc, cities,
                    marks: [...svgs].map(s => s.querySelectorAll(
                               'g.mark-symbol path, g.mark-rect path').length),
                    errors: [...document.querySelectorAll('figure.chart')]
                              .map(f => f.textContent).filter(t => t.includes('could not'))});
            };
            wait();
        """)
    nums = [float(x) for x in state["before"]]
    assert [float(x) for x in state["asc"]] == sorted(nums) != nums  # numeric, not text
    assert state["ascFlag"] == "ascending"
    assert [float(x) for x in state["desc"]] == sorted(nums, reverse=True)
    assert state["cities"] == sorted(state["cities"])
    assert state["marks"] == [30, 2] and state["errors"] == []  # every point, every bar


def test_the_offline_checks_see_what_would_fetch(tmp_path):
    """The checks above are only worth what they catch: a page that reaches out."""
    page = ('<html><head><style>@import "x.css"; b{background:url(https://e.x/i.png)}</style>'
            '<link rel="stylesheet" href="//cdn.example/s.css"></head><body>'
            '<img src="https://e.x/a.png"><a href="#top">fine</a><img src="data:image/png;base64,AA">'
            '<div style="background:url(\'http://e.x/b.png\')"></div>'
            '<script>fetch("https://example.invalid/beacon").catch(() => 0)</script></body></html>')
    found = external_refs(page)
    assert len(found) == 5 and not any("#top" in f or "data:" in f for f in found)
    path = tmp_path / "leaky.html"
    path.write_text(page)
    with chromium() as browser:
        requested = open_offline(browser, path)
    assert "https://example.invalid/beacon" in requested and "https://e.x/a.png" in requested


def test_the_wheel_carries_every_page_asset():
    """pyproject's package-data globs cover every file under datamake/page-assets (what
    `pip wheel .` then ships; checked by hand with `unzip -l`)."""
    import fnmatch
    from pathlib import Path

    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib

    root = Path(__file__).resolve().parent.parent
    globs = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"]["datamake"]
    assets = [p.relative_to(root / "datamake").as_posix()
              for p in (root / "datamake" / "page-assets").rglob("*") if p.is_file()]
    assert len(assets) >= 7
    # setuptools' `*` stops at `/`, as fnmatch's does not: compare segment by segment.
    def covered(path: str) -> bool:
        return any(len(g.split("/")) == len(path.split("/")) and all(
            fnmatch.fnmatchcase(a, b) for a, b in zip(path.split("/"), g.split("/")))
            for g in globs)
    assert [a for a in assets if not covered(a)] == []
