"""Shell recipes: each `$ ` line runs with `sh -e`; `{name}` reaches it as data, never
as shell text, wherever it stands (bare, in double quotes, in single quotes)."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from datamake.recipe import RecipeFailure, RecipeInfo, expand_shell, run_shell, shell_env_name

HOSTILE = [
    "$(touch PWNED)", "`touch PWNED`", "a b  c", "it's", 'say "hi"', "a\\b", "*", "$HOME",
    "x; touch PWNED", "x' ; touch PWNED ; '", 'x" ; touch PWNED ; "', "line\nbreak", "-n",
    "${IFS}touch${IFS}PWNED", "!!", "",
]


def echo(tmp_path: Path, command: str, value: str) -> str:
    """What `command` (a shell line with `{v}`) prints with `v` bound to `value`."""
    env = dict(os.environ, **{shell_env_name("v"): value})
    r = subprocess.run(["sh", "-ec", expand_shell(command, {"v": value})], cwd=tmp_path,
                       env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert not (tmp_path / "PWNED").exists(), command
    return r.stdout


@pytest.mark.parametrize("value", HOSTILE)
def test_a_value_is_data_wherever_its_placeholder_stands(tmp_path, value):
    assert echo(tmp_path, "printf '%s|' {v}", value) == value + "|"
    assert echo(tmp_path, 'printf "%s|" "key={v}"', value) == f"key={value}|"
    assert echo(tmp_path, "printf '%s|' 'key={v}'", value) == f"key={value}|"
    assert echo(tmp_path, "printf '%s|' \"$(printf '%s' {v})\"", value) == value + "|"
    assert echo(tmp_path, "printf '%s|' \"a $(printf '%s' \"{v}\") b\"", value) == \
        f"a {value} b|"
    assert echo(tmp_path, "v=`printf '%s.' {v}`; printf '%s|' \"$v\"", value) == \
        value + ".|"


def test_expansion_keeps_literal_braces_and_shell_variables():
    line = "echo ${HOME} {{literal}} {v} '{v}' \"{v}\" {other}"
    assert expand_shell(line, {"v"}) == (
        "echo ${HOME} {literal} \"${dm_v}\" ''\"${dm_v}\"'' \"${dm_v}\" {other}")
    assert expand_shell("echo \"`cat {v}`\" \"$(cat '{v}')\"", {"v"}) == (
        "echo \"`cat \"${dm_v}\"`\" \"$(cat ''\"${dm_v}\"'')\"")


def test_a_failed_line_names_its_datafile_line_and_shows_the_values(tmp_path):
    info = RecipeInfo("shell", "    $ true {v}\n    $ exit 3 # {v}\n", 4, 3, False, (), b"")
    with pytest.raises(RecipeFailure) as e:
        run_shell(info, {"v": "a b"}, tmp_path, "Datafile")
    assert e.value.summary == "Datafile:5: shell command failed (exit status 3)"
    assert e.value.text == ("  File \"Datafile\", line 5\n    $ exit 3 # {v}\n"
                            "shell command failed (exit status 3): exit 3 # 'a b'\n")


def test_a_hostile_file_name_is_never_run_as_shell(proj):
    # A source partition named `$(touch PWNED).txt`, read by a pattern rule whose shell
    # line puts the key inside double quotes (where quoting a value for the bare
    # context does not protect it).
    proj.write("Datafile", """
        dataset books = "books/{name}.txt"
        dataset tags  = "tags/{name}.txt"

        tags[name]: books[name]
            $ echo "key={name}" > {out}
            $ echo 'in={books}' >> {out}
    """)
    proj.write("books/$(touch PWNED).txt", "x")
    proj.write("books/plain.txt", "y")
    r = proj.run("--json")
    assert r.code == 0, r.err
    assert sorted(r.json["built"]) == ["tags[$(touch PWNED)]", "tags[plain]"]
    assert not proj.path("PWNED").exists()
    assert proj.read("tags/$(touch PWNED).txt") == (
        f"key=$(touch PWNED)\nin={proj.path('books/$(touch PWNED).txt')}\n")
