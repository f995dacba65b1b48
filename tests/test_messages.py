"""Every kind of message in datamake/messages.py, triggered by a small input and held
whole as it is rendered (FILE:LINE:COL: error: ..., the source line, the caret, help).

The rendered text of code C is in tests/golden/C.txt. After changing a message on
purpose, `DATAMAKE_GOLDEN=write pytest tests/test_messages.py` rewrites those files;
read the diff before committing it. Adding a kind: a line in the table, a case here.
"""
from __future__ import annotations

import io
import os
import textwrap
from pathlib import Path
from typing import Any, Callable, NamedTuple

import pytest
from click.testing import CliRunner

from datamake import cli, formats, messages
from datamake.errors import DatamakeError, Diagnostic, Span, UsageError, error
from datamake.console import Reporter

GOLDEN = Path(__file__).parent / "golden"
DEEP = "-" * 5000 + "1"  # too deep for Python's own parser
HUGE = "0x" + "f" * 4000  # an integer too long to print


class Case(NamedTuple):
    files: dict[str, str | bytes]  # written into an empty folder; str is dedented
    args: tuple[str, ...] = ("--check",)
    # Instead of the command line: a call into the Python API (given the folder).
    api: Callable[[Path], Any] | None = None
    # Before running (given monkeypatch and the folder): what the input needs around it.
    setup: Callable[[Any, Path], None] | None = None
    # Only for kinds whose input needs what this machine lacks (a Dask scheduler): the
    # error as its call site makes it.
    direct: Callable[[], DatamakeError] | None = None


def df(text: str, **more: str | bytes) -> dict[str, str | bytes]:
    return {"Datafile": text, **more}


def rule(body: str = "1") -> str:
    return f"    {body}\n"


def _find(path: Path):
    from datamake.project import find_datafile

    return find_datafile(path)


def _project(path: Path, params: dict | None = None):
    from datamake.project import Project

    return Project(path / "Datafile", params=params)


def _built_versions(mp, path: Path) -> None:
    """A versioned report built once (one saved version)."""
    assert cli.run((), **_RUN) == 0


_RUN: dict[str, Any] = dict(file="Datafile", directory=None, dry_run=False, question=False,
                            always_make=False, force=(), keep_going=False, explain=False,
                            list_=False, dag=False, dag_format="dot", output=None, check=False,
                            as_json=False, quiet=True)


def _broken_plugin(mp, path: Path) -> None:
    """An installed distribution whose format plugin cannot be imported."""
    site = path / "site"
    info = site / "brokenfmt-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: brokenfmt\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[datamake.formats]\nbroken = no_such_module_for_datamake:Format\n")
    mp.syspath_prepend(str(site))
    formats._plugins.cache_clear()  # and again after the test


def _no_module(name: str):
    def setup(mp, path: Path) -> None:
        import sys

        mp.setitem(sys.modules, name, None)  # `import name` raises ImportError
    return setup


def _no_module_found(name: str):
    """`name` cannot be found (as if its extra were not installed)."""
    def setup(mp, path: Path) -> None:
        import importlib.util

        find = importlib.util.find_spec
        mp.setattr(importlib.util, "find_spec",
                   lambda n, *a, **k: None if n == name else find(n, *a, **k))
    return setup


NB = {"nb.py": "# %%\nx = 1\n"}

VERSIONED = df('''
    dataset report = "out/report.json" versioned
    report:
        {"rows": 1}
''')
BOMB = "\n".join(['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]'] + [
    f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 10)]) + "\n"
PARTS = df('''
    dataset raw = "data/{day}.csv"
    dataset clean = "out/{day}.csv"
    clean[day]: raw[day]
        raw
    ''', **{"data/mon.csv": "a\n1\n"})

