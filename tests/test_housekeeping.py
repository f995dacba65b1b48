"""--clean, --init, --runs, --log-file and shell completion."""
from __future__ import annotations

import json
import os
import subprocess
import sys

from conftest import REPO, clean_env

from datamake.cli import main

PIPELINE = """
dataset raw    = "raw.json"
dataset mid    = "out/mid.json"
dataset report = "out/report.json" versioned
dataset pages  = "in/{k}.txt"
dataset parts  = "out/parts/{k}.txt"

## The first step.
mid: raw
    [x * 2 for x in raw]

report: mid
    {"n": len(mid)}

parts[k]: pages[k]
    pages.upper()
"""


def test_clean_removes_what_was_built_never_a_source(proj):
    proj.write("Datafile", PIPELINE)
    proj.write("raw.json", "[1, 2]")
    proj.write("in/a.txt", "a")
    proj.write("in/b.txt", "b")
    assert proj.built("mid", "report", "parts") == ["mid", "report", "parts[a]", "parts[b]"]
    proj.write("raw.json", "[1, 2, 3]")
    assert proj.built("report") == ["mid", "report"]  # a second version of `report`
    versions = os.listdir(proj.path("out/.versions/report.json"))
    assert len(versions) == 2
    r = proj.run("-n", "--clean")
    assert r.code == 0, r.err
    shown = [ln.split("  ", 1)[1] for ln in r.out.splitlines() if ln.startswith("would remove")]
    assert sorted(shown) == sorted(["out/mid.json", "out/report.json", "out/parts/a.txt",
                                    "out/parts/b.txt"] +
                                   [f"out/.versions/report.json/{v}" for v in versions])
    assert proj.path("out/mid.json").exists()  # -n removes nothing
    doc = proj.run("--clean", "--json").json
    assert sorted(doc["removed"]) == sorted(shown) and doc["records"] == 4
    assert proj.read("raw.json") == "[1, 2, 3]"
    assert sorted(os.listdir(proj.path("in"))) == ["a.txt", "b.txt"]  # sources stay
    assert os.listdir(proj.path("out/parts")) == []
    assert not proj.path("out/mid.json").exists() and not proj.path("out/report.json").exists()
    assert os.listdir(proj.path("out/.versions/report.json")) == []
    # Nothing recorded, nothing cached: everything is built again, not restored.
    assert proj.built("mid", "report") == ["mid", "report"]


def test_clean_is_an_option_not_a_target(proj):
    proj.write("Datafile", 'dataset out = "out.txt"\nclean:\n    "mine"\n'
                           'out: clean\n    clean + "!"\n')
    assert proj.built("clean") == ["clean"]  # the user's own `clean` rule
    assert proj.built("out") == ["out"]
    r = proj.run("--clean")
    assert r.code == 0 and "removed  out.txt" in r.out.splitlines()


