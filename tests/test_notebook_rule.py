"""Notebook recipes in a Datafile, built for real (a Jupyter kernel, headless Chromium):
`notebook "FILE"` parsed and checked, run on real data, re-rendered (not re-run) after a
markdown-only edit, a failing cell located, versions recorded with an index and
comparisons, `--diff NAME@A NAME@B`, and no page that reaches outside."""
from __future__ import annotations

import json
import sys

import pytest

from browser import chromium
from conftest import REPO, Proj, clean_env
from pages import external_refs, open_offline

from datamake import loader
from datamake.errors import DatafileError

COMPANIES = REPO / "examples" / "spaceflights" / "data" / "01_raw" / "companies.csv"

DATAFILE = """
param min_fleet = 1.0
dataset companies = "data/companies.csv"
dataset fleet = "out/fleet.html" versioned

fleet: companies min_fleet
    notebook "notebooks/fleet.py"
"""

NOTEBOOK = """
# %% [markdown]
# # Fleet of the companies
#
# MARKDOWN-TEXT

# %%
import pandas as pd

with open("cells-ran.txt", "a") as f:  # says each time the cells run
    f.write("ran\\n")
big = companies[companies["total_fleet_count"] >= min_fleet]
metrics = {"companies": int(len(big)), "fleet": float(big["total_fleet_count"].sum())}
print(f"COMPANIES={metrics['companies']} FLEET={metrics['fleet']:.0f}")
"""


def fleet_project(p: Proj, rows: int | None = None) -> None:
    """The project on the real companies table (its first `rows` rows, or all)."""
    lines = COMPANIES.read_text().splitlines(keepends=True)
    p.write("data/companies.csv", "".join(lines if rows is None else lines[:rows + 1]),
            dedent=False)
    p.write("Datafile", DATAFILE)
    p.write("notebooks/fleet.py", NOTEBOOK)


def expected(p: Proj, min_fleet: float = 1.0) -> tuple[int, float]:
    import pandas as pd

    t = pd.read_csv(p.path("data/companies.csv"))
    big = t[t["total_fleet_count"] >= min_fleet]
    return int(len(big)), float(big["total_fleet_count"].sum())


def runs(p: Proj) -> int:
    path = p.path("cells-ran.txt")
    return len(path.read_text().splitlines()) if path.exists() else 0


def test_a_notebook_recipe_builds_versions_and_compares(proj):
    fleet_project(proj, rows=3000)
    assert proj.built() == ["fleet"]
    n1, f1 = expected(proj)
    page = proj.read("out/fleet.html")
    assert f"COMPANIES={n1} FLEET={f1:.0f}" in page
    assert proj.built() == []  # nothing changed: nothing runs

    fleet_project(proj)  # one input changes: the whole real table
    assert proj.built() == ["fleet"]
    n2, f2 = expected(proj)
    assert (n2, f2) != (n1, f1) and runs(proj) == 2

    out = proj.path("out")
    index = out / "fleet.versions.html"
    compared = list((out / ".versions" / "fleet.html.compare").iterdir())
    assert len(compared) == 1
    with chromium() as browser:
        assert open_offline(browser, out / "fleet.html") == []
        text = browser.find_element("tag name", "body").text
        assert f"COMPANIES={n2} FLEET={f2:.0f}" in text
        assert browser.title == "Fleet of the companies"
        assert open_offline(browser, index) == []
        rows = browser.execute_script("""
            return [...document.querySelectorAll('table.versions tbody tr')].map(
                tr => [...tr.querySelectorAll('td')].map(td => td.innerText));""")
        beside = open_offline(browser, compared[0])  # the two versions, side by side
        assert len(beside) == 2 and all(u.startswith(out.as_uri() + "/.versions/fleet.html/")
                                        for u in beside)
        side = browser.execute_script(
            "return [...document.querySelectorAll('iframe')].map(f => f.getAttribute('src'))")
    assert len(rows) == 2  # newest first
    newest, oldest = rows
    assert f"{n2:,}" in newest[4] and f"{n1:,}" in oldest[4]
    assert "min_fleet: 1" in newest[2] and "companies:" in newest[3]
    assert len(side) == 2

    # Every page written opens without a network: nothing in it points outside.
    written = [p for p in out.rglob("*.html") if p.is_file()]
    assert len(written) == 1 + 2 + 1 + 1, [str(p.relative_to(out)) for p in written]
    for p in written:
        assert external_refs(p.read_text()) == [], p

    # A changed parameter: --diff shows the metrics and what changed.
    assert proj.built("min_fleet=5") == ["fleet"]
    n3, f3 = expected(proj, 5.0)
    r = proj.run("--diff", "fleet@2", "fleet@3")
    assert r.code == 0, r.err
    row = next(ln.split() for ln in r.out.splitlines() if ln.split()[:1] == ["companies"])
    assert row[1:3] == [str(n2), str(n3)]
    assert "parameters that changed:" in r.out and "min_fleet  1.0 -> 5" in r.out
    assert "inputs that changed" not in r.out
    r = proj.run("--diff", "fleet@1", "fleet@2", "--json")
    doc = json.loads(r.out)
    assert doc["metrics"]["companies"] == {"before": n1, "after": n2, "change": n2 - n1,
                                           "relative": pytest.approx((n2 - n1) / n1)}
    assert doc["params"] == {}
    assert set(doc["inputs"]) == {"companies"}
    doc = json.loads(proj.run("--diff", "fleet@2", "fleet@3", "--json").out)
    assert doc["params"] == {"min_fleet": {"before": 1.0, "after": 5}}
    assert doc["inputs"] == {}
    # The old form still works, and names the same versions.
    old = json.loads(proj.run("--diff", "fleet", "1", "2", "--json").out)
    assert old["metrics"] == json.loads(proj.run("--diff", "fleet@1", "fleet@2",
                                                 "--json").out)["metrics"]