CASES: dict[str, Case] = {
    # -- reading a Datafile
    "no-datafile": Case({}),
    "datafile-not-regular": Case({}, setup=lambda mp, p: os.mkfifo(p / "Datafile")),
    "datafile-too-big": Case(df("# " + "x" * 4_000_000 + "\n")),
    "datafile-unreadable": Case({"Datafile": "a:\n    1\n"},
                                setup=lambda mp, p: mp.setattr(
                                    "datamake.loader.read_regular", _eacces)),
    "datafile-not-utf8": Case(df(b"out:\n    'caf\xe9'\n")),
    "nul-character": Case(df(b"out:\n    1\0\n")),
    # -- includes and the shared cache
    "include-cycle": Case(df('include "sub/Datafile"\n',
                             **{"sub/Datafile": 'include "../Datafile"\n'})),
    "include-missing": Case(df('include "sub/Datafile" as sub\n')),
    "cache-in-include": Case(df('include "sub/Datafile" as sub\n',
                                **{"sub/Datafile": 'cache "s3://bucket/cache"\n'})),
    "cache-twice": Case(df('cache "s3://a/cache"\ncache "s3://b/cache"\n')),
    # -- syntax
    "tab-indent": Case(df("out:\n\t1\n")),
    "unclosed-bracket": Case(df("param sizes = [1,\n2]\nout: sizes\n    sizes\n")),
    # No input is known to reach these three (the grammar reports them otherwise): told
    # as the parser would tell them.
    "unexpected-indent": Case(df("param a = 1\n  param b = 2\n"), direct=lambda: error(
        "unexpected-indent", Span("Datafile", 2, 1, 2, 3))),
    "unexpected-character": Case(df("out: in%put\n    1\n"), direct=lambda: error(
        "unexpected-character", Span("Datafile", 1, 8, 1, 9), char="%")),
    "unexpected-block": Case(df("param a = 1\n    a + 1\n"), direct=lambda: error(
        "unexpected-block", Span("Datafile", 2, 1, 2, 2))),
    "expected-colon": Case(df("out input\n    1\n")),
    "param-expected-equals": Case(df("param size 3\n")),
    "dataset-expected-equals": Case(df('dataset raw "data/raw.csv"\n')),
    "keyword-as-name": Case(df("params: x\n    1\n")),
    "expected-location": Case(df("dataset raw = data/raw.csv\n")),
    "expected-key": Case(df("out: x[\n    1\n")),
    "unexpected-token": Case(df("out: x y @\n    1\n")),
    "name-too-long": Case(df("a" * 101 + ":\n    1\n")),
    "bad-escape": Case(df('dataset raw = "data\\xraw.csv"\n')),
    # -- parameters
    "param-syntax": Case(df("param size = 1 +\nout: size\n    size\n")),
    "param-too-deep": Case(df(f"param size = {DEEP}\nout: size\n    size\n")),
    "param-not-literal": Case(df("param size = len('abc')\nout: size\n    size\n")),
    "param-too-big": Case(df(f"param size = {HUGE}\nout: size\n    size\n")),
    # -- format options
    "option-syntax": Case(df('dataset raw = "raw.csv" as csv(sep=)\n')),
    "option-too-deep": Case(df(f'dataset raw = "raw.csv" as csv(sep={DEEP})\n')),
    "option-positional": Case(df('dataset raw = "raw.csv" as csv(";")\n')),
    "option-unpacked": Case(df('dataset raw = "raw.csv" as csv(**opts)\n')),
    "option-not-literal": Case(df('dataset raw = "raw.csv" as csv(sep=chr(59))\n')),
    "option-too-big": Case(df(f'dataset raw = "raw.csv" as csv(n={HUGE})\n')),
    "unknown-format": Case(df('dataset raw = "raw.csv" as cvs\nout: raw\n    raw\n')),
    "format-option-unknown": Case(df('dataset raw = "raw.csv" as csv(sepp=";")\n'
                                     'out: raw\n    raw\n')),
    "extension-unknown": Case(df('dataset out = "out.weird"\nout:\n    1\n')),
    "same-location": Case(df('dataset raw = "data/x.csv"\ndataset out = "data/./x.csv"\n'
                             'out: raw\n    raw\n')),
    "no-value": Case(df('out:\n    x = 1\n')),
    "params-file-env-unset": Case(df('params "conf/${DM_NO_SUCH_VARIABLE}/p.yaml"\n'),
                                  setup=lambda mp, p: mp.delenv("DM_NO_SUCH_VARIABLE", False)),
    "format-plugin-broken": Case(df('dataset raw = "raw.x" as broken\nout: raw\n    raw\n'),
                                 setup=_broken_plugin),
    # -- Python in the Datafile
    "python-syntax": Case(df("out:\n    return (1,\n")),
    "python-block-too-deep": Case(df(f"python:\n    x = 1\n    y = {DEEP}\n")),
    "recipe-too-deep": Case(df(f"out:\n    x = 1\n    y = {DEEP}\n    y\n")),
    "mixed-recipe": Case(df("out:\n    $ echo hi\n    x = 1\n")),
    # -- params files
    "params-not-regular": Case(df('params "/dev/zero"\n')),
    "params-too-big": Case(df('params "big.json"\n',
                              **{"big.json": '{"a": "' + "x" * 1_000_000 + '"}'})),
    "params-unreadable": Case(df('params "missing.yaml"\n')),
    "params-unknown-type": Case(df('params "conf.ini"\n', **{"conf.ini": "a = 1\n"})),
    "params-too-deep": Case(df('params "deep.json"\n', **{"deep.json": "[" * 2000 + "]" * 2000})),
    "params-unparsable": Case(df('params "conf.json"\n', **{"conf.json": "{oops}\n"})),
    "params-not-mapping": Case(df('params "conf.json"\n', **{"conf.json": "[1, 2]\n"})),
    "params-too-big-value": Case(df('params "conf.yaml"\n', **{"conf.yaml": BOMB})),
    "params-bad-key": Case(df('params "conf.json"\n', **{"conf.json": '{"not a name": 1}\n'})),
    # -- names
    "two-rules-write": Case(df("out:\n    1\nout:\n    2\n")),
    "rule-writes-alias": Case(df("all: x\nx:\n    1\nall:\n    2\n")),
    "defined-twice": Case(df('param raw = 1\ndataset raw = "raw.csv"\nout: raw\n    raw\n')),
    "rule-writes-param": Case(df("param out = 1\nout:\n    2\n")),
    "alias-names": Case(df("all more: x\nx:\n    1\n")),
    "unknown-name": Case(df('dataset shuttles = "s.csv"\nout: shutles\n    shutles\n')),
    "param-has-no-partitions": Case(df("param size = 1\nout: size[k]\n    size\n")),
    "param-has-no-versions": Case(df("param size = 1\nout: size@latest\n    size\n")),
    "cycle": Case(df("a: b\n    b\nb: a\n    a\n")),
    # -- what a recipe uses
    "not-an-input": Case(df("param size = 1\nout:\n    size + 1\n")),
    "unknown-shell-name": Case(df("param size = 1\nout: size\n    $ echo {sise} > {out}\n")),
    "reads-own-output": Case(df("out:\n    out + 1\n")),
    "uses-alias": Case(df("x:\n    everything\neverything: x\n")),
    "defined-nowhere": Case(df("param size = 1\nout: size\n    size + sizes\n")),
    "same-local-name": Case(df('include "sub/Datafile" as sub\nparam x = 1\n'
                               'out: x sub.x\n    x\n', **{"sub/Datafile": "param x = 2\n"})),
    # -- locations
    "location-empty": Case(df('dataset raw = ""\nout: raw\n    raw\n')),
    "location-bad-variable": Case(df('dataset raw = "${HOME/raw.csv"\nout: raw\n    raw\n')),
    "location-no-path": Case(df('dataset raw = "s3://"\nout: raw\n    raw\n')),
    "location-url-placeholders": Case(df('dataset raw = "s3://{day}"\nout: raw\n    raw\n')),
    "location-home": Case(df('dataset raw = "~"\nout: raw\n    raw\n')),
    "location-root": Case(df('dataset raw = "/"\nout: raw\n    raw\n')),
    "location-project": Case(df('dataset raw = "."\nout: raw\n    raw\n')),
    "location-above": Case(df('dataset raw = ".."\nout: raw\n    raw\n')),
    "location-in-state": Case(df('dataset raw = ".datamake/raw.csv"\nout: raw\n    raw\n')),
    "location-placeholders-only": Case(df('dataset raw = "{day}"\nout: raw\n    raw\n')),
    "location-adjacent-placeholders": Case(df('dataset raw = "d/{a}{b}.csv"\n'
                                              'out: raw\n    raw\n')),
    # -- partitions (`[key]`)
    "pattern-keys-differ": Case(df('dataset raw = "d/{k}.csv"\na[k] b[j]: raw[k]\n    1\n')),
    "pattern-yields": Case(df('dataset raw = "d/{k}.csv"\ndataset o = "o/{k}.csv"\n'
                              'o[k]: raw[k]\n    yield "a", raw\n')),
    "yield-outputs": Case(df('dataset o = "o/{k}.csv"\no p:\n    yield "a", 1\n')),
    "output-not-partitioned": Case(df('dataset raw = "d/{k}.csv"\ndataset o = "o.csv"\n'
                                      'o[k]: raw[k]\n    raw\n')),
    "output-written-whole": Case(df('dataset o = "o/{day}.csv"\no:\n    1\n')),
    "key-outside-pattern": Case(df('dataset raw = "d/{k}.csv"\nout: raw[k]\n    raw\n')),
    "key-differs": Case(df('dataset raw = "d/{k}.csv"\ndataset o = "o/{k}.csv"\n'
                           'o[k]: raw[j]\n    raw\n')),
    "key-not-partitioned": Case(df('dataset raw = "d/{k}.csv"\ndataset one = "one.csv"\n'
                                   'dataset o = "o/{k}.csv"\no[k]: raw[k] one[k]\n    raw\n')),
    "placeholder-counts": Case(df('dataset raw = "d/{k}/{j}.csv"\ndataset o = "o/{k}.csv"\n'
                                  'o[k]: raw[k]\n    raw\n')),
    "pattern-without-input": Case(df('dataset o = "o/{k}.csv"\no[k]:\n    1\n')),
    # -- `@version`
    "version-not-versioned": Case(df('dataset raw = "raw.csv"\nout: raw@latest\n    raw\n')),
    "version-partitioned": Case(df('dataset raw = "d/{k}.csv" versioned\n'
                                   'out: raw@latest\n    raw\n')),
    "versioned-partitioned": Case(df('dataset raw = "d/{k}.csv" versioned\n'
                                     'out: raw\n    raw\n')),
    # -- warnings
    "unused-dataset": Case(df('dataset raw = "raw.csv"\nout:\n    1\n')),
    "builtin-shadows": Case(df("param len = 3\nout:\n    len([1])\n")),
    "unused-input": Case(df("param size = 1\nout: size\n    2\n")),
    # -- the command line and the Python API
    "no-datafile-above": Case({}, api=lambda p: _find(p)),
    "chdir-failed": Case(df("out:\n    1\n"), args=("-C", "nowhere")),
    "unknown-param": Case(df("param size = 1\nout: size\n    size\n"), args=("sise=2",)),
    "override-not-literal": Case(df("param size = 1\nout: size\n    size\n"),
                                 args=("size=[1,",)),
    "override-not-mapping": Case(df("param size = 1\nout: size\n    size\n"),
                                 args=("size.depth=2",)),
    "override-no-key": Case(df('param model = {"depth": 3}\nout: model\n    model\n'),
                            args=("model.dpeth=4",)),
    "dry-run-unknown": Case(df('dataset raw = "${DM_NO_SUCH_VARIABLE}/raw.txt"\n'
                               'out: raw\n    raw\n'), args=("-n",),
                            setup=lambda mp, p: mp.delenv("DM_NO_SUCH_VARIABLE", False)),
    "no-rules": Case(df("param size = 1\n"), args=()),
    "unknown-target": Case(df("out:\n    1\n"), args=("oot",)),
    "target-is-param": Case(df("param size = 1\nout: size\n    size\n"), args=("size",)),
    "force-unknown": Case(df("out:\n    1\n"), args=("--force", "oot")),
    "load-unknown": Case(df("out:\n    1\n"), api=lambda p: _project(p).load("oot")),
    "load-alias": Case(df("all: out\nout:\n    1\n"), api=lambda p: _project(p).load("all")),
    "gc-size": Case(df("out:\n    1\n"), args=("--gc", "lots")),
    "init-exists": Case(df("out:\n    1\n"), args=("--init",)),
    "env-name-invalid": Case(df("out:\n    1\n"), args=("--env", "../prod")),
    "credentials-invalid": Case(df("out:\n    1\n", **{"conf/prod/credentials.yaml":
                                                       "KEY: [s3cr3t\n"}),
                                args=("--env", "prod")),
    "log-file-unwritable": Case(df("out:\n    1\n"), args=("--log-file", "no/such/dir/log.txt")),
    "runs-unknown-step": Case(df("out:\n    1\n"), args=("--runs", "otu")),
    "unknown-executor": Case(df("out:\n    1\n"), args=("--executor", "spark")),
    "extra-missing": Case(df("out:\n    1\n"), args=("--executor", "dask"),
                          setup=_no_module("distributed")),
    "dask-unreachable": Case({}, direct=lambda: UsageError(
        "dask-unreachable", address="tcp://10.0.0.1:8786", reason="Timed out")),
    "dask-local-files": Case({}, direct=lambda: UsageError(
        "dask-local-files", address="tcp://10.0.0.1:8786", datasets="`raw` (raw.csv)")),
    "port-unavailable": Case(df("out:\n    1\n"), args=("--ui", "--port", "PORT"),
                             setup=lambda mp, p: _hold_port()),
    # -- `name[key]` on the command line
    "key-target-source": Case(PARTS, args=("raw[mon]",)),
    "key-target-alias": Case(df("all: out\nout:\n    1\n"), args=("all[x]",)),
    "key-target-not-pattern": Case(df("out:\n    1\n"), args=("out[x]",)),
    "key-target-invalid": Case(PARTS, args=("clean[a/b]",)),
    "key-target-missing": Case(PARTS, args=("clean[tue]",)),
    # -- `@version`: saved versions
    "history-unknown": Case(VERSIONED, args=("--history", "reprot")),
    "not-versioned": Case(df('dataset raw = "raw.csv"\nout: raw\n    raw\n'),
                          args=("--history", "raw")),
    "diff-args": Case(VERSIONED, args=("--diff", "report", "a", "b", "c")),
    "diff-format": Case(df('dataset raw = "raw.txt" versioned\nraw:\n    "hello"\n'),
                        args=("--diff", "raw", "latest", "latest"), setup=_built_versions),
    "no-versions": Case(VERSIONED, args=("--diff", "report")),
    "one-version": Case(VERSIONED, args=("--diff", "report"), setup=_built_versions),
    "no-version-matches": Case(VERSIONED, args=("--diff", "report", "1999"),
                               setup=_built_versions),
    "version-ambiguous": Case(VERSIONED, args=("--diff", "report", "YEAR"),
                              setup=lambda mp, p: _built_twice(mp, p)),
    "no-version-number": Case(VERSIONED, args=("--diff", "report", "7"),
                              setup=_built_versions),
    "diff-two-datasets": Case(VERSIONED, args=("--diff", "report@1", "other@2")),
    "diff-no-version": Case(VERSIONED, args=("--diff", "report@", "2")),
    # -- notebook recipes
    "notebook-one-line": Case(df('out:\n    notebook "nb.py"\n    x = 1\n', **NB)),
    "notebook-extension": Case(df('out:\n    notebook "nb.txt"\n')),
    "notebook-missing": Case(df('out:\n    notebook "nb/none.py"\n')),
    "notebook-unreadable": Case(df('out:\n    notebook "bad.ipynb"\n', **{"bad.ipynb": "{"})),
    "notebook-same-local": Case(df('dataset a = "a.csv"\ndataset b = "b/a.csv"\n'
                                   'out: a b as a\n    notebook "nb.py"\n', **NB)),
    "notebook-one-output": Case(df('out more:\n    notebook "nb.py"\n', **NB)),
    "notebook-keyed-output": Case(df('dataset raw = "raw/{key}.csv"\n'
                                     'dataset out = "out/{key}.html"\n'
                                     'out[key]: raw[key]\n    notebook "nb.py"\n', **NB)),
    "notebook-not-html": Case(df('dataset out = "out.json"\nout:\n    notebook "nb.py"\n',
                                 **NB)),
    "notebook-extra": Case(df('out:\n    notebook "nb.py"\n', **NB), args=(),
                           setup=_no_module_found("nbclient")),
    # -- at run time
    "not-built": Case(df("out:\n    1\n"), api=lambda p: _project(p).load("out")),
    "storage": Case(df('dataset raw = "raw.csv"\nout: raw\n    raw\n'),
                    api=lambda p: _project(p).load("raw")),
    "state": Case(df("out:\n    1\n", **{".datamake": "a file"}), args=()),
}


