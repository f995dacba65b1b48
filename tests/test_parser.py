"""The Datafile language: each construct parsed into the model (SPEC section 2)."""
from __future__ import annotations

import marshal
import textwrap
import types

import pytest

from datamake.errors import DatafileError
from datamake.parser import parse_text


def parse(text: str, base=None):
    return parse_text(textwrap.dedent(text).lstrip("\n"), "Datafile", base)


def test_params_inline_and_multiline():
    df = parse("""
        param test_size = 0.2
        param name = "spaceflights"   # a comment
        param features = [
            "engines",   # why
            "crew",

        ]
        param opts = {"a": (1, 2), "b": None, "c": True, "d": -1e-3}
    """)
    assert {p.name: p.value for p in df.params} == {
        "test_size": 0.2, "name": "spaceflights", "features": ["engines", "crew"],
        "opts": {"a": (1, 2), "b": None, "c": True, "d": -1e-3}}
    assert df.params[2].span.line == 3


@pytest.mark.parametrize("suffix,text", [
    (".yaml", "size: 3\nnested:\n  a: [1, 2]\n"),
    (".toml", "size = 3\n[nested]\na = [1, 2]\n"),
    (".json", '{"size": 3, "nested": {"a": [1, 2]}}'),
])
def test_params_file(tmp_path, suffix, text):
    (tmp_path / f"conf{suffix}").write_text(text)
    df = parse(f'params "conf{suffix}"\n', tmp_path)
    assert {p.name: p.value for p in df.params} == {"size": 3, "nested": {"a": [1, 2]}}


def test_params_file_errors(tmp_path):
    with pytest.raises(DatafileError) as e:
        parse('params "missing.yaml"\n', tmp_path)
    assert "cannot read params file `missing.yaml`" in e.value.diagnostics[0].message
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(DatafileError) as e:
        parse('params "list.yaml"\n', tmp_path)
    assert "must hold a mapping" in e.value.diagnostics[0].message


def test_datasets_with_formats_options_and_versioned():
    df = parse("""
        dataset a = "data/a.csv"
        dataset b = "data/b.txt" as csv(sep=";", header=None)  versioned
        dataset c = 's3://bucket/${USER}/c.parquet' versioned
        dataset d = "models/m" as path
    """)
    a, b, c, d = df.datasets
    assert (a.name, a.location, a.format, a.options, a.versioned) == (
        "a", "data/a.csv", None, (), False)
    assert (b.format, b.options, b.versioned) == ("csv", (("sep", ";"), ("header", None)), True)
    assert (c.location, c.versioned) == ("s3://bucket/${USER}/c.parquet", True)
    assert d.format == "path"
    assert (b.span.line, b.span.col, b.location_span.col) == (2, 9, 13)


def test_rules_outputs_inputs_aliases_and_docs():
    df = parse("""
        param k = 1
        dataset src = "src.txt"

        ## The default target.
        all: x y

        ## Two outputs,
        ## one rule.
        x y: src k
            return src, k

        ns: src.part[id]@v2 as local other
            local
    """)
    alias, xy, ns = df.rules
    assert (alias.name, alias.recipe, alias.doc) == ("all", None, "The default target.")
    assert [o.name for o in xy.outputs] == ["x", "y"]
    assert [i.name for i in xy.inputs] == ["src", "k"]
    assert xy.doc == "Two outputs, one rule."
    i = ns.inputs[0]
    assert (i.name, i.key, i.version, i.alias, i.local) == ("src.part", "id", "v2", "local", "local")
    assert ns.inputs[1].local == "other"


def test_python_recipe_value_is_the_last_expression_or_return():
    df = parse("""
        a: x
            y = x + 1
            y * 2
        b: x
            if x:
                return "yes"
            "no"
        c: x
            for i in range(x):
                yield i, i
    """)
    a, b, c = (r.recipe for r in df.rules)
    fa = types.FunctionType(marshal.loads(a.code), {}, "a")
    assert fa(x=1) == 4
    fb = types.FunctionType(marshal.loads(b.code), {}, "b")
    assert (fb(x=1), fb(x=0)) == ("yes", "no")
    assert c.generator and not a.generator
    fc = types.FunctionType(marshal.loads(c.code), {}, "c")
    assert list(fc(x=2, done=set())) == [(0, 0), (1, 1)]
    # Code objects carry the Datafile's own lines.
    assert marshal.loads(a.code).co_firstlineno == 1
    assert [u.chain for u in a.uses] == ["x"]


def test_recipe_uses_and_imports_for_fingerprints():
    df = parse("""
        out: frame
            import helpers.text as ht
            from helpers import clean
            frame.pipe(clean).pipe(ht.squash).pipe(np.log)
    """)
    r = df.rules[0].recipe
    assert [u.chain for u in r.uses] == ["frame.pipe", "np.log"]
    assert set(r.import_chains) == {"clean", "ht.squash"}
    assert set(r.imports) == {("ht", "helpers.text", None), ("clean", "helpers", "clean")}


def test_shell_recipe_and_comment_only_block():
    df = parse("""
        counts: book
            # count words
            $ tr -cs 'A-Za-z' '\\n' < {book} | sort | uniq -c > {out}
            $ echo ${HOME} {{literal}}
        alias: counts
            # nothing but comments: still an alias
    """)
    counts, alias = df.rules
    assert counts.recipe.kind == "shell"
    assert [u.chain for u in counts.recipe.uses] == ["book", "out"]
    assert alias.recipe is None


def test_mixed_shell_and_python_is_an_error():
    with pytest.raises(DatafileError) as e:
        parse("""
            x: y
                $ echo hi
                print("hi")
        """)
    d = e.value.diagnostics[0]
    assert d.message == "a recipe mixes shell lines (`$ ...`) and Python lines"
    assert (d.span.line, d.span.col) == (3, 5)


def test_python_block_and_continuation_lines():
    df = parse("""
        python:
            import math

            def area(r):
                return math.pi * r ** 2
        result: radius \\
                unit
            f"{area(radius)} {unit}"
    """)
    assert df.python[0].line == 2
    assert [i.name for i in df.rules[0].inputs] == ["radius", "unit"]


def test_windows_line_endings_and_no_final_newline():
    df = parse_text('param a = 1\r\nout: a\r\n    a + 1', "Datafile")
    assert df.params[0].value == 1 and df.rules[0].recipe is not None


def test_keywords_are_reserved():
    with pytest.raises(DatafileError) as e:
        parse("params: x\n    1\n")
    assert e.value.diagnostics[0].message == "`params` is a keyword and cannot name a rule's output"


def test_a_rule_cannot_follow_an_unclosed_python_syntax():
    with pytest.raises(DatafileError) as e:
        parse("""
            python:
                def f(:
                    pass
        """)
    d = e.value.diagnostics[0]
    assert d.message.startswith("Python syntax error in the `python:` block")
    assert d.span.line == 2