def test_a_markdown_only_edit_renders_again_without_running_the_cells(proj):
    fleet_project(proj, rows=2000)
    assert proj.built() == ["fleet"] and runs(proj) == 1
    before = proj.read("out/fleet.html")
    n, f = expected(proj)

    proj.write("notebooks/fleet.py", NOTEBOOK.replace("MARKDOWN-TEXT", "Edited words."))
    assert proj.built() == ["fleet"]
    assert runs(proj) == 1  # no cell ran
    page = proj.read("out/fleet.html")
    assert "Edited words." in page and "MARKDOWN-TEXT" not in page
    assert f"COMPANIES={n} FLEET={f:.0f}" in page  # the outputs of the run before
    assert page != before
    assert proj.built() == []

    # A comment in a code cell: the code is the same, only the page changes.
    proj.write("notebooks/fleet.py", NOTEBOOK.replace("MARKDOWN-TEXT", "Edited words.")
               .replace("import pandas as pd", "import pandas as pd  # tables"))
    assert proj.built() == ["fleet"] and runs(proj) == 1

    # The code changes: the cells run.
    proj.write("notebooks/fleet.py", NOTEBOOK + "\n# %%\nextra = 1\n")
    assert proj.built() == ["fleet"] and runs(proj) == 2
    # An input changes, the markdown too: the kept run is of other inputs, the cells run.
    fleet_project(proj, rows=2500)
    proj.write("notebooks/fleet.py", NOTEBOOK.replace("MARKDOWN-TEXT", "Again."))
    assert proj.built() == ["fleet"] and runs(proj) == 3


def test_a_failing_cell_fails_the_step_at_its_line(proj):
    fleet_project(proj, rows=50)
    proj.write("notebooks/fleet.py", NOTEBOOK + "\n# %%\nx = 1\nbig['no_such_column']\n")
    r = proj.run()
    assert r.code == 1, r.err
    line = (NOTEBOOK.lstrip("\n") + "\n# %%\nx = 1\n").count("\n") + 1
    assert f"notebooks/fleet.py:{line}: cell 3: the notebook of `fleet` failed" in r.err
    assert f'File "notebooks/fleet.py", line {line}' in r.err
    assert r.err.count("KeyError: 'no_such_column'") == 1
    doc = proj.build(code=1)
    assert doc["failed"][0]["error"] == \
        f"notebooks/fleet.py:{line}: cell 3: KeyError: 'no_such_column'"
    assert not proj.path("out/fleet.html").exists()