def _eacces(path, limit):
    raise PermissionError(13, "Permission denied")


def _built_twice(mp, path: Path) -> dict[str, str]:
    """Two versions saved in the same year (their ids both start with it)."""
    import time

    _built_versions(mp, path)
    (path / "Datafile").write_text(textwrap.dedent(VERSIONED["Datafile"]).replace(
        '"rows": 1', '"rows": 2'))
    _built_versions(mp, path)
    return {"YEAR": time.strftime("%Y", time.gmtime())}



def _hold_port() -> dict[str, str]:
    """A port taken by a listening socket (closed when the test's folder goes)."""
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    _HELD.append(s)
    return {"PORT": str(s.getsockname()[1])}


_HELD: list = []


def _run(case: Case, path: Path, mp) -> tuple[str, list[str], int]:
    """The rendered text, the codes told and the exit code."""
    for rel, body in case.files.items():
        f = path / rel
        f.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(body, bytes):
            f.write_bytes(body)
        else:
            f.write_text(textwrap.dedent(body).lstrip("\n"))
    mp.chdir(path)
    mp.setenv("NO_COLOR", "1")
    told: list[str] = []
    shown = Reporter.diagnostics

    def spy(self, diags: list[Diagnostic]) -> None:
        told.extend(d.code for d in diags)
        shown(self, diags)

    mp.setattr(Reporter, "diagnostics", spy)
    subs = (case.setup(mp, path) if case.setup else None) or {}
    if case.direct or case.api:
        err = io.StringIO()
        try:
            if case.direct:
                raise case.direct()
            case.api(path)
        except DatamakeError as e:
            Reporter(err=err).error(e)
            return err.getvalue(), told, e.exit_code
        return "", told, 0
    args = [subs.get(a, a) for a in case.args]
    result = CliRunner().invoke(cli.main, args, catch_exceptions=False)
    return result.stderr, told, result.exit_code


