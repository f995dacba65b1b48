"""Imports go one way (text -> model -> graph -> catalog -> plan -> execute -> record):
the lower layers load none of the tools of the layers above them."""
from __future__ import annotations

import subprocess
import sys

import pytest

CHECKS = {
    "datamake.planner": ("click", "watchdog", "lark", "rich", "fsspec", "pandas"),
    "datamake.executor": ("click", "watchdog", "lark", "rich", "fsspec", "pandas"),
    "datamake.catalog": ("click", "lark", "rich", "sqlite3", "fsspec", "pandas"),
    "datamake.graph": ("click", "lark", "sqlite3", "fsspec"),
    "datamake.parser": ("click", "sqlite3", "fsspec", "rich"),
    "datamake.cli": ("lark", "pandas", "fsspec", "rich", "matplotlib"),
}


@pytest.mark.parametrize("module", list(CHECKS))
def test_module_does_not_load_higher_layers(module):
    forbidden = CHECKS[module]
    code = (f"import sys, {module}; "
            f"print([m for m in {forbidden!r} if m in sys.modules])")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


def test_a_noop_build_does_not_parse_or_load_heavy_libraries(proj):
    proj.write("Datafile", """
        dataset src = "src.txt"
        out: src
            src.upper()
    """)
    proj.write("src.txt", "x")
    assert proj.built() == ["out"]
    proj.built()  # hashes the output if it was too young to trust its stamp
    code = ("import sys; sys.argv = ['datamake', '--json']\n"
            "from datamake.cli import main\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "print([m for m in ('lark', 'pandas', 'fsspec', 'rich', 'datamake.model',"
            " 'datamake.parser', 'datamake.fingerprint', 'datamake.ui', 'blake3', 'hashlib')"
            " if m in sys.modules],"
            " file=sys.stderr)")
    r = subprocess.run([sys.executable, "-c", code], cwd=proj.root, capture_output=True, text=True)
    assert r.stderr.strip().splitlines()[-1] == "[]"
