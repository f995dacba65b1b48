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
from datamake import graph, loader, parser
from datamake.errors import DatafileError
from datamake.console import Reporter


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
        graph.build(loader.load("Datafile", "Datafile"))
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


def test_deep_unary_parameter(tmp_path):
    # Python's parser runs out of stack (RecursionError) on 5,000 unary minuses.
    assert rendered(tmp_path, {"Datafile": "param p = " + "-" * 5000 + "1\n"}) == (
        "Datafile:1:11: error: the value of parameter `p` is nested more than 200 levels deep\n"
        "  |\n"
        "1 | param p = " + "-" * 110 + "...\n"
        "  |           " + "^" * 110 + "\n"
        f"help: {DEEP}\n")


def test_long_sum_parameter(tmp_path):
    assert rendered(tmp_path, {"Datafile": "param p = " + "+".join(["1"] * 50_000) + "\n"}) == (
        "Datafile:1:11: error: the value of parameter `p` is nested more than 200 levels deep\n"
        "  |\n"
        "1 | param p = " + "1+" * 55 + "...\n"
        "  |           " + "^" * 110 + "\n"
        f"help: {DEEP}\n")


def test_deeply_nested_valid_python_in_a_recipe(tmp_path):
    # Valid Python that Python itself compiles (1,000 terms) is refused at the 201st level,
    # before anything recurses over it (compiling, fingerprinting).
    text = "out:\n    x = 1\n    " + " + ".join(["x"] * 1000) + "\n"
    assert rendered(tmp_path, {"Datafile": text}) == (
        "Datafile:3:5: error: the recipe of `out` is nested more than 200 levels deep\n"
        "  |\n"
        "3 |     " + "x + " * 29 + "...\n"
        "  |     " + "^" * 116 + "\n"
        f"help: {SPLIT}\n")


def test_recipe_too_deep_for_pythons_parser(tmp_path):
    # RecursionError inside `ast.parse`: no node to point at, so the longest line.
    text = "out:\n    x = 1\n    y = " + "-" * 5000 + "x\n    y\n"
    assert rendered(tmp_path, {"Datafile": text}) == (
        "Datafile:3:5: error: the recipe of `out` is nested more than 200 levels deep\n"
        "  |\n"
        "3 |     y = " + "-" * 112 + "...\n"
        "  |     " + "^" * 116 + "\n"
        f"help: {SPLIT}\n")


def test_200_nested_brackets_in_a_recipe(tmp_path):
    # CPython's parser raises MemoryError ("too many nested parentheses" nearby).
    text = "out:\n    " + "[1, " * 200 + "]" * 200 + "\n"
    assert rendered(tmp_path, {"Datafile": text}) == (
        "Datafile:2:5: error: the recipe of `out` is nested more than 200 levels deep\n"
        "  |\n"
        "2 |     " + "[1, " * 29 + "...\n"
        "  |     " + "^" * 116 + "\n"
        f"help: {SPLIT}\n")


def test_deep_python_block(tmp_path):
    text = "python:\n    x = 1\n    y = " + " + ".join(["x"] * 300) + "\nout:\n    1\n"
    assert rendered(tmp_path, {"Datafile": text}) == (
        "Datafile:3:9: error: the `python:` block is nested more than 200 levels deep\n"
        "  |\n"
        "3 |     y = " + "x + " * 28 + "...\n"
        "  |         " + "^" * 112 + "\n"
        f"help: {SPLIT}\n")


WHERE = 'help: a location is a file or folder of its own, e.g. `"data/01_raw/NAME.csv"`'


