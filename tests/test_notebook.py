"""Notebook recipes: run in a fresh kernel with values injected, rendered to one page;
errors located in the notebook; timeouts; fingerprints; re-rendering."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from browser import chromium
from conftest import REPO
from pages import external_refs, open_offline

from datamake import notebook as nbmod
from datamake import notebook_cells as nbcells
from datamake.notebook import (NotebookCellError, NotebookChangedError, NotebookError,
                               NotebookTimeoutError, fingerprints,
                               rerender, run_notebook)
from datamake.extras import MissingExtraError
from datamake.report import BuildContext
from datamake.versions import metrics_of

EVALUATE = REPO / "examples" / "spaceflights" / "notebooks" / "evaluate.py"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def spaceflights_inputs(test_size: float) -> dict:
    """The regressor and test set, built from the example's raw tables by its nodes."""
    import pandas as pd
    import yaml

    sys.path.insert(0, str(REPO))
    try:
        from examples.spaceflights import nodes
    finally:
        sys.path.remove(str(REPO))
    raw = REPO / "examples" / "spaceflights" / "data" / "01_raw"
    params = yaml.safe_load((REPO / "examples" / "spaceflights" / "params.yaml").read_text())
    table = nodes.create_model_input_table(
        nodes.preprocess_shuttles(pd.read_excel(raw / "shuttles.xlsx")),
        nodes.preprocess_companies(pd.read_csv(raw / "companies.csv")),
        pd.read_csv(raw / "reviews.csv"))
    X_train, X_test, y_train, y_test = nodes.split_data(table, params["features"], test_size,
                                                        params["random_state"])
    regressor = nodes.train_model(X_train, y_train)
    expected = nodes.evaluate_model(regressor, X_test, y_test)
    return {"regressor": regressor, "X_test": X_test, "y_test": y_test, "expected": expected}


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    """The example notebook run twice on real data, the second time with another split."""
    out = {}
    for size in (0.2, 0.3):
        inputs = spaceflights_inputs(size)
        expected = inputs.pop("expected")
        ctx = BuildContext("evaluation", __import__("datetime").datetime.now().astimezone(),
                           {"test_size": size})
        result = run_notebook(EVALUATE, inputs, cwd=REPO, context=ctx,
                              shown_path="examples/spaceflights/notebooks/evaluate.py")
        page = tmp_path_factory.mktemp("pages") / f"evaluate-{size}.html"
        page.write_text(result.html)
        out[size] = (result, expected, page)
    return out


def test_the_example_notebook_runs_on_real_data(evaluated):
    for size, (result, expected, page) in evaluated.items():
        assert result.values["metrics"] == pytest.approx(expected)
        assert metrics_of(result.html.encode(), "html") == pytest.approx(expected)
        assert external_refs(result.html) == []
        assert "# X_test: DataFrame " in result.html  # what was injected, not how
        assert "values.pickle" not in result.html and "datamake-nb-" not in result.html
    small, big = evaluated[0.2][1], evaluated[0.3][1]
    assert big["test_rows"] > small["test_rows"] and big["r2"] != small["r2"]


def test_the_page_shows_the_numbers_draws_the_figure_and_folds_the_code(evaluated):
    with chromium() as browser:
        seen = {}
        for size, (result, expected, page) in evaluated.items():
            assert open_offline(browser, page) == []
            seen[size] = browser.execute_script("""
                const text = document.body.innerText;
                const imgs = [...document.querySelectorAll('.output_area img')];
                const code = document.querySelector('details.dm-code:not(.dm-injected)');
                const area = code.querySelector('.input_area');
                const shownBefore = area.checkVisibility();
                code.querySelector('summary').click();
                const shownAfter = area.checkVisibility();
                document.getElementById('dm-fold-all').click();
                const allOpen = [...document.querySelectorAll('details.dm-code')].every(d => d.open);
                document.getElementById('dm-fold-all').click();
                const allShut = [...document.querySelectorAll('details.dm-code')].every(d => !d.open);
                return {text, widths: imgs.map(i => i.complete ? i.naturalWidth : 0),
                        shownBefore, shownAfter, allOpen, allShut, title: document.title,
                        header: document.querySelector('.dm-build').innerText};
            """)
    for size, (result, expected, page) in evaluated.items():
        s = seen[size]
        assert s["title"] == "Spaceflights: how good is the price model?"
        assert f"{expected['r2']:.6f}" in s["text"]  # the metrics table, as pandas shows it
        assert f"{expected['test_rows']}.000000" in s["text"]
        assert len(s["widths"]) == 1 and s["widths"][0] > 500  # the figure, embedded
        assert (s["shownBefore"], s["shownAfter"], s["allOpen"], s["allShut"]) == (
            False, True, True, True)
        assert "target evaluation" in s["header"]
    assert f"{evaluated[0.3][1]['r2']:.6f}" not in seen[0.2]["text"]  # each its own numbers


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A project folder with a helper module and a notebook in a subfolder; the
    temporary folder of the run is a folder of the test's, to see what is left in it."""
    import tempfile

    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    root = tmp_path / "proj"
    write(root / "helpers.py", "def double(x):\n    return 2 * x\n")
    return root