def test_init_scaffolds_a_project_that_builds_and_tests_at_once(tmp_path):
    env = clean_env(PYTHONPATH=str(REPO))
    r = subprocess.run([sys.executable, "-m", "datamake", "--init"], cwd=tmp_path, env=env,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    for f in ("Datafile", "nodes.py", "tests/test_nodes.py", ".gitignore",
              "data/01_raw/numbers.json", "data/08_reporting/.gitkeep"):
        assert (tmp_path / f).exists(), f
    layers = sorted(p.name for p in (tmp_path / "data").iterdir())
    assert layers == ["01_raw", "02_intermediate", "03_primary", "04_feature",
                      "05_model_input", "06_models", "07_model_output", "08_reporting"]
    r = subprocess.run([sys.executable, "-m", "datamake", "--json"], cwd=tmp_path, env=env,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["built"] == ["scaled", "summary"]
    assert json.loads((tmp_path / "data/08_reporting/summary.json").read_text())["sum"] == 30
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
                       cwd=tmp_path, env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_init_never_overwrites(tmp_path):
    (tmp_path / "nodes.py").write_text("mine")
    env = clean_env(PYTHONPATH=str(REPO))
    r = subprocess.run([sys.executable, "-m", "datamake", "--init"], cwd=tmp_path, env=env,
                       capture_output=True, text=True)
    assert r.returncode == 2
    assert r.stderr.startswith("datamake: error: --init: `nodes.py` exists already; "
                               "nothing written\n")
    assert sorted(os.listdir(tmp_path)) == ["nodes.py"]
    assert (tmp_path / "nodes.py").read_text() == "mine"


def test_runs_and_one_steps_runs(proj):
    proj.write("Datafile", 'dataset a = "a.txt"\na: n\n    str(n)\nbad:\n    1 / 0\n')
    proj.write("Datafile", 'param n = 1\n' + proj.read("Datafile"))
    assert proj.built("a") == ["a"]
    assert proj.built("a", "n=2") == ["a"]
    assert proj.run("bad").code == 1
    rows = proj.run("--runs", "--json").json
    assert [(r["targets"], r["built"], r["cached"], r["failed"], r["status"]) for r in rows] == [
        (["a"], 1, 0, 0, "ok"), (["a"], 1, 0, 0, "ok"), (["bad"], 0, 0, 1, "failed")]
    text = proj.run("--runs").out.splitlines()
    assert text[0].split() == ["when", "targets", "built", "cached", "failed", "seconds", "status"]
    assert text[3].split()[2:5] == ["bad", "0", "0"]
    doc = proj.run("--runs", "bad", "--json").json
    assert [r["status"] for r in doc["runs"]] == ["failed"]
    assert "ZeroDivisionError" in doc["runs"][-1]["failure"]
    assert [r["status"] for r in proj.run("--runs", "a", "--json").json["runs"]] == ["built"] * 2
    r = proj.run("--runs", "nope")
    assert r.code == 2 and r.err.startswith("datamake: error: --runs: no step named `nope`")


def test_log_file_is_plain_text(proj):
    proj.write("Datafile", 'dataset a = "a.txt"\na:\n    "x"\n')
    env = clean_env(FORCE_COLOR="1")
    env.pop("NO_COLOR")
    r = proj.run("--log-file", "build.log", env=env)
    assert r.code == 0, r.err
    log = proj.read("build.log").splitlines()
    assert log[0].startswith("datamake log: ") and log[0].endswith("datamake --log-file build.log")
    assert log[1:3] == ["run    a  (no-record)", "built  a  " + log[2].split()[-1]]
    assert log[-1].startswith("datamake: 1 built in ")
    assert "\x1b" not in proj.read("build.log")


def complete(args: str, cwd, monkeypatch) -> list[str]:
    """What click's completion answers for the command line `datamake ARGS<Tab>`."""
    from click.testing import CliRunner

    monkeypatch.chdir(cwd)
    line = "datamake " + args
    r = CliRunner().invoke(main, prog_name="datamake", env={
        "_DATAMAKE_COMPLETE": "bash_complete", "COMP_WORDS": line,
        "COMP_CWORD": str(len(line.split(" ")) - 1)})
    assert r.exit_code == 0 and r.exception is None or isinstance(r.exception, SystemExit), r.output
    return [ln.split(",", 1)[1] for ln in r.output.splitlines() if ln]



def test_completion_of_targets_and_options(proj, monkeypatch):
    proj.write("Datafile", PIPELINE)
    assert complete("", proj.root, monkeypatch) == ["mid", "report", "parts"]
    assert complete("p", proj.root, monkeypatch) == ["parts"]
    assert complete("re", proj.root, monkeypatch) == ["report"]
    assert complete("--cl", proj.root, monkeypatch) == ["--clean"]
    assert complete("--runs m", proj.root, monkeypatch) == ["mid"]
    proj.write("sub/Other", "other_rule:\n    1\n")
    assert complete("-C sub -f Other o", proj.root, monkeypatch) == ["other_rule"]


def test_completion_without_a_datafile_completes_nothing(tmp_path, monkeypatch):
    assert complete("re", tmp_path, monkeypatch) == []
    assert "--init" in complete("--i", tmp_path, monkeypatch)


def test_completion_scripts_for_each_shell():
    for shell in ("bash", "zsh", "fish"):
        r = subprocess.run([sys.executable, "-c", "from datamake.cli import entry; entry()"],
                           env=clean_env(PYTHONPATH=str(REPO),
                                         _DATAMAKE_COMPLETE=f"{shell}_source"),
                           capture_output=True, text=True)
        assert r.returncode == 0 and "_DATAMAKE_COMPLETE" in r.stdout, (shell, r.stderr)


def test_runs_of_a_step_show_its_peak_memory(proj):
    # A step that holds 300 MB peaks at least that high; a step that holds nothing peaks
    # far lower, whether steps run in the build's process or in forked workers.
    proj.write("Datafile", 'dataset big = "big.txt"\ndataset small = "small.txt"\n'
               "big:\n    b = bytearray(300 * 2**20)\n    b[::4096] = b'x' * len(b[::4096])\n"
               "    str(len(b))\n"
               "small:\n    'tiny'\n")
    for jobs, again in (("-j1", ""), ("-j2", "x")):
        if again:
            proj.run("--clean")
        assert sorted(proj.built(jobs, "big", "small")) == ["big", "small"]
        big = proj.run("--runs", "big", "--json").json["runs"][-1]
        small = proj.run("--runs", "small", "--json").json["runs"][-1]
        assert big["peak_mb"] >= 300, (jobs, big)
        assert small["peak_mb"] < big["peak_mb"] - 200, (jobs, small, big)
    text = proj.run("--runs", "big").out.splitlines()
    assert text[1].split() == ["when", "status", "seconds", "peak", "MB"]
    assert float(text[-1].split()[-1]) >= 300
    # Restored from the local cache: nothing ran, so no peak is shown.
    os.remove(proj.path("big.txt"))
    assert proj.build("big")["cached"] == ["big"]
    last = proj.run("--runs", "big", "--json").json["runs"][-1]
    assert (last["status"], last["peak_mb"]) == ("cached", None)