@pytest.mark.parametrize("location,message,hint", [
    ("", "an empty location", WHERE),
    ("/", "`/` names the root of the filesystem, not a dataset", WHERE),
    (".", "`.` names the Datafile's own folder, not a dataset", WHERE),
    ("./", "`./` names the Datafile's own folder, not a dataset", WHERE),
    ("..", "`..` names a folder above the Datafile, not a dataset", WHERE),
    ("~", "`~` names a home folder, not a dataset", WHERE),
    ("file://", "`file://` names the Datafile's own folder, not a dataset", WHERE),
    ("{id}", "`{id}` has nothing but placeholders: its partitions would be every file in "
             "the folder",
     'help: put the partitions in a folder of their own, e.g. `"data/NAME/{key}.csv"`'),
    ("${}", "`${` starts no environment variable",
     "help: write `${NAME}` (a letter or `_`, then letters, digits or `_`)"),
    ("data/${HOME", "`${` starts no environment variable",
     "help: write `${NAME}` (a letter or `_`, then letters, digits or `_`)"),
    ("s3://", "`s3://` has no path", 'help: name the object, e.g. `"s3://bucket/data/NAME.csv"`'),
    ("s3://{bucket}", "`s3://{bucket}` has nothing but placeholders after `s3://`",
     'help: name the object, e.g. `"s3://bucket/data/NAME.csv"`'),
    ("data/{a}{b}.csv", "two placeholders side by side in `data/{a}{b}.csv` cannot be told apart",
     "help: put a separator between them, e.g. `{a}_{b}`"),
    (".datamake/data/x.pkl", "`.datamake/data/x.pkl` is inside `.datamake/`, datamake's own "
                             "folder", "help: choose a location outside it"),
])
def test_degenerate_locations(tmp_path, location, message, hint):
    line = f'dataset a = "{location}"'
    assert rendered(tmp_path, {"Datafile": f"{line}\nout: a\n    a\n"}) == (
        f"Datafile:1:13: error: {message}\n"
        f"  |\n"
        f"1 | {line}\n"
        f"  |             {'^' * (len(location) + 2)}\n"
        f"{hint}\n")


def test_a_location_emptied_by_the_environment_is_a_clear_failure(proj):
    # Checked again once `${VAR}` is expanded (it was an IndexError).
    proj.write("Datafile", 'dataset a = "${DM_WHERE}"\nout: a\n    a\n')
    r = proj.run(env=clean_env(DM_WHERE=""))
    assert r.code == 1
    assert re.sub(r"\d+\.\d\ds", "T", r.err) == expect("""
        FAILED out  T
        datamake: error: dataset `a` at `${DM_WHERE}`: an empty location
        help: check the environment variables it names; a location is a file or folder of its own, e.g. `"data/01_raw/NAME.csv"`
        datamake: 1 failed in T
        datamake: fix the error, then run `datamake` to resume
    """)


PLAIN = "help: a params file holds plain settings; keep data in datasets, which rules read"


def params_error(file: str, message: str, hint: str = PLAIN) -> str:
    line = f'params "{file}"'
    return (f"Datafile:1:8: error: {message}\n"
            f"  |\n"
            f"1 | {line}\n"
            f"  |        {'^' * (len(file) + 2)}\n"
            f"{hint}\n")


def test_params_from_a_device_or_a_pipe_are_never_read(tmp_path):
    assert rendered(tmp_path, {"Datafile": 'params "/dev/zero"\n'}) == params_error(
        "/dev/zero", "params file `/dev/zero` is not a regular file",
        "help: name a YAML, TOML or JSON file")
    os.symlink("/dev/zero", tmp_path / "zero.yaml")
    assert rendered(tmp_path, {"Datafile": 'params "zero.yaml"\n'}) == params_error(
        "zero.yaml", "params file `zero.yaml` is not a regular file",
        "help: name a YAML, TOML or JSON file")
    os.mkfifo(tmp_path / "fifo.json")  # opening it for reading must not wait for a writer
    assert rendered(tmp_path, {"Datafile": 'params "fifo.json"\n'}) == params_error(
        "fifo.json", "params file `fifo.json` is not a regular file",
        "help: name a YAML, TOML or JSON file")


def test_params_file_size_limit(tmp_path):
    text = '{"a": "' + "x" * 1_000_000 + '"}'
    assert rendered(tmp_path, {"Datafile": 'params "conf.json"\n', "conf.json": text}) == \
        params_error("conf.json", "params file `conf.json` is larger than 1,000,000 bytes")


BOMB = "\n".join(['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]'] + [
    f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 10)]) + "\n"