def test_values_imports_charts_and_nothing_left_behind(project, tmp_path):
    nb = write(project / "notebooks" / "nb.py", """
        # %% [markdown]
        # # Doubling

        # %%
        import os
        import altair as alt
        import pandas as pd
        from helpers import double

        # %%
        metrics = {"doubled": double(k), "cwd_is_project": float(os.getcwd() == ROOT)}
        print("k is", k, "and name is", name)
        open(PID, "w").write(str(os.getpid()))

        # %%
        alt.Chart(pd.DataFrame({"x": [1, 2, 3], "y": [3, 1, 2]})).mark_bar().encode(x="x:O", y="y")
    """)
    before = sorted(p.relative_to(project) for p in project.rglob("*"))
    pid = tmp_path / "pid"
    result = run_notebook(nb, {"k": 21, "name": "<b>bold</b>", "ROOT": str(project),
                               "PID": str(pid)}, cwd=project)
    with pytest.raises(ProcessLookupError):  # the kernel is stopped once done
        os.kill(int(pid.read_text()), 0)
    assert result.values == {"metrics": {"doubled": 42, "cwd_is_project": 1.0}}
    assert "k is 21 and name is &lt;b&gt;bold&lt;/b&gt;" in result.html
    assert sorted(p.relative_to(project) for p in project.rglob("*")) == before
    assert list((tmp_path / "tmp").iterdir()) == []
    page = tmp_path / "nb.html"
    page.write_text(result.html)
    assert external_refs(result.html) == []
    with chromium() as browser:
        assert open_offline(browser, page) == []
        browser.set_script_timeout(30)
        bars = browser.execute_async_script("""
            const done = arguments[arguments.length - 1];
            const wait = () => {
              const svg = document.querySelector('figure.chart svg.marks');
              if (!svg) return setTimeout(wait, 50);
              done(svg.querySelectorAll('g.mark-rect path').length);
            };
            wait();
        """)
    assert bars == 3  # Altair's output, drawn offline by the vendored Vega


def test_a_failing_cell_names_its_line_in_a_py_notebook(project, tmp_path):
    nb = write(project / "fail.py", """
        # %% [markdown]
        # # Failing

        # %%
        def helper(v):
            return 1 / v

        # %% [markdown]
        # text

        # %%
        # a comment
        y = k + 1
        helper(k - 1)
    """)
    with pytest.raises(NotebookCellError) as e:
        run_notebook(nb, {"k": 1}, cwd=project, shown_path="fail.py")
    err = e.value
    assert str(err) == "fail.py:14: cell 4: ZeroDivisionError: division by zero"
    assert (err.path, err.cell, err.line, err.line_in_file) == ("fail.py", 4, 14, True)
    assert err.traceback == textwrap.dedent("""\
        Traceback (most recent call last):
          File "fail.py", line 14, in <module>
            helper(k - 1)
          File "fail.py", line 6, in helper
            return 1 / v
        ZeroDivisionError: division by zero""")
    assert list((tmp_path / "tmp").iterdir()) == []


def test_a_failing_cell_names_its_cell_and_line_in_an_ipynb(project):
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# Failing"),
                nbformat.v4.new_code_cell("x = 1\nraise ValueError(f'bad {x}')"),
                nbformat.v4.new_code_cell("never = 1")]
    path = project / "fail.ipynb"
    nbformat.write(nb, str(path))
    with pytest.raises(NotebookCellError) as e:
        run_notebook(path, {}, cwd=project, shown_path="fail.ipynb")
    assert str(e.value) == "fail.ipynb: cell 2, line 2: ValueError: bad 1"
    assert e.value.traceback.splitlines()[1:] == [
        '  File "fail.ipynb", cell 2, line 2, in <module>',
        "    raise ValueError(f'bad {x}')", "ValueError: bad 1"]


