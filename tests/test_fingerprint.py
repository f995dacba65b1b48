"""Recipe fingerprints: blind to comments, docstrings and formatting; precise to the
definition, so a change to one helper reaches only the recipes that use it."""
from __future__ import annotations

import textwrap

from datamake import graph
from datamake.fingerprint import code_fingerprints
from datamake.parser import parse_text

DATAFILE = """
    python:
        import json
        from pkg.helpers import clean
        import pkg.stats as st
        LIMIT = 10

        def local_helper(x):
            return clean(x)[:LIMIT]

    a: x
        local_helper(x)
    b: x
        st.mean(x)
    c: x
        from pkg.helpers import unused_by_others
        unused_by_others(x)
    d: x
        json.dumps(x)
"""

HELPERS = '''
"""Helpers."""
from .stats import mean


def clean(x):
    """Drop None."""
    return [v for v in x if v is not None]


def unused_by_others(x):
    return mean(x)
'''

STATS = '''
def mean(x):
    return sum(x) / len(x)


def median(x):
    return sorted(x)[len(x) // 2]
'''


def fps(root, datafile=DATAFILE, helpers=HELPERS, stats=STATS):
    (root / "pkg").mkdir(exist_ok=True)
    (root / "pkg" / "__init__.py").write_text("")
    (root / "pkg" / "helpers.py").write_text(helpers)
    (root / "pkg" / "stats.py").write_text(stats)
    text = textwrap.dedent(datafile).lstrip("\n") + "x:\n    [1, None, 2]\n"
    df = parse_text(text, "Datafile", root)
    g, _ = graph.build(df)
    found = code_fingerprints(g, df, root)
    return found.fps, found.deps, found


def changed(before, after):
    return sorted(k for k in before if before[k] != after[k])


def test_formatting_comments_and_docstrings_do_not_count(tmp_path):
    base, deps, index = fps(tmp_path)
    assert "pkg.helpers.clean" in deps["a"] and "python:LIMIT" in deps["a"]
    assert str(tmp_path / "pkg" / "helpers.py") in index.files
    fmt = DATAFILE.replace("local_helper(x)\n    b", "local_helper( x )  # tidy\n    b")
    helpers = HELPERS.replace('"""Drop None."""', '"""Drop every None."""\n    # hm')
    helpers = helpers.replace("[v for v in x if v is not None]", "[v for v in x\n            if v is not None]")
    same, _, _ = fps(tmp_path, fmt, helpers)
    assert changed(base, same) == []


def test_a_helper_change_reaches_only_its_users(tmp_path):
    base, _, _ = fps(tmp_path)
    after, _, _ = fps(tmp_path, helpers=HELPERS.replace("is not None", "is not None and v"))
    assert changed(base, after) == ["a"]
    after, _, _ = fps(tmp_path, stats=STATS.replace("// 2", "// 3"))
    assert changed(base, after) == []  # nobody uses median
    after, _, _ = fps(tmp_path, stats=STATS.replace("sum(x) / len(x)", "sum(x) / max(1, len(x))"))
    assert changed(base, after) == ["b", "c"]  # c reaches mean through unused_by_others
    after, _, _ = fps(tmp_path, DATAFILE.replace("LIMIT = 10", "LIMIT = 20"))
    assert changed(base, after) == ["a"]
    after, _, _ = fps(tmp_path, DATAFILE.replace("import json", "import json as json"))
    assert changed(base, after) == ["d"]