def test_yaml_alias_bomb(tmp_path):
    # A billion laughs in 700 bytes: loading shares the parts, but fingerprinting the
    # parameter (its repr) would expand them all and never end.
    assert len(BOMB) < 1024
    assert rendered(tmp_path, {"Datafile": 'params "conf.yaml"\n', "conf.yaml": BOMB}) == \
        params_error("conf.yaml", "params file `conf.yaml` holds more than 1,000,000 values "
                                  "once shared parts (YAML aliases) are counted each time "
                                  "they appear")


def test_yaml_alias_inside_its_own_anchor(tmp_path):
    assert rendered(tmp_path, {"Datafile": 'params "conf.yaml"\n',
                               "conf.yaml": "a: &a [1, *a]\n"}) == \
        params_error("conf.yaml", "params file `conf.yaml` contains itself (a YAML alias "
                                  "inside its own anchor)")


@pytest.mark.parametrize("file,text", [
    ("conf.json", '{"a": ' + "[" * 5000 + "]" * 5000 + "}"),  # the parser gives up
    ("conf.json", '{"a": ' + "[" * 300 + "]" * 300 + "}"),  # loads, too deep to use
    ("conf.toml", "a = " + "[" * 5000 + "]" * 5000 + "\n"),
    ("conf.yaml", "a: " + "[" * 300 + "]" * 300 + "\n"),  # (libyaml refuses 1,000)
])
def test_params_file_nested_too_deeply(tmp_path, file, text):
    assert rendered(tmp_path, {"Datafile": f'params "{file}"\n', file: text}) == \
        params_error(file, f"params file `{file}` is nested more than 200 levels deep")


def test_params_file_key_too_long_for_a_name(tmp_path):
    key = "k" * 101
    assert rendered(tmp_path, {"Datafile": 'params "conf.json"\n',
                               "conf.json": f'{{"{key}": 1}}'}) == params_error(
        "conf.json", f"params file `conf.json`: key `{key}` is not a valid name",
        "help: top-level keys become parameter names (Python identifiers of at most 100 "
        "characters)")


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


def test_a_name_of_100000_characters(tmp_path):
    assert rendered(tmp_path, {"Datafile": "param " + "n" * 100_000 + " = 1\n"}) == (
        "Datafile:1:7: error: a name of 100000 characters (at most 100)\n"
        "  |\n"
        "1 | param " + "n" * 114 + "...\n"
        "  |       " + "^" * 114 + "\n"
        "help: a name becomes a file name (`.datamake/data/NAME.pkl`): choose a shorter one\n")


def test_a_datafile_over_the_size_limit(tmp_path):
    assert rendered(tmp_path, {"Datafile": "# " + "x" * 4_000_000 + "\nall:\n"}) == (
        "datamake: error: `Datafile` is larger than 4 MB\n"
        "help: a Datafile this big is not written by hand: generate fewer, bigger rules (a "
        "pattern rule covers many partitions)\n")


def test_a_datafile_that_is_not_utf8(tmp_path):
    assert rendered(tmp_path, {"Datafile": "param city = 'Zürich'\n".encode("latin-1")}) == (
        "Datafile:1:16: error: `Datafile` is not UTF-8 text: byte 0xfc (invalid start byte)\n"
        "  |\n"
        "1 | param city = 'Z\ufffdrich'\n"
        "  |                ^\n"
        "help: a Datafile is UTF-8 text: save it as UTF-8\n")


def test_old_mac_line_ends_and_a_byte_order_mark(tmp_path):
    # A lone \r ends a line, as in Python (it made an error point at a line that the
    # message could not show); a UTF-8 byte-order mark is not part of the first line.
    assert rendered(tmp_path, {"Datafile": "param n = 1\rall: nope\r"}) == (
        "Datafile:2:6: error: unknown name `nope`\n"
        "  |\n"
        "2 | all: nope\n"
        "  |      ^^^^\n"
        "help: declare it with `dataset`, `param`, or a rule that writes it\n")
    assert rendered(tmp_path, {"Datafile": "\ufeffparam n = 1\r\nall: nn\r\n".encode()}) == (
        "Datafile:2:6: error: unknown name `nn`\n"
        "  |\n"
        "2 | all: nn\n"
        "  |      ^^\n"
        "help: did you mean `n`?\n")
    df = parser.parse_text("\ufeffparam n = 1\rall: n\r")
    assert [p.name for p in df.params] == ["n"]