def _normal(text: str, path: Path) -> str:
    """The text without what changes from run to run: the folder, versions' times."""
    import re

    text = text.replace(str(path.resolve()), "<tmp>").replace(str(path), "<tmp>")
    text = re.sub(r"\b127\.0\.0\.1:\d+", "127.0.0.1:<port>", text)  # a port the test took
    text = re.sub(r"`20\d\d` matches", "`<year>` matches", text)  # a prefix of this year's ids
    return re.sub(r"\b\d{8}T\d{6}\.\d{3}Z\b", "<version>", text)


@pytest.mark.parametrize("code", sorted(CASES))
def test_message(code, tmp_path, monkeypatch):
    try:
        text, told, exit_code = _run(CASES[code], tmp_path, monkeypatch)
    finally:
        formats._plugins.cache_clear()
        while _HELD:
            _HELD.pop().close()
    text = _normal(text, tmp_path)
    assert code in told, f"{code} not told; told {told}:\n{text}"
    if messages.MESSAGES[code].severity == "warning":
        assert exit_code == 0, text
    else:  # a failure at run time exits 1, a wrong Datafile or command line 2
        assert exit_code == (1 if code in ("storage", "not-built") else 2), text
    golden = GOLDEN / f"{code}.txt"
    if os.environ.get("DATAMAKE_GOLDEN") == "write":
        golden.parent.mkdir(exist_ok=True)
        golden.write_text(text)
    assert text == golden.read_text()


