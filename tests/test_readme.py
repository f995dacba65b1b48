"""The README works verbatim: every command it shows runs, as printed, from a fresh
copy of the repository (its tracked files), in the order the README shows them."""
from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, clean_env

README = (REPO / "README.md").read_text()

# Setup commands the README shows that need the network or are this very suite: they are
# not run here (the `datamake` commands chained after them are).
NOT_RUN = {"python3 -m venv .venv", ". .venv/bin/activate", "pip install -U pip",
           'pip install -e ".[example]"', 'pip install -e ".[dev]"', "python -m pytest"}
# Commands that serve until Ctrl-C: started, awaited until they say they are ready, stopped.
SERVES = {"--watch": "waiting for changes", "--ui": "Ctrl-C stops"}


def shown() -> tuple[list[tuple[str, list[str]]], list[str], list[str]]:
    """The README's shell commands in order (each with the output lines shown under it),
    the setup commands skipped, and its Python snippets."""
    commands: list[tuple[str, list[str]]] = []
    skipped: list[str] = []
    python: list[str] = []
    for m in re.finditer(r"^```(\w*)\n(.*?)^```|^\| `(datamake [^`]*)` \|", README, re.M | re.S):
        lang, body, row = m.group(1), m.group(2), m.group(3)
        if row:
            commands.append((row, []))
        elif lang == "python":
            python.append(body)
        elif lang == "sh":
            for line in body.splitlines():
                if line.startswith("$ "):
                    commands.append((line[2:], []))
                elif line.startswith("mkdir ") or "&&" in line:
                    parts = [p.strip() for p in line.split("&&")]
                    skipped += [p for p in parts if p in NOT_RUN]
                    run = [p for p in parts if p not in NOT_RUN]
                    if run:
                        commands.append((" && ".join(run), []))
                elif line in NOT_RUN:
                    skipped.append(line)
                elif commands:
                    commands[-1][1].append(line)
    return commands, skipped, python


@pytest.fixture(scope="module")
def clone(tmp_path_factory) -> Path:
    """A fresh copy of the repository's tracked files (what a clone holds)."""
    root = tmp_path_factory.mktemp("clone")
    files = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True,
                           check=True).stdout.decode().split("\0")
    for rel in filter(None, files):
        src = REPO / rel
        if src.is_file():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, root / rel)
    return root


def env_for(root: Path) -> dict[str, str]:
    # `datamake` is this interpreter's entry point; the copy's package comes first.
    bin_dir = str(Path(sys.executable).parent)
    return clean_env(PYTHONPATH=str(root), PATH=bin_dir + os.pathsep + os.environ["PATH"])


def test_the_readme_shows_commands_and_only_known_setup_is_skipped():
    commands, skipped, python = shown()
    assert len(commands) >= 20 and python
    assert set(skipped) <= NOT_RUN
    assert not re.search(r"SPEC", README)
    # Every command run from the clone's root names the example's Datafile (there is no
    # `Datafile` there) or a folder that has one.
    for cmd, _ in commands:
        if cmd.startswith("datamake"):
            assert "-f Datafile.example" in cmd or "-C examples/" in cmd, cmd


def test_every_readme_command_works_as_printed(clone):
    commands, _, python = shown()
    env = env_for(clone)
    for cmd, output in commands:
        serving = next((w for flag, w in SERVES.items() if flag in shlex.split(cmd)), None)
        if serving:
            proc = subprocess.Popen(["bash", "-c", "exec " + cmd], cwd=clone, env=env, text=True,
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            seen = []
            for line in proc.stdout:
                seen.append(line)
                if serving in line:
                    break
            # Ctrl-C, as a user stops it (again, should the first come while the server
            # is still starting up and installing its own handler).
            rest = ""
            for _ in range(6):
                proc.send_signal(signal.SIGINT)
                try:
                    rest, _ = proc.communicate(timeout=10)
                    break
                except subprocess.TimeoutExpired:
                    continue
            else:
                proc.kill()
                pytest.fail(f"{cmd}: Ctrl-C did not stop it")
            assert any(serving in ln for ln in seen), f"{cmd}\n{''.join(seen)}{rest}"
            assert proc.returncode in (0, 130), f"{cmd}: exit {proc.returncode}\n{rest}"
            continue
        r = subprocess.run(["bash", "-c", cmd], cwd=clone, env=env, capture_output=True,
                           text=True, timeout=600)
        assert r.returncode == 0, f"{cmd}: exit {r.returncode}\n{r.stdout}\n{r.stderr}"
        # What the README shows under a command is what it prints (times and version
        # ids differ from run to run; `...` stands for lines left out).
        got = (r.stdout + r.stderr).splitlines()
        for line in output:
            if line.strip() == "..." or re.search(r"\d\.\d\ds|\d{8}T\d{6}", line):
                continue
            assert line in got, f"{cmd}: the README shows {line!r}; it printed:\n" + "\n".join(got)
    for snippet in python:
        r = subprocess.run([sys.executable, "-c", snippet], cwd=clone, env=env,
                           capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, f"{snippet}\n{r.stderr}"


def test_the_readme_builds_a_second_report_version_for_diff():
    commands = [c for c, _ in shown()[0]]
    diff = next(i for i, c in enumerate(commands) if "--diff report" in c)
    builds = [c for c in commands[:diff] if c.startswith("datamake -f Datafile.example")
              and not {"--explain", "-n", "--list", "-q", "--check"} & set(c.split())]
    params = {tuple(a for a in c.split() if "=" in a) for c in builds}
    assert len(params) >= 2, builds  # two builds with different parameters: two versions


def test_the_readme_lists_the_examples_that_are_there():
    layout = README.split("## Layout", 1)[1]
    for folder in (REPO / "examples").iterdir():
        if folder.is_dir() and not folder.name.startswith(("_", ".")):
            assert folder.name in layout, folder.name
