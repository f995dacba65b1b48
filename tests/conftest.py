"""Shared fixtures: a scratch project folder and a way to run the real `datamake`."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
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
    env.pop("DATAMAKE_ENV", None)  # a developer's own environment is not the tests'
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


class S3(NamedTuple):
    env: dict[str, str]  # AWS_* variables for datamake subprocesses
    bucket: str
    client: Any  # a boto3 S3 client

    def put(self, key: str, body: bytes | str) -> None:
        self.client.put_object(Bucket=self.bucket, Key=key,
                               Body=body.encode() if isinstance(body, str) else body)

    def get(self, key: str) -> bytes:
        return self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()

    def keys(self, prefix: str = "") -> list[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=prefix)
        return sorted(o["Key"] for p in pages for o in p.get("Contents", []))

    def url(self, key: str = "") -> str:
        return f"s3://{self.bucket}/{key}"


@pytest.fixture(scope="session")
def s3_server():
    """A real S3 endpoint: moto's server on 127.0.0.1 (a free port), or the one named by
    DATAMAKE_TEST_S3_ENDPOINT (with credentials from the usual AWS_* variables)."""
    endpoint = os.environ.get("DATAMAKE_TEST_S3_ENDPOINT")
    if endpoint:
        yield {"AWS_ENDPOINT_URL": endpoint,
               "AWS_ACCESS_KEY_ID": os.environ.get("AWS_ACCESS_KEY_ID", ""),
               "AWS_SECRET_ACCESS_KEY": os.environ.get("AWS_SECRET_ACCESS_KEY", ""),
               "AWS_DEFAULT_REGION": os.environ.get("AWS_DEFAULT_REGION", "us-east-1")}
        return
    # In a process of its own, not a thread of this one: datamake's parser forks only
    # in a process with one thread, so a server thread here would change what the
    # parser tests exercise, depending on the order the test files run in.
    import socket
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1",
                               "-p", str(port)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=2).close()
            break
        except OSError:
            assert server.poll() is None, "moto's server did not start"
            assert time.monotonic() < deadline, "moto's server did not answer in 60 s"
            time.sleep(0.1)
    yield {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
    server.terminate()
    server.wait(timeout=30)


@pytest.fixture
def s3(s3_server, monkeypatch) -> S3:
    """A fresh bucket on the S3 server; AWS_* set for this process and subprocesses."""
    import uuid

    import boto3

    for k, v in s3_server.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")
    client = boto3.client("s3", endpoint_url=s3_server["AWS_ENDPOINT_URL"])
    bucket = f"dm-test-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=bucket)
    env = dict(s3_server, AWS_MAX_ATTEMPTS="2")
    return S3(env, bucket, client)


def mermaid_graph(text: str) -> tuple[dict[str, tuple[str, str]], set[tuple[str, str]]]:
    """A `--dag --format mermaid` text read back: label -> (shape, status), and the edges
    between labels. Asserts every id is a plain word (what mermaid accepts)."""
    import re

    lines = text.splitlines()
    assert lines[0] == "flowchart LR"
    label_of, nodes, edges = {}, {}, set()
    for line in lines[1:]:
        if line.startswith("  classDef "):
            continue
        m = re.fullmatch(r'  (\w+)(\["|\[\("|\{\{")(.*?)("\]|"\)\]|"\}\}):::(\w+)', line)
        if m:
            label_of[m.group(1)] = m.group(3)
            nodes[m.group(3)] = ({'["': "rule", '[("': "dataset", '{{"': "param"}[m.group(2)],
                                 m.group(5))
            continue
        m = re.fullmatch(r"  (\w+) --> (\w+)", line)
        assert m, f"not a mermaid node or edge: {line!r}"
        edges.add((label_of[m.group(1)], label_of[m.group(2)]))
    return nodes, edges


def calls(proj: "Proj") -> list[str]:
    """The names a Datafile's recipes wrote to `calls.log` (its `log` helper), in order."""
    p = proj.path("calls.log")
    return p.read_text().split() if p.exists() else []
