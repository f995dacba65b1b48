"""Shared fixtures: a scratch project folder and a way to run the real `datamake`."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any, NamedTuple

import pytest

REPO = Path(__file__).resolve().parent.parent


class Result(NamedTuple):
    code: int
    out: str
    err: str

    @property
    def json(self) -> Any:
        return json.loads(self.out)


def clean_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["NO_COLOR"] = "1"
    env["COLUMNS"] = "100"
    env.update(extra)
    return env


class Proj:
    """A folder with a Datafile, and `datamake` run in it as a real subprocess."""

    def __init__(self, root: Path):
        self.root = root

    def write(self, rel: str, text: str | bytes, dedent: bool = True) -> Path:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(textwrap.dedent(text).lstrip("\n") if dedent else text)
        return path

    def read(self, rel: str) -> str:
        return (self.root / rel).read_text()

    def path(self, rel: str) -> Path:
        return self.root / rel

    def run(self, *args: str, env: dict[str, str] | None = None, timeout: float = 180,
            cwd: Path | None = None) -> Result:
        proc = subprocess.run([sys.executable, "-m", "datamake", *args], cwd=cwd or self.root,
                              capture_output=True, text=True, env=env or clean_env(),
                              timeout=timeout)
        return Result(proc.returncode, proc.stdout, proc.stderr)

    def build(self, *args: str, code: int = 0) -> dict[str, Any]:
        """A build with --json; asserts its exit code and returns the document."""
        r = self.run("--json", *args)
        assert r.code == code, f"exit {r.code}\nstdout:\n{r.out}\nstderr:\n{r.err}"
        return r.json

    def built(self, *args: str) -> list[str]:
        """The steps a successful build ran, in order."""
        return self.build(*args)["built"]

    def plan(self, *args: str) -> dict[str, Any]:
        r = self.run("-n", "--json", *args)
        assert r.code == 0, r.err
        return r.json


@pytest.fixture
def proj(tmp_path: Path) -> Proj:
    return Proj(tmp_path)