def test_a_cell_that_never_ends_is_a_clear_error_and_its_kernel_is_stopped(project, tmp_path):
    pid_file = tmp_path / "pid"
    nb = write(project / "slow.py", f"""
        # %%
        import os, time
        open({str(pid_file)!r}, "w").write(str(os.getpid()))

        # %%
        while True:
            time.sleep(0.05)
    """)
    # Run in a daemon thread: were the timeout broken, the test fails instead of hanging.
    outcome: list = []

    def run() -> None:
        try:
            run_notebook(nb, {}, cwd=project, cell_timeout=2, shown_path="slow.py")
        except Exception as exc:
            outcome.append(exc)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(timeout=300)  # a hang guard only
    assert not worker.is_alive(), "run_notebook did not stop the cell"
    e = pytest.ExceptionInfo.from_exc_info((type(outcome[0]), outcome[0], None))
    assert isinstance(e.value, NotebookTimeoutError)
    assert str(e.value) == "slow.py:6: cell 2: the cell ran longer than 2 s and was stopped"
    assert "cell timeout" in e.value.help
    with pytest.raises(ProcessLookupError):
        os.kill(int(pid_file.read_text()), 0)
    assert list((tmp_path / "tmp").iterdir()) == []


def test_values_that_cannot_cross_to_the_kernel_are_named(project):
    nb = write(project / "nb.py", "# %%\nx = 1\n")
    with pytest.raises(NotebookError, match="`f` cannot be passed to the notebook `nb.py`"):
        run_notebook(nb, {"f": lambda: 1}, cwd=project, shown_path="nb.py")
    with pytest.raises(NotebookError, match="`not a name` cannot be a variable"):
        run_notebook(nb, {"not a name": 1}, cwd=project)
    # Pickled here, but its class cannot be found in the kernel's process.
    import types

    module = types.ModuleType("dm_only_here")
    exec("class Thing:\n    pass\n", module.__dict__)
    sys.modules["dm_only_here"] = module
    try:
        with pytest.raises(NotebookError, match="could not be loaded in its kernel: "
                                                "ModuleNotFoundError") as e:
            run_notebook(nb, {"thing": module.Thing()}, cwd=project, shown_path="nb.py")
    finally:
        del sys.modules["dm_only_here"]
    assert "define it in a module" in e.value.help


def test_without_the_extra_a_clear_error(project, monkeypatch):
    monkeypatch.setitem(sys.modules, "nbclient", None)  # as if not installed
    nb = write(project / "nb.py", "# %%\nx = 1\n")
    with pytest.raises(MissingExtraError) as e:
        run_notebook(nb, {}, cwd=project)
    assert str(e.value) == 'a notebook recipe needs nbclient: pip install "datamake[notebook]"'
    assert e.value.exit_code == 2


# ---------------------------------------------------------------- fingerprints

BASE = """
# ---
# jupyter:
#   jupytext:
#     text_representation:
#       format_name: percent
# ---

# %% [markdown]
# # Title
# Some text

# %%
import math
x = 1  # one
# %matplotlib inline

# %% tags=["a"]
def f(y):
    return 1 / y

# %% [markdown]
# more

# %%
s = '''
# %% not a cell
'''
f(2)
"""


def fp(tmp_path: Path, text: str, name: str = "nb.py"):
    path = tmp_path / name
    path.write_text(text)
    return fingerprints(path)


def test_code_edits_change_the_code_fingerprint_and_nothing_else_does(tmp_path):
    base = fp(tmp_path, BASE)
    code_edit = fp(tmp_path, BASE.replace("f(2)", "f(3)"))
    magic_edit = fp(tmp_path, BASE.replace("%matplotlib inline", "%matplotlib widget"))
    string_edit = fp(tmp_path, BASE.replace("# %% not a cell", "# %% not a cell!"))
    markdown_edit = fp(tmp_path, BASE.replace("Some text", "Other words"))
    comment_edit = fp(tmp_path, BASE.replace("x = 1  # one", "x = (1)   # uno"))
    header_edit = fp(tmp_path, BASE.replace("format_name: percent", "format_name: percent\n#   x: 1"))
    blank_cell = fp(tmp_path, BASE.replace("# %% [markdown]\n# more", "# %%\n# nothing\n\n# %% [markdown]\n# more"))
    for changed in (code_edit, magic_edit, string_edit):
        assert changed.code != base.code and changed.page != base.page
    for same_code in (markdown_edit, comment_edit, blank_cell):
        assert same_code.code == base.code and same_code.page != base.page
    assert header_edit.code == base.code


