"""Bad input gets `FILE:LINE:COL: error: ...`, the source line, a caret and a hint:
the whole rendered message is compared, and the exit code is 2."""
from __future__ import annotations

import sys
import textwrap

import pytest

CASES = {
    "syntax error": (
        """
        dataset raw = "raw.csv"
        clean raw
            raw
        """,
        """
        Datafile:2:10: error: expected `:` after the outputs of a rule, found the end of the line
          |
        2 | clean raw
          |          ^
        help: a rule is written `OUTPUTS: INPUTS`, e.g. `model_input: companies shuttles`
        """),
    "tab in indentation": (
        'dataset raw = "raw.csv"\nclean: raw\n\traw.dropna()\n',
        """
        Datafile:3:1: error: tab in indentation
          |
        3 |  raw.dropna()
          | ^
        help: indent with spaces: recipes are Python, and Python blocks in a Datafile are indented with spaces (not tabs as in Make)
        """),
    "unknown name": (
        """
        dataset clean_shuttles = "clean.csv"
        model_input: clean_shutles
            clean_shutles
        """,
        """
        Datafile:2:14: error: unknown name `clean_shutles`
          |
        2 | model_input: clean_shutles
          |              ^^^^^^^^^^^^^
        help: did you mean `clean_shuttles`?
        """),
    "cycle": (
        """
        a: c
            c + 1
        b: a
            a + 1
        c: b
            b + 1
        """,
        """
        Datafile:3:4: error: cycle: `a` -> `c` -> `b` -> `a`
          |
        3 | b: a
          |    ^
        help: a rule cannot depend, directly or not, on its own output; break the loop
        """),
    "two rules for one output": (
        """
        param n = 1
        total: n
            n + 1

        total: n
            n + 2
        """,
        """
        Datafile:5:1: error: two rules write `total`
          |
        5 | total: n
          | ^^^^^
        note: `total` is also written by the rule at Datafile:2:1
        help: each output has exactly one rule; rename one of them
        """),
    "undeclared name in a recipe": (
        """
        param test_size = 0.2
        dataset raw = "raw.csv"
        split: raw
            raw.sample(frac=test_size)
        """,
        """
        Datafile:4:21: error: the recipe of `split` uses `test_size`, which is not one of its inputs
          |
        4 |     raw.sample(frac=test_size)
          |                     ^^^^^^^^^
        help: add `test_size` to the inputs: `split: raw test_size`
        """),
    "python syntax error in a recipe": (
        """
        dataset raw = "raw.csv"
        clean: raw
            rows = [r for r in raw
            len(rows)
        """,
        """
        Datafile:3:12: error: Python syntax error in the recipe of `clean`: '[' was never closed
          |
        3 |     rows = [r for r in raw
          |            ^
        """),
    "parameter that is not a literal": (
        "param when = datetime.now()\n",
        """
        Datafile:1:14: error: the value of parameter `when` is not a Python literal
          |
        1 | param when = datetime.now()
          |              ^^^^^^^^^^^^^^
        help: use numbers, strings, lists, dicts, tuples, booleans or None; compute anything else in a rule
        """),
    "unquoted location": (
        "dataset raw = data/raw.csv\n",
        """
        Datafile:1:15: error: expected a quoted location, found `data/raw.csv`
          |
        1 | dataset raw = data/raw.csv
          |               ^^^^^^^^^^^^
        help: put it in quotes: `"data/raw.csv"`
        """),
    "a name a recipe reads that is defined nowhere": (
        # `--check` passed it; the build then failed with a NameError.
        """
        all: x
        x:
            y + 1
        """,
        """
        Datafile:3:5: error: the recipe of `x` uses `y`, which is defined nowhere
          |
        3 |     y + 1
          |     ^
        help: list it as an input of `x`, define or import it in a `python:` block, or import it in the recipe
        """),
    "a misspelt helper from the python block": (
        """
        python:
            def clean_rows(rows):
                return rows
        dataset raw = "raw.csv"
        clean: raw
            clean_row(raw)
        """,
        """
        Datafile:6:5: error: the recipe of `clean` uses `clean_row`, which is defined nowhere
          |
        6 |     clean_row(raw)
          |     ^^^^^^^^^
        help: did you mean `clean_rows`?
        """),
    "a recipe reading an alias": (
        """
        x:
            everything
        everything: x
        """,
        """
        Datafile:2:5: error: the recipe of `x` uses `everything`, a rule without a recipe, which has no value
          |
        2 |     everything
          |     ^^^^^^^^^^
        help: list the names `everything` stands for as inputs of `x`
        """),
    "continuation line of a parameter not indented": (
        "param features = [\n\"a\",\n]\n",
        """
        Datafile:1:18: error: `[` is never closed in the value of parameter `features`
          |
        1 | param features = [
          |                  ^
        help: indent the continuation lines of a value that spans lines
        """),
}


