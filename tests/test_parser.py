"""The Datafile language: each construct parsed into the model."""
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


def test_a_rule_named_like_a_python_keyword_has_a_recipe():
    # The recipe is compiled as a function named after the rule: `for` is not a
    # function name Python accepts, so it is `for_` (as tracebacks show it). (Its
    # output can be read by rules, not by Python code: `for` is no Python name.)
    df = parse("""
        for: x
            x + 1
        class: x
            x * 2
    """)
    f, c = (marshal.loads(r.recipe.code) for r in df.rules)
    assert (f.co_name, c.co_name) == ("for_", "class_")
    assert types.FunctionType(f, {})(x=1) == 2


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


def _big_datafile(n: int, extra: str = "") -> str:
    """A Datafile of `n` rules with every kind of statement, `extra` near its end."""
    head = textwrap.dedent('''\
        param scale = 2
        params "p.json"
        python:
            def twice(x):
                return x * 2
        dataset raw = "raw.csv"
        ''')
    parts = [head]
    for i in range(n):
        parts.append(f'dataset d{i} = "out/{i}.json" as json(indent=1)\n')
    for i in range(n):
        if i % 3 == 0:
            parts.append(f"\n## step {i}\n## (documented)\nd{i}: raw scale\n"
                         f"    # a comment\n    rows = twice(len(raw)) * scale\n\n"
                         f"    rows + {i}\n")
        elif i % 3 == 1:
            parts.append(f"\nd{i}: d{i - 1}\n    $ cp {{d{i - 1}}} {{out}}\n")
        else:
            parts.append(f"\nd{i} as p{i}: d{i - 1} as prev\n    return prev\n")
        if i == n - 3:
            parts.append(extra)
    return "".join(parts)


def _comparable(df):
    """A model with each recipe's code as a code object (marshal's bytes depend on
    reference counts, so two compilations of one function may differ in them)."""
    import dataclasses

    rules = tuple(dataclasses.replace(r, recipe=dataclasses.replace(
        r.recipe, code=marshal.loads(r.recipe.code) if r.recipe.code else None))
        if r.recipe else r for r in df.rules)
    return dataclasses.replace(df, rules=rules)


def test_a_long_datafile_is_parsed_in_halves_into_the_same_model(tmp_path, monkeypatch):
    import os
    import warnings

    from datamake import halves as split

    (tmp_path / "p.json").write_text('{"k": 1}')
    text = _big_datafile(600, extra="\nlate: d1\n    if d1 is 1:\n        pass\n    d1\n")
    assert text.count("\n") >= split.PARALLEL_LINES
    assert split.may_fork(), "one CPU, or another thread runs in this test process"
    forks = []
    real_fork = os.fork

    def counted_fork():
        forks.append(1)
        return real_fork()

    monkeypatch.setattr(os, "fork", counted_fork)
    with warnings.catch_warnings(record=True) as told:
        warnings.simplefilter("always")
        halves = parse_text(text, "Datafile", tmp_path)
    assert forks == [1]  # the second half was parsed by a child
    monkeypatch.setattr(split, "PARALLEL_LINES", 10 ** 9)
    with warnings.catch_warnings(record=True) as told_too:
        warnings.simplefilter("always")
        whole = parse_text(text, "Datafile", tmp_path)
    assert forks == [1]
    assert _comparable(halves) == _comparable(whole)
    assert len(whole.rules) == 601 and len(whole.datasets) == 601
    assert whole.rules[-1].doc is None and whole.rules[3].doc == "step 3 (documented)"
    late = text.splitlines().index("    if d1 is 1:") + 1
    # (Only the parse's own warnings: a ResourceWarning of an earlier test's object,
    # collected meanwhile, is not the parse's.)
    assert [(str(w.message), w.lineno) for w in told if w.category is SyntaxWarning] == \
        [(str(w.message), w.lineno) for w in told_too if w.category is SyntaxWarning] == \
        [('"is" with a literal. Did you mean "=="?', late)]


@pytest.mark.parametrize("extra", [
    "\nbroken: d1\n    x = (1,\n    x\n",  # a recipe's Python syntax error
    "\ndataset nope = out/nope.json\n",  # a Datafile syntax error
    '\ncache "s3://a"\n\ncache "s3://b"\n',  # a second cache line, one in each half
])
def test_a_long_datafile_with_errors_tells_them_as_one_parse_does(tmp_path, monkeypatch, extra):
    from datamake import halves as split

    (tmp_path / "p.json").write_text('{"k": 1}')
    text = _big_datafile(600, extra=extra)
    if "cache" in extra:  # one `cache` line at the top, one near the end
        text = 'cache "s3://top"\n' + text.replace('\ncache "s3://a"\n', "\n")
    with pytest.raises(DatafileError) as halves:
        parse_text(text, "Datafile", tmp_path)
    monkeypatch.setattr(split, "PARALLEL_LINES", 10 ** 9)
    with pytest.raises(DatafileError) as whole:
        parse_text(text, "Datafile", tmp_path)
    assert halves.value.diagnostics == whole.value.diagnostics
    assert len(whole.value.diagnostics) == 1


def test_a_long_datafile_is_parsed_in_halves_whatever_the_process_did_to_itself(
        tmp_path, monkeypatch):
    # A process whose stdout is closed, or that lets the system reap its children
    # (SIGCHLD ignored: waitpid then fails), still gets the model, from both halves.
    import io
    import os
    import signal

    from datamake import halves as split

    (tmp_path / "p.json").write_text('{"k": 1}')
    text = _big_datafile(600)
    closed = io.StringIO()
    closed.close()
    monkeypatch.setattr("sys.stdout", closed)
    forks = []
    real_fork = os.fork
    monkeypatch.setattr(os, "fork", lambda: forks.append(1) or real_fork())
    old = signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    try:
        halves = parse_text(text, "Datafile", tmp_path)
    finally:
        signal.signal(signal.SIGCHLD, old)
    assert forks == [1]
    monkeypatch.setattr(split, "PARALLEL_LINES", 10 ** 9)
    assert _comparable(halves) == _comparable(parse_text(text, "Datafile", tmp_path))
