"""Grammar-aware fuzzing of the Datafile: whatever the text, datamake either accepts it
or reports errors as `FILE:LINE:COL: error:` with a caret on a real line. Any other
exception, a Python traceback on stderr or an exit code other than 0, 1 or 2 is a bug.

Datafiles are generated from the grammar's building blocks (statements, names, keys,
versions, aliases, recipes in Python and shell, params files, datasets with formats
and options, includes, comments, descriptions), then damaged (odd indentation, tabs,
unbalanced brackets, random characters spliced in). The examples are derandomized, so a
run is repeatable and CI sees the same ones every time; raise the budget to search
further:

    DATAMAKE_FUZZ_EXAMPLES=5000 python -m pytest tests/test_fuzz.py

(the in-process property runs that many examples, the command-line one a tenth).
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, event, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from conftest import clean_env  # noqa: E402
from datamake import graph, parser  # noqa: E402
from datamake.diagnostics import render  # noqa: E402
from datamake.errors import DatafileError, DatamakeError  # noqa: E402

EXAMPLES = int(os.environ.get("DATAMAKE_FUZZ_EXAMPLES", "400"))
FUZZ = settings(max_examples=EXAMPLES, derandomize=True, database=None, deadline=None,
                suppress_health_check=list(HealthCheck))
CLI = settings(FUZZ, max_examples=max(8, EXAMPLES // 10))

# -- building blocks -------------------------------------------------------------------

KEYWORDS = ["param", "params", "dataset", "include", "cache", "python", "as", "versioned"]
POOL = ["raw", "clean", "model", "report", "n", "size", "all", "x", "y", "counts", "books",
        "done", "out", "key", "id", "ns", "print", "len", "_", "a1", "B_2"]
names = st.one_of(
    *[st.sampled_from(POOL)] * 40,  # mostly names that refer to each other
    st.sampled_from(KEYWORDS),
    *[st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,12}", fullmatch=True)] * 4,
    st.integers(90, 130).map(lambda n: "n" * n),  # around the length limit
)
refs = st.one_of(names, st.lists(names, min_size=2, max_size=3).map(".".join))
versions = st.sampled_from(["2026-11-01T10:00:00", "v1", "latest", "previous", "1", "x-y.z"])

literals = st.recursive(
    st.one_of(st.integers(-10**6, 10**6).map(repr), st.floats(allow_nan=False).map(repr),
              st.text(max_size=8).map(repr), st.sampled_from(["True", "False", "None"])),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4).map(lambda xs: "[" + ", ".join(xs) + "]"),
        st.lists(inner, max_size=3).map(lambda xs: "(" + ", ".join(xs) + ",)"),
        st.lists(st.tuples(st.text(max_size=4).map(repr), inner), max_size=3).map(
            lambda kv: "{" + ", ".join(f"{k}: {v}" for k, v in kv) + "}")),
    max_leaves=12)
values = st.one_of(
    literals,
    st.sampled_from(["now()", "[1,", "1 +", "{'a': }", "'unclosed", "0x" + "f" * 5000,
                     "[\n    1,\n    2,\n]", "[\n1,\n]", "-" * 300 + "1", "+".join("1" * 400),
                     "[" * 150 + "]" * 150, "lambda: 1", "b'bytes'", "1_000", "...",
                     "{1, 2}", "-(-1)", "1j", "'\\N{nope}'"]),
)

locations = st.one_of(
    st.sampled_from(["data/raw.csv", "data/{id}.csv", "data/{a}/{b}.json", "out/x.pkl",
                     "data/m", "r.txt", "r.yaml", "r.parquet", "r.png", "r.html", "x.unknown",
                     "", " ", ".", "./", "..", "{id}", "{a}{b}", "${}", "${HOME", "${NOPE}/x",
                     "s3://", "s3://b/{k}.csv", "memory://x.json", "file://", ".datamake/x",
                     "data/\\N{nope}", "data/\\x", "a\\tb", "{}", "data/{{id}}"]),
    st.text(alphabet="ab/._{}$~:*", max_size=12),
)
formats = st.sampled_from(["csv", "parquet", "json", "yaml", "pickle", "text", "path",
                           "bytes", "image", "html", "excel", "parqet", "nope"])
options = st.sampled_from(["", "(sep=';')", "(header=None, sep=',')", "(1)", "(**x)",
                           "(a=[[[[1]]]])", "(a=f())", "(a=)", "(a=[" + "[" * 100 + "])"])

python_lines = st.one_of(
    st.sampled_from([
        "x = 1", "return x", "yield 'k', 1", "yield from []", "import os", "from os import path",
        "from math import *", "raw + clean", "len(raw)", "print(n)", "done", "y", "(", "]",
        "def f():", "    pass", "class C: pass", "global g", "nonlocal z", "async def g(): pass",
        "lambda: 0", "[k for k in raw]", "x = (1,\n     2]", "if x:\n        pass",
        "try:\n        pass\n    except Exception as e:\n        e", "match x:\n        case 1: pass",
        "1 if 1 else " * 300 + "1", "-" * 1000 + "1", "[1, " * 200 + "]" * 200,
        "a" + ".b" * 300, "f(" * 150 + ")" * 150, "x is 1", "'\\d'", "del x", "exec('1')",
        "globals()['q'] = 1", "__name__", "\\", "'''", "#", "pass  # comment",
    ]),
    st.lists(refs, min_size=1, max_size=4).map(" + ".join),
)
shell_lines = st.one_of(
    st.sampled_from(["$ cp {raw} {out}", "$ echo {n} > {out}", "$ echo ${HOME}", "$ {{x}}",
                     "$ echo {nope}", "$", "$ cat {clean} | wc -l > {out}"]),
    refs.map(lambda r: f"$ echo {{{r}}}"),
)


simple_python = st.one_of(
    st.sampled_from(["x = 1", "return x", "yield 'k', 1", "import os", "len(raw)", "done", "y",
                     "print(n)", "[k for k in raw]", "raw.upper()", "os.sep"]),
    st.lists(st.sampled_from(POOL), min_size=1, max_size=3).map(" + ".join),
)


@st.composite
def blocks(draw, lines, tidy: bool) -> str:
    body = draw(st.lists(lines, min_size=1, max_size=5))
    indent = "    " if tidy else draw(st.sampled_from(["    ", "  ", "\t", "        ", " \t"]))
    return "\n".join(indent + ln for ln in body)


@st.composite
def rules(draw, tidy: bool) -> str:
    name = st.sampled_from(POOL) if tidy else names
    outs = draw(st.lists(st.tuples(name, st.one_of(st.none(), name)), min_size=1, max_size=3))
    head = " ".join(f"{o}[{k}]" if k else o for o, k in outs)
    ins = []
    for _ in range(draw(st.integers(0, 4))):
        text = draw(name if tidy else refs)
        if draw(st.booleans()):
            text += f"[{draw(name)}]"
        if draw(st.integers(0, 4)) == 0:
            text += f"@{draw(versions)}"
        if draw(st.integers(0, 3)) == 0:
            text += f" as {draw(name)}"
        ins.append(text)
    line = f"{head}: {' '.join(ins)}".rstrip()
    if not tidy and draw(st.integers(0, 5)) == 0:
        line = line.replace(" ", " \\\n    ", 1)  # a continued line
    doc = "## " + draw(st.text(max_size=20)).replace("\n", " ") + "\n" if draw(st.booleans()) else ""
    recipe = draw(st.one_of(st.just(""), blocks(simple_python if tidy else python_lines, tidy),
                            blocks(shell_lines, tidy)))
    return doc + line + ("\n" + recipe if recipe else "")


@st.composite
def statements(draw, tidy: bool) -> str:
    kind = draw(st.sampled_from(["param", "params", "dataset", "dataset", "include", "cache",
                                 "python", "rule", "rule", "rule", "rule", "comment", "blank",
                                 "deep"] + ([] if tidy else ["junk"])))
    name = st.sampled_from(POOL) if tidy else names
    if kind == "param":
        return f"param {draw(name)} = {draw(literals if tidy else values)}"
    if kind == "params":
        return f'params "{draw(st.sampled_from(PARAMS_FILES + ["missing.yaml", "p.ini", ""]))}"'
    if kind == "dataset":
        text = f'dataset {draw(name)} = "{draw(locations)}"'
        if draw(st.booleans()):
            text += f" as {draw(formats)}{draw(options)}"
        if draw(st.integers(0, 3)) == 0:
            text += " versioned"
        return text
    if kind == "include":
        ns = f" as {draw(name)}" if draw(st.booleans()) else ""
        return f'include "{draw(st.sampled_from(["Datafile", "sub/Datafile", "missing/Datafile"]))}"{ns}'
    if kind == "cache":
        return f'cache "{draw(st.sampled_from(["s3://b/c", "cache-dir", ""]))}"'
    if kind == "python":
        return "python:\n" + draw(blocks(simple_python if tidy else python_lines, tidy))
    if kind == "rule":
        return draw(rules(tidy))
    if kind == "deep":  # around the limits of Python's parser, compiler and datamake's
        n = draw(st.sampled_from([150, 199, 200, 201, 300, 1000, 5000]))
        expr = draw(st.sampled_from([
            "-" * n + "1", "+".join(["1"] * n), "[1, " * n + "]" * n, "(" * n + "1" + ")" * n,
            "x" + ".b" * n, "f(" * n + ")" * n, "not " * n + "1", "lambda: " * n + "1",
            "[" * n + "]" * n, "{'a': " * n + "1" + "}" * n, "1 if 1 else " * n + "1"]))
        where = draw(st.sampled_from(["param", "recipe", "python", "option"]))
        if where == "param":
            return f"param {draw(name)} = {expr}"
        if where == "option":
            return f'dataset {draw(name)} = "d.csv" as csv(a={expr})'
        head = "python:" if where == "python" else f"{draw(name)}:"
        return f"{head}\n    x = 1\n    {expr}"
    if kind == "comment":
        return "# " + draw(st.text(max_size=30)).replace("\n", " ")
    if kind == "blank":
        return draw(st.sampled_from(["", "   ", "\t"]))
    return draw(st.text(max_size=20))


@st.composite
def damaged(draw, text: str) -> str:
    """`text` with a few random injuries."""
    for _ in range(draw(st.sampled_from([0, 0, 0, 0, 1, 1, 2, 3]))):
        how = draw(st.sampled_from(["splice", "bytes", "delete", "indent", "tab", "bracket",
                                    "crlf", "cr", "bom", "dup"]))
        pos = draw(st.integers(0, len(text)))
        if how == "splice":
            text = text[:pos] + draw(st.text(max_size=6)) + text[pos:]
        elif how == "bytes":
            junk = bytes(draw(st.lists(st.integers(0, 255), max_size=6)))
            text = text[:pos] + junk.decode("latin-1") + text[pos:]
        elif how == "delete":
            text = text[:pos] + text[pos + draw(st.integers(1, 8)):]
        elif how == "indent":
            text = text[:pos] + "\n" + " " * draw(st.integers(1, 9)) + text[pos:]
        elif how == "tab":
            text = text[:pos] + "\t" + text[pos:]
        elif how == "bracket":
            text = text[:pos] + draw(st.sampled_from("([{)]}'\"")) + text[pos:]
        elif how == "crlf":
            text = text.replace("\n", "\r\n")
        elif how == "cr":
            text = text[:pos] + "\r" + text[pos:]
        elif how == "bom":
            text = "\ufeff" + text
        elif how == "dup":
            text = text[:pos] + text[pos:pos + 40] + text[pos:]
    return text


@st.composite
def datafiles(draw) -> str:
    """Half tidy (names from one pool, so they meet; nothing damaged: the checks after
    the grammar are reached), half wild."""
    tidy = draw(st.booleans())
    text = "\n".join(draw(st.lists(statements(tidy), min_size=1, max_size=8))) + "\n"
    return text if tidy else draw(damaged(text))


PARAMS_FILES = ["p.yaml", "p.json", "p.toml", "bomb.yaml", "deep.json", "junk.yaml"]
SUB = 'dataset s = "s.txt"\nt: s\n    s\n'


def write_project(root: Path, text: str, params: dict[str, str]) -> None:
    (root / "Datafile").write_text(text, encoding="utf-8", errors="surrogatepass")
    (root / "sub").mkdir(exist_ok=True)
    (root / "sub" / "Datafile").write_text(SUB)
    for name, content in params.items():
        (root / name).write_text(content, errors="surrogatepass")


params_texts = st.fixed_dictionaries({
    "p.yaml": st.sampled_from(["n: 1\nsize: [1, 2]\n", "- 1\n", "a: &a [1, *a]\n", "? [1]\n: 2\n",
                               "x: !!python/object:os.system ls\n", "1: one\n", ""]),
    "p.json": st.recursive(st.integers() | st.text(max_size=4), lambda i: st.lists(i, max_size=3)
                           | st.dictionaries(st.text(max_size=4), i, max_size=3),
                           max_leaves=8).map(lambda v: json.dumps({"n": v})),
    "p.toml": st.sampled_from(["n = 1\n", "n = [\n", "'bad key' = 1\n", "[t]\na = 1\n"]),
    "bomb.yaml": st.just("\n".join(['a0: &a0 [1, 1, 1, 1, 1, 1, 1, 1, 1]'] + [
        f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 8)]) + "\n"),
    "deep.json": st.integers(150, 1200).map(lambda n: '{"d": ' + "[" * n + "]" * n + "}"),
    "junk.yaml": st.binary(max_size=40).map(lambda b: b.decode("latin-1")),
})

# -- the properties ---------------------------------------------------------------------

_LOCATED = re.compile(r"^(?P<file>[^\n:]+):(?P<line>\d+):(?P<col>\d+): (error|warning): ")


def assert_well_reported(exc: DatamakeError, text: str) -> None:
    """Every diagnostic of `exc` renders as `FILE:LINE:COL: error:` with a caret under
    a real line of `text`."""
    if not isinstance(exc, DatafileError):
        assert exc.exit_code == 2, repr(exc)
        return
    assert exc.diagnostics, repr(exc)
    text = text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    lines = text.split("\n")
    for d in exc.diagnostics:
        assert d.span is not None and d.span.file == "Datafile", d
        assert 1 <= d.span.line <= len(lines), (d, len(lines))
        assert 1 <= d.span.col <= len(lines[d.span.line - 1]) + 1, (d, lines[d.span.line - 1])
        shown = render(d, {"Datafile": text}).split("\n")
        assert _LOCATED.match(shown[0]), shown
        assert shown[2].startswith(f"{d.span.line} | "), shown
        assert re.fullmatch(r" *\| +\^+", shown[3]), shown


@FUZZ
@given(text=datafiles(), params=params_texts)
def test_parser_and_checks_never_crash(tmp_path_factory, text, params):
    root = tmp_path_factory.mktemp("fuzz")
    write_project(root, text, params)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Python's own about recipes' code
            df = parser.parse_text(text, "Datafile", base=root)
            graph.build(df)
        event("accepted")
    except DatamakeError as e:
        event(f"error: {getattr(e, 'diagnostics', [e])[0].message[:25]}")
        assert_well_reported(e, text)


_ERROR_LINE = re.compile(r"^(\S[^\n]*:\d+:\d+: (error|warning): |datamake: )")


@CLI
@given(text=datafiles(), params=params_texts)
def test_the_command_line_never_crashes(text, params):
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        write_project(root, text, params)
        for args in (["--check"], ["-n"]):
            proc = subprocess.run([sys.executable, "-m", "datamake", *args], cwd=root,
                                  capture_output=True, env=clean_env(), timeout=120)
            err = proc.stderr.decode("utf-8", "replace")
            assert proc.returncode in (0, 1, 2), (args, proc.returncode, err)
            assert "Traceback (most recent call last)" not in err, (args, err)
            assert len(proc.stderr) < 200_000, (args, len(proc.stderr))
            if proc.returncode == 2:
                assert err and _ERROR_LINE.match(err), (args, err)


# -- what the fuzzer found before these checks: each crash, kept as a case ------------

@pytest.mark.parametrize("text,files,first_line", [
    # SyntaxError from a bad escape in a quoted string.
    ('dataset d = "data/\\x"\n', {},
     "Datafile:1:13: error: invalid escape in a quoted string: truncated \\xXX escape"),
    # ValueError ("embedded null byte") from a params path with a NUL in it.
    ('params "p\0.yaml"\n', {}, "Datafile:1:10: error: a NUL character in the Datafile"),
    # A YAML parser's message on several lines broke the diagnostic's layout.
    ('params "p.yaml"\n', {"p.yaml": "? [1]\n: 2\n"},
     "Datafile:1:8: error: params file `p.yaml` cannot be parsed: found unhashable key "
     "(line 1, column 3)"),
    ('params "p.json"\n', {"p.json": '{"a": '},
     "Datafile:1:8: error: params file `p.json` cannot be parsed: Expecting value (line 1, "
     "column 7)"),
    # MemoryError from Python's parser, in format options.
    ('dataset d = "d.csv" as csv(a=' + "[1, " * 200 + "]" * 200 + ")\n", {},
     "Datafile:1:27: error: a format option is nested more than 200 levels deep"),
    # RecursionError in fast_dump, over valid Python that Python compiles.
    ("out:\n    x = 1\n    " + "+".join(["1"] * 1000) + "\n", {},
     "Datafile:3:5: error: the recipe of `out` is nested more than 200 levels deep"),
    ("out:\n    x = 1\n    " + "1 if 1 else " * 300 + "1\n", {},  # 201 levels in
     "Datafile:3:2381: error: the recipe of `out` is nested more than 200 levels deep"),
])
def test_what_the_fuzzer_found(tmp_path, text, files, first_line):
    write_project(tmp_path, text, files)
    with pytest.raises(DatafileError) as e:
        graph.build(parser.parse_text(text, "Datafile", base=tmp_path))
    assert_well_reported(e.value, text)
    assert render(e.value.diagnostics[0], {"Datafile": text}).split("\n")[0] == first_line