def test_without_the_notebook_extra_a_notebook_step_exits_2(proj):
    fleet_project(proj, rows=50)
    code = ("import sys; sys.modules['nbclient'] = None; "
            "from datamake.cli import main; main()")
    import subprocess

    r = subprocess.run([sys.executable, "-c", code, "fleet"], cwd=proj.root,
                       capture_output=True, text=True, env=clean_env())
    assert r.returncode == 2, r.stderr
    assert 'pip install "datamake[notebook]"' in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert "nbclient" not in sys.modules or sys.modules["nbclient"] is not None


def test_a_notebook_no_op_build_imports_no_notebook_tool(proj):
    fleet_project(proj, rows=50)
    assert proj.built() == ["fleet"]
    code = ("import sys; from datamake.cli import main\n"
            "try:\n    main(['fleet'])\nexcept SystemExit: pass\n"
            "print(sorted(m for m in ('nbclient', 'nbformat', 'nbconvert', 'jupytext', "
            "'ipykernel', 'datamake.notebook') if m in sys.modules))")
    import subprocess

    r = subprocess.run([sys.executable, "-c", code], cwd=proj.root, capture_output=True,
                       text=True, env=clean_env())
    assert r.stdout.strip().splitlines()[-1] == "[]", r.stderr


# ---------------------------------------------------------------- the language


def load(proj: Proj, text: str):
    proj.write("Datafile", text)
    return loader.load(proj.path("Datafile"), "Datafile")


def test_a_notebook_recipe_parses_into_the_model(proj):
    proj.write("nb/a.ipynb", json.dumps({"cells": [], "metadata": {}, "nbformat": 4,
                                         "nbformat_minor": 5}))
    df = load(proj, 'src:\n    1\n\npage: src\n    notebook "nb/a.ipynb"  # the page\n')
    recipe = df.rules[1].recipe
    assert recipe.kind == "notebook"
    assert recipe.notebook == str(proj.path("nb/a.ipynb").resolve())
    assert (recipe.notebook_span.line, recipe.notebook_span.col) == (5, 14)
    assert str(proj.path("nb/a.ipynb").resolve()) in df.sources


@pytest.mark.parametrize("body, message, col", [
    ('    notebook "nb/missing.py"\n', "no notebook at `nb/missing.py`", 14),
    ('    notebook "nb/a.txt"\n', "`nb/a.txt` is not a notebook", 14),
    ('    notebook "nb/a.py"\n    x = 1\n', "a notebook recipe is one line", 5),
    ('    notebook "nb/bad.ipynb"\n', "`nb/bad.ipynb` is not a notebook", 14),
])
def test_notebook_recipe_errors_point_at_the_datafile(proj, body, message, col):
    proj.write("nb/a.py", "# %%\nx = 1\n")
    proj.write("nb/bad.ipynb", "{not json")
    with pytest.raises(DatafileError) as e:
        load(proj, "page:\n" + body)
    d = e.value.diagnostics[0]
    assert message in d.message and d.span.col == col and d.help
    r = proj.run("--check")
    assert r.code == 2
    assert f"Datafile:{d.span.line}:{col}: error: {message}" in r.err
    assert "^" in r.err and "help:" in r.err


def test_a_notebook_rule_writes_one_html_page(proj):
    proj.write("nb/a.py", "# %%\nx = 1\n")
    with pytest.raises(DatafileError) as e:
        from datamake import graph
        graph.build(load(proj, 'dataset t = "t.csv"\n\na b: \n    notebook "nb/a.py"\n\n'
                               't: \n    notebook "nb/a.py"\n'))
    messages = [d.message for d in e.value.diagnostics]
    assert any("writes one output" in m for m in messages)
    assert any("`t` is stored as csv" in m for m in messages)


def test_watch_watches_the_notebook(proj):
    from datamake.project import Project
    from datamake.watch import watched

    fleet_project(proj, rows=50)
    project = Project(proj.path("Datafile"))
    assert str(proj.path("notebooks/fleet.py").resolve()) in watched(project).files