@pytest.mark.parametrize("case", list(CASES))
def test_rendered_error(proj, case):
    datafile, expected = CASES[case]
    proj.write("Datafile", datafile)
    r = proj.run()
    assert r.code == 2
    assert r.out == ""
    assert r.err == textwrap.dedent(expected).lstrip("\n")
    # --check reports the same, without running anything.
    r2 = proj.run("--check")
    assert (r2.code, r2.err) == (2, r.err)


def test_several_errors_are_all_reported(proj):
    proj.write("Datafile", """
        a: nope
            nope
        b: nada
            nada
    """)
    r = proj.run()
    assert r.code == 2
    assert r.err.count(": error: unknown name") == 2
    assert r.err.endswith("datamake: 2 errors\n")


def test_recipe_errors_are_told_in_file_order_at_their_own_lines(proj):
    # Recipes are compiled together after the rest is read; an error in one sends each
    # through alone, so every recipe's error is told, in file order among the others,
    # with the Datafile's lines (also inside Python's own message), and errors found
    # only when compiling (not when parsing) are told the same way.
    proj.write("Datafile", """
        dataset a = "out/a.json"
        a:
            x = (1,
                 2]
            x
        param when = now()
        c: a
            nonlocal y
            a
    """)
    r = proj.run("--check")
    assert r.code == 2
    assert r.err == textwrap.dedent("""\
        Datafile:4:11: error: Python syntax error in the recipe of `a`: closing parenthesis ']' does not match opening parenthesis '(' on line 3
          |
        4 |          2]
          |           ^
        Datafile:6:14: error: the value of parameter `when` is not a Python literal
          |
        6 | param when = now()
          |              ^^^^^
        help: use numbers, strings, lists, dicts, tuples, booleans or None; compute anything else in a rule
        Datafile:8:5: error: Python syntax error in the recipe of `c`: no binding for nonlocal 'y' found
          |
        8 |     nonlocal y
          |     ^^^^^^^^^^
        datamake: 3 errors
        """)


def test_command_line_errors_exit_2(proj):
    proj.write("Datafile", "param size = 1\nout: size\n    size\n")
    r = proj.run("nothing")
    assert (r.code, r.err) == (2, "datamake: error: no rule or dataset named `nothing`\n"
                                  "help: `datamake --list` shows the targets\n")
    r = proj.run("sizes=2")
    assert (r.code, r.err) == (2, "datamake: error: unknown parameter `sizes`\n"
                                  "help: did you mean `size`?\n")
    r = proj.run("--bogus")
    assert r.code == 2 and "No such option '--bogus'" in r.err
    r = proj.run("-f", "Missing")
    assert (r.code, r.err) == (2, "datamake: error: no Datafile at `Missing`\n"
                                  "help: create one, or name it with `-f FILE`\n")


def test_warnings_for_unused_inputs_and_datasets(proj):
    proj.write("Datafile", """
        param n = 1
        dataset orphan = "orphan.csv"
        out: n
            2
    """)
    r = proj.run("--check")
    assert r.code == 0
    assert r.err == textwrap.dedent("""
        Datafile:2:9: warning: dataset `orphan` is neither read nor written by any rule
          |
        2 | dataset orphan = "orphan.csv"
          |         ^^^^^^
        help: remove it, or use it as a rule's input or output
        Datafile:3:6: warning: the recipe of `out` never uses its input `n`
          |
        3 | out: n
          |      ^
        help: remove it from the inputs, or use it in the recipe
        datamake: Datafile: no errors, 2 warnings
    """).lstrip("\n")
    # Builds show them too (from the cache: the Datafile is not parsed again).
    assert r.err.split("datamake: Datafile")[0] in proj.run().err
    assert r.err.split("datamake: Datafile")[0] in proj.run().err
    assert proj.run("--quiet").err == ""