def test_an_ipynb_fingerprint_ignores_outputs_and_metadata(tmp_path):
    import jupytext
    import nbformat

    nb = jupytext.reads(BASE, fmt="py:percent")
    base = fp(tmp_path, nbformat.writes(nb), "nb.ipynb")
    ran = nbformat.reads(nbformat.writes(nb), as_version=4)
    for i, cell in enumerate(ran.cells):
        if cell.cell_type == "code":
            cell.execution_count = i + 7
            cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=f"out {i}")]
            cell.metadata["collapsed"] = True
    ran.metadata["kernelspec"] = {"name": "other", "display_name": "Other"}
    assert fp(tmp_path, nbformat.writes(ran), "nb.ipynb") == base
    # The same code as the .py has the same code fingerprint, whichever the format.
    assert base.code == fp(tmp_path, BASE).code
    ran.cells[2].source = ran.cells[2].source.replace("x = 1", "x = 2")
    assert fp(tmp_path, nbformat.writes(ran), "nb.ipynb").code != base.code


def test_the_cell_split_agrees_with_jupytext(tmp_path):
    import jupytext

    cases = [BASE, "x=0\n# %%\nx=1\n", "#%%\nx=1\n# %% Title here\ny=2\n# %% [raw]\n# raw\n",
             '# %% [markdown]\n"""\nhello\n"""\n# %%\nx=1', EVALUATE.read_text()]
    for text in cases:
        ours = [(k, s) for k, s in nbcells._percent_cells(text)]
        theirs = jupytext.reads(text, fmt="py:percent").cells
        assert [k for k, _ in ours] == [c.cell_type for c in theirs], text
        for (kind, src), cell in zip(ours, theirs):
            if kind == "code":
                assert nbcells._code_fingerprint(src) == nbcells._code_fingerprint(cell.source)


def test_fingerprints_need_no_notebook_library(tmp_path):
    path = tmp_path / "nb.py"
    path.write_text(BASE)
    code = ("import sys, datamake.notebook as n; n.fingerprints(sys.argv[1]); "
            "print([m for m in ('nbclient', 'nbformat', 'nbconvert', 'jupytext', 'IPython', "
            "'jupyter_client') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True,
                         text=True, check=True).stdout
    assert out.strip() == "[]"


def test_a_broken_ipynb_is_a_located_error(tmp_path):
    path = tmp_path / "nb.ipynb"
    path.write_text('{\n  "cells": [\n    {"cell_type": "code",,}\n  ]\n}\n')
    with pytest.raises(nbmod.NotebookFormatError) as e:
        fingerprints(path)
    assert e.value.line == 3 and "is not a notebook" in str(e.value)


# ---------------------------------------------------------------- re-rendering

def test_a_markdown_only_edit_is_rendered_without_running(project, monkeypatch):
    nb = write(project / "nb.py", """
        # %% [markdown]
        # # Before
        # The first words.

        # %%
        import random
        metrics = {"draw": random.random()}
        print("drew", metrics["draw"])
    """)
    first = run_notebook(nb, {"k": 1}, cwd=project)
    draw = first.values["metrics"]["draw"]
    nb.write_text(nb.read_text().replace("The first words.", "Other words.")
                  .replace("import random", "import random  # a comment"))

    def no_kernel(*args, **kwargs):
        raise AssertionError("rerender started a kernel")

    monkeypatch.setattr(nbmod, "_execute", no_kernel)
    page = rerender(nb, first.executed)
    assert "Other words." in page and "The first words." not in page
    assert f"drew {draw}" in page and "# a comment" in page
    assert metrics_of(page.encode(), "html") == {"draw": draw}
    assert "# k: int = 1" in page
    nb.write_text(nb.read_text().replace("random.random()", "random.random() + 1"))
    with pytest.raises(NotebookChangedError):
        rerender(nb, first.executed)