def test_binary_junk_and_nul_bytes(tmp_path):
    assert rendered(tmp_path, {"Datafile": b"all: x\n\x89PNG\r\n\x1a\n\x00\x00"}) == (
        "Datafile:2:1: error: `Datafile` is not UTF-8 text: byte 0x89 (invalid start byte)\n"
        "  |\n"
        "2 | \ufffdPNG\n"
        "  | ^\n"
        "help: a Datafile is UTF-8 text: save it as UTF-8\n")
    assert rendered(tmp_path, {"Datafile": "all: x\0y\n"}) == (
        "Datafile:1:7: error: a NUL character in the Datafile\n"
        "  |\n"
        "1 | all: x\ufffdy\n"
        "  |       ^\n"
        "help: a Datafile is text; is this a binary file?\n")


def test_control_characters_are_never_written_raw(tmp_path):
    # An escape sequence in the Datafile must not reach the terminal as one.
    assert rendered(tmp_path, {"Datafile": "all: x \x1b[2Jy\n"}) == (
        "Datafile:1:8: error: unexpected `\\x1b[2Jy`\n"
        "  |\n"
        "1 | all: x \ufffd[2Jy\n"
        "  |        ^^^^^\n"
        "help: expected `.`, `@`, `[`, a name or the end of the line\n")


def test_a_bad_escape_in_a_quoted_string(tmp_path):
    text = 'dataset a = "data/\\N{nope}.csv"\nout: a\n    a\n'
    assert rendered(tmp_path, {"Datafile": text}) == (
        "Datafile:1:13: error: invalid escape in a quoted string: unknown Unicode character "
        "name\n"
        "  |\n"
        '1 | dataset a = "data/\\N{nope}.csv"\n'
        "  |             ^^^^^^^^^^^^^^^^^^^\n"
        "help: write a backslash as `\\\\` (or `/` in a path)\n")


@pytest.mark.parametrize("files", [
    {"Datafile": "param p = " + "-" * 5000 + "1\nall: p\n"},
    {"Datafile": "out:\n    " + "[1, " * 200 + "]" * 200 + "\n"},
    {"Datafile": 'dataset a = ""\nout: a\n    a\n'},
    {"Datafile": 'params "/dev/zero"\nall:\n'},
    {"Datafile": 'params "conf.yaml"\nall:\n', "conf.yaml": BOMB},
    {"Datafile": "all: " + " ".join(f"u{i}" for i in range(20_000)) + "\n"},
    {"Datafile": b"\xff\xfe\x00\x01junk"},
], ids=["unary", "brackets", "empty location", "/dev/zero", "yaml bomb", "20000 names",
        "binary"])
def test_the_command_line_exits_2_with_the_same_text(proj, files):
    expected = rendered(proj.root, files)
    for args in (("--check",), (), ("-n",)):
        r = proj.run(*args, timeout=60)  # a hang guard: each takes well under a second
        assert (r.code, r.out, r.err) == (2, "", expected), args


def test_a_dataset_that_is_a_device_or_a_pipe_is_never_read(proj):
    # Hashing or loading /dev/zero never ends, and a named pipe blocks until a writer
    # comes: each is a clear failure of the step that reads it, never a hang.
    import datamake

    os.mkfifo(proj.path("fifo"))
    proj.write("Datafile", """
        dataset z = "/dev/zero" as text
        dataset f = "fifo" as text

        out: z
            z[:3]
        out2: f
            f[:3]
    """)
    r = proj.run("-k", "out", "out2", timeout=60)
    assert r.code == 1
    for name, shown in (("z", os.path.relpath("/dev/zero", proj.root)), ("f", "fifo")):
        assert (f"datamake: error: dataset `{name}` at `{shown}` is not a file (a device, a "
                f"pipe or a socket): datamake reads only files and folders\n"
                f"help: point the dataset at a file or a folder\n") in r.err
    assert "Traceback" not in r.err
    with pytest.raises(datamake.errors.CatalogError, match="is not a file"):
        datamake.load("f", str(proj.path("Datafile")))
