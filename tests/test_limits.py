"""Inputs past every limit end in `FILE:LINE:COL: error:` (or `datamake: error:`), exit
2: deep or huge expressions, degenerate locations, hostile params files, floods of
errors, giant lines and names, binary Datafiles. Never a traceback, a hang, or memory or
output without bound. The whole rendered text is compared, as the CLI prints it."""
from __future__ import annotations

import io
import os
import re
import textwrap

import pytest

from conftest import clean_env
from datamake import graph, parser
from datamake.errors import DatafileError
from datamake.reporter import Reporter


def rendered(root, files: dict[str, str | bytes]) -> str:
    """What `datamake --check` prints on stderr for these files (in-process: the same
    parse, checks and reporter)."""
    for name, text in files.items():
        path = root / name
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text)
    cwd = os.getcwd()
    os.chdir(root)
    try:
        graph.build(parser.load("Datafile", "Datafile"))
    except DatafileError as e:
        err = io.StringIO()
        Reporter(out=io.StringIO(), err=err).error(e)
        return err.getvalue()
    finally:
        os.chdir(cwd)
    raise AssertionError("no error")


def expect(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


DEEP = "a parameter's value is a Python literal; compute anything deeper in a rule"
SPLIT = "split the expression into several statements"


WHERE = 'help: a location is a file or folder of its own, e.g. `"data/01_raw/NAME.csv"`'


PLAIN = "help: a params file holds plain settings; keep data in datasets, which rules read"


def params_error(file: str, message: str, hint: str = PLAIN) -> str:
    line = f'params "{file}"'
    return (f"Datafile:1:8: error: {message}\n"
            f"  |\n"
            f"1 | {line}\n"
            f"  |        {'^' * (len(file) + 2)}\n"
            f"{hint}\n")


BOMB = "\n".join(['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]'] + [
    f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 10)]) + "\n"


def test_20000_errors_on_one_line_print_20_and_a_count(tmp_path):
    text = "all: " + " ".join(f"u{i}" for i in range(20_000)) + "\n"
    out = rendered(tmp_path, {"Datafile": text})
    line = text.rstrip("\n")
    want = []
    col = 6
    for i in range(20):
        name = f"u{i}"
        start = max(0, min(col - 1 - 40, len(line) - 120))
        lead = "..." if start else ""
        shown = lead + line[start:start + 120] + "..."
        want.append(f"Datafile:1:{col}: error: unknown name `{name}`\n"
                    f"  |\n"
                    f"1 | {shown}\n"
                    f"  | {' ' * (col - 1 - start + len(lead))}{'^' * len(name)}\n"
                    f"help: declare it with `dataset`, `param`, or a rule that writes it\n")
        col += len(name) + 1
    want.append("datamake: ... and 19980 more errors\n")
    want.append("datamake: 20000 errors\n")
    assert out == "".join(want)
    assert len(out) < 10_000  # was 3.8 GB: the 100 KB line, 20,000 times


def test_a_100_kb_line_is_shown_as_a_window_around_the_caret(tmp_path):
    text = "param n = 1\nall: " + "n " * 50_000 + "nope\n"
    assert rendered(tmp_path, {"Datafile": text}) == (
        "Datafile:2:100006: error: unknown name `nope`\n"
        "  |\n"
        "2 | ..." + "n " * 58 + "nope\n"
        "  | " + " " * 119 + "^^^^\n"
        "help: declare it with `dataset`, `param`, or a rule that writes it\n")


def test_control_characters_are_never_written_raw(tmp_path):
    # An escape sequence in the Datafile must not reach the terminal as one.
    assert rendered(tmp_path, {"Datafile": "all: x \x1b[2Jy\n"}) == (
        "Datafile:1:8: error: unexpected `\\x1b[2Jy`\n"
        "  |\n"
        "1 | all: x \ufffd[2Jy\n"
        "  |        ^^^^^\n"
        "help: expected `.`, `@`, `[`, a name or the end of the line\n")