def test_unknown_format_is_a_static_error(proj):
    proj.write("Datafile", 'dataset raw = "raw.dat" as parqet\nout: raw\n    raw\n')
    r = proj.run("--check")
    assert r.code == 2
    assert r.err.startswith(textwrap.dedent("""\
        Datafile:1:28: error: unknown format `parqet`
          |
        1 | dataset raw = "raw.dat" as parqet
          |                            ^^^^^^
        help: did you mean `parquet`?
    """))


def test_tracebacks_from_nested_code_point_at_datafile_lines(proj):
    # Recipes are compiled with their `def` on line 1 and moved to their rule's line
    # afterwards: code nested in them (comprehensions, lambdas, inner functions) must
    # move too.
    proj.write("Datafile", textwrap.dedent("""\
        dataset a = "out/a.json"
        dataset b = "out/b.json"

        b: a
            def inner(x):
                return 1 / x
            f = lambda x: inner(x)
            [f(x) for x in a]

        a:
            [1, 0]
        """))
    r = proj.run("b")
    assert r.code == 1
    assert 'File "Datafile", line 8, in b' in r.err
    if sys.version_info < (3, 12):  # since 3.12 comprehensions run in their function
        assert 'File "Datafile", line 8, in <listcomp>' in r.err
    assert 'File "Datafile", line 7, in <lambda>' in r.err
    assert 'File "Datafile", line 6, in inner' in r.err
    assert "ZeroDivisionError" in r.err


def test_python_warnings_about_a_recipe_point_at_its_datafile_line(proj):
    proj.write("Datafile", textwrap.dedent("""\
        dataset a = "out/a.json"


        a:
            x = 1
            if x is 1:
                pass
            x
        """))
    r = proj.run()
    assert r.code == 0
    assert 'Datafile:6: SyntaxWarning: "is" with a literal' in r.err


def test_names_a_recipe_may_read_without_listing_them(proj):
    # Builtins, the module's own names, what the `python:` block defines anywhere at its
    # top level (or declares `global`), what the recipe imports or binds itself; and
    # nothing is known of a block that star-imports.
    proj.write("Datafile", """
        python:
            import json as j
            try:
                from math import sqrt
            except ImportError:
                sqrt = None
            for base in (10,):
                pass
            def set_scale():
                global scale
                scale = 2
            set_scale()
        out:
            import os
            total = sum(len(p) for p in [__name__, os.sep])
            j.dumps([sqrt(4) * scale * base, total, [k for k in range(2)]])
    """)
    r = proj.run("--check")
    assert (r.code, r.err) == (0, "datamake: Datafile: no errors\n")
    assert proj.run().code == 0
    proj.write("Datafile", """
        python:
            from math import *
        out:
            sqrt(4)
    """)
    assert proj.run("--check").code == 0


def test_an_included_recipe_reading_a_name_it_does_not_list(proj):
    # It was a KeyError: the check looked the included file's own name up unprefixed.
    proj.write("Datafile", 'include "sub/Datafile" as sub\nall: sub.b\n')
    proj.write("sub/Datafile", 'dataset a = "a.txt"\nb:\n    a\n')
    r = proj.run("--check")
    assert (r.code, r.err) == (2, textwrap.dedent("""\
        sub/Datafile:3:5: error: the recipe of `sub.b` uses `a`, which is not one of its inputs
          |
        3 |     a
          |     ^
        help: add `a` to the inputs: `b: a`
        """))


def test_a_dry_run_that_would_fail_says_so_not_up_to_date(proj):
    # `-n` exits 1 when a step cannot be judged (a missing source): it said "up to date".
    proj.write("Datafile", """
        dataset raw = "raw.csv"
        all: first clean
        first:
            1
        clean: raw
            raw
    """)
    r = proj.run("-n")
    assert r.code == 1
    assert r.out == "first  (no-record)\ndatamake: 1 of 2 steps would run\n"
    assert r.err == ("FAILED clean  0.00s\n"
                     "datamake: error: input `raw` does not exist at `raw.csv`\n"
                     "help: no rule writes it: create the file, or fix the location\n"
                     "datamake: a build would fail at `clean`\n")
    r = proj.run("-n", "clean")
    assert (r.code, r.out) == (1, "")
    assert r.err.endswith("datamake: a build would fail at `clean`\n")
    r = proj.run("-n", "--json")
    assert r.code == 1
    assert r.json == {"run": ["first"], "fresh": [], "reasons": {"first": [
        {"code": "no-record", "name": None}]}, "failed": [
        {"node": "clean", "error": "input `raw` does not exist at `raw.csv`"}]}
