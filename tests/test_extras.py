"""A missing optional dependency: one line naming the extra to install, exit 2."""
from __future__ import annotations

import os
import sys

import pytest
from conftest import REPO, clean_env

from datamake.extras import MissingExtraError, require

HIDE = """\
import os, sys
HIDDEN = tuple(os.environ["DATAMAKE_TEST_HIDE"].split(","))
class Hide:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in HIDDEN:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, Hide())
"""

DATAFILE = """
dataset remote = "s3://bucket/remote.txt"
dataset table  = "table.csv"
dataset pq     = "table.parquet"
dataset sheet  = "table.xlsx"
dataset plain  = "plain.txt"

plain:
    "text"
remote:
    "text"
table:
    {"x": [1, 2]}
pq:
    {"x": [1, 2]}
sheet:
    {"x": [1, 2]}
"""


def hidden(tmp_path, *modules: str) -> dict[str, str]:
    """An environment in which `modules` cannot be imported (as if not installed)."""
    shim = tmp_path / "shim"
    shim.mkdir(exist_ok=True)
    (shim / "sitecustomize.py").write_text(HIDE)
    return clean_env(PYTHONPATH=os.pathsep.join([str(shim), str(REPO)]),
                     DATAMAKE_TEST_HIDE=",".join(modules))


CASES = [
    (("s3fs",), ["remote"], 'an `s3://` location needs s3fs: pip install "datamake[s3]"'),
    (("pandas",), ["table"], 'the csv format needs pandas: pip install "datamake[data]"'),
    (("pyarrow",), ["pq"], 'the parquet format needs pyarrow: pip install "datamake[data]"'),
    (("openpyxl",), ["sheet"], 'the excel format needs openpyxl: pip install "datamake[data]"'),
    (("pandas",), ["table", "plain", "-j", "2"],
     'the csv format needs pandas: pip install "datamake[data]"'),
    (("distributed",), ["plain", "--executor", "dask"],
     '--executor dask needs dask.distributed: pip install "datamake[dask]"'),
    (("watchdog",), ["plain", "--watch"], '--watch needs watchdog: pip install "datamake[watch]"'),
    (("uvicorn",), ["--ui"], '--ui needs the page\'s web server: pip install "datamake[ui]"'),
    (("starlette",), ["--ui"], '--ui needs the page\'s web server: pip install "datamake[ui]"'),
]


@pytest.mark.parametrize("modules, args, message", CASES,
                         ids=[" ".join(c[1]) for c in CASES])
def test_a_missing_extra_is_one_line_and_exit_2(proj, tmp_path, modules, args, message):
    proj.write("Datafile", DATAFILE)
    r = proj.run(*args, env=hidden(tmp_path, *modules))
    errors = [ln for ln in r.err.splitlines() if "error" in ln or "Traceback" in ln]
    assert (r.code, errors) == (2, [f"datamake: error: {message}"]), r.err
    assert "Traceback" not in r.out + r.err


def test_the_rest_of_the_pipeline_needs_no_extra(proj, tmp_path):
    proj.write("Datafile", DATAFILE)
    r = proj.run("plain", env=hidden(tmp_path, "pandas", "s3fs", "pyarrow", "openpyxl",
                                     "distributed", "starlette", "uvicorn"))
    assert r.code == 0, r.err
    assert proj.read("plain.txt") == "text"


def test_require_in_process(monkeypatch):
    assert require("json", "json").dumps(1) == "1"
    monkeypatch.setitem(sys.modules, "s3fs", None)  # as if not installed
    with pytest.raises(MissingExtraError) as e:
        require("s3fs", "an `s3://` location")
    assert (str(e.value), e.value.exit_code) == (
        'an `s3://` location needs s3fs: pip install "datamake[s3]"', 2)


def test_watchdog_is_a_core_dependency():
    # `--watch` is one of the three ways datamake is used: `pip install datamake` brings it.
    text = (REPO / "pyproject.toml").read_text()
    core = text.split("dependencies = [", 1)[1].split("]", 1)[0]
    assert '"watchdog>=3"' in core