def test_every_code_has_a_case_and_a_golden_file():
    assert sorted(CASES) == sorted(messages.MESSAGES)
    assert sorted(p.stem for p in GOLDEN.glob("*.txt")) == sorted(messages.MESSAGES)


def test_every_code_is_documented():
    doc = (Path(__file__).parent.parent / "docs" / "errors.md").read_text()
    listed = {line.split("`")[1] for line in doc.splitlines() if line.startswith("| `")}
    assert listed == set(messages.MESSAGES)


def test_a_diagnostic_has_a_known_code():
    with pytest.raises(ValueError, match="no message has the code"):
        Diagnostic("made-up", "error", "text")
    with pytest.raises(KeyError):
        error("made-up")
    with pytest.raises(KeyError):
        UsageError("made-up")


def test_help_falls_back_when_a_field_is_missing():
    assert messages.text("unknown-name", name="x", best="y")[1] == "did you mean `y`?"
    assert messages.text("unknown-name", name="x", best=None)[1] == \
        "declare it with `dataset`, `param`, or a rule that writes it"
    assert messages.text("force-unknown", name="x", best=None)[1] is None


def test_check_json_lists_codes(tmp_path, monkeypatch):
    import json

    (tmp_path / "Datafile").write_text('dataset raw = "raw.csv"\nout: rwa\n    rwa\n')
    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(cli.main, ["--check", "--json"])
    assert r.exit_code == 2
    doc = json.loads(r.stdout)
    assert [(d["code"], d["line"], d["col"], d["message"]) for d in doc["errors"]] == \
        [("unknown-name", 2, 6, "unknown name `rwa`")]
    (tmp_path / "Datafile").write_text('dataset raw = "raw.csv"\nout:\n    1\n')
    r = CliRunner().invoke(cli.main, ["--check", "--json"])
    assert r.exit_code == 0
    assert [d["code"] for d in json.loads(r.stdout)["warnings"]] == ["unused-dataset"]
