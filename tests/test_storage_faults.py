"""Real S3 faults, for datasets and for the shared cache: an endpoint that refuses
connections, one that accepts them and never answers, a missing bucket, refused
credentials, the server dying mid-build, an object vanishing mid-build.

A dataset's fault ends the build with one clear `datamake: error:` naming the dataset
and what to check; a shared cache's fault is a warning (the cache never fails a
build). Neither ever shows a traceback, a library's raw text, or asyncio's "Task
exception was never retrieved". The faults are real: moto's S3 server (told to check
credentials through its /moto-api/reset-auth), TCP servers on 127.0.0.1 that hang or
die, objects deleted while a build reads them. Timeouts are set short through the
environment; the subprocess timeout is only a hang guard."""
from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import Proj, clean_env

FAST = {"DATAMAKE_STORAGE_CONNECT_TIMEOUT": "1", "DATAMAKE_STORAGE_READ_TIMEOUT": "1",
        "DATAMAKE_STORAGE_RETRIES": "1"}
NEVER = ("Traceback", "Task exception was never retrieved", "botocore", "aiohttp",
         "EndpointConnectionError", "ReadTimeoutError", "Unclosed")


class Server:
    """A TCP server on 127.0.0.1: it accepts connections and never answers, or, given
    an upstream, relays them to it. `stop` closes the listener and every connection at
    once, as when a server dies (later connections are refused)."""

    def __init__(self, upstream: tuple[str, int] | None = None):
        self.upstream = upstream
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.conns: list[socket.socket] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.conns.append(c)
            if self.upstream is None:
                continue  # held open, never answered
            try:
                u = socket.create_connection(self.upstream, timeout=10)
            except OSError:
                c.close()
                continue
            with self.lock:
                self.conns.append(u)
            for a, b in ((c, u), (u, c)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(a: socket.socket, b: socket.socket) -> None:
        try:
            while True:
                data = a.recv(65536)
                if not data:
                    break
                b.sendall(data)
        except OSError:
            pass
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def stop(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept
        except OSError:
            pass
        self.sock.close()
        with self.lock:
            for c in self.conns:
                try:
                    c.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                c.close()


class Refusing:
    """A port on 127.0.0.1 that refuses connections: bound, never listening, so no
    other process can take it while the test runs."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def stop(self) -> None:
        self.sock.close()


def checking_credentials(s3, count: str) -> None:
    """moto's server checks access keys from now on ("0") or trusts anyone ("inf")."""
    req = urllib.request.Request(f"{s3.env['AWS_ENDPOINT_URL']}/moto-api/reset-auth",
                                 data=count.encode(), method="POST",
                                 headers={"Content-Type": "text/plain"})
    urllib.request.urlopen(req, timeout=10).read()


def host_port(url: str) -> tuple[str, int]:
    host, port = url.split("://", 1)[1].rsplit(":", 1)
    return host, int(port)


def clean(err: str) -> None:
    for text in NEVER:
        assert text not in err, f"{text!r} in stderr:\n{err}"


def wait_for(path: Path, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 120  # a hang guard only
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the recipe never started"
        time.sleep(0.05)


@pytest.fixture
def endpoints(s3):
    """Servers made for a test, stopped after it."""
    made: list = []

    def make(kind: str = "hang", upstream: tuple[str, int] | None = None):
        made.append(Refusing() if kind == "refused" else Server(upstream))
        return made[-1]

    yield make
    for server in made:
        server.stop()


DATASETS = """
    dataset raw = "{raw}"
    dataset seen = "seen.txt"
    dataset gone = "gone.txt"
    dataset out = "{out}"

    out: raw gone
        import os, time
        if os.environ.get("PAUSE"):
            open("started", "w").close()
            while not os.path.exists("go"):
                time.sleep(0.05)
        raw.upper() + gone

    ## `raw` is hashed when `seen` is judged: `out` reads it after `gone` ran.
    seen: raw
        raw

    gone: seen
        import os
        if os.environ.get("DELETE"):
            import boto3
            bucket, key = os.environ["DELETE"].split("/", 1)
            boto3.client("s3").delete_object(Bucket=bucket, Key=key)
        seen[:0] + "!"
"""

DATASET_FAULTS = ["refused", "hang", "no-bucket", "denied", "stopped", "vanished"]


@pytest.mark.parametrize("fault", DATASET_FAULTS)
def test_a_dataset_storage_fault_is_one_clear_error(proj, s3, endpoints, fault):
    bucket = "no-such-bucket-dm" if fault == "no-bucket" else s3.bucket
    raw, out = f"s3://{bucket}/raw.txt", f"s3://{bucket}/out.txt"
    proj.write("Datafile", DATASETS.format(raw=raw, out=out))
    s3.put("raw.txt", "abc")
    env = clean_env(**s3.env, **FAST)
    endpoint = None
    if fault == "refused":
        env["AWS_ENDPOINT_URL"] = endpoint = endpoints("refused").url
    elif fault == "hang":
        env["AWS_ENDPOINT_URL"] = endpoint = endpoints().url
    elif fault == "denied":
        env.update(AWS_ACCESS_KEY_ID="AKIANOSUCHKEY0000000", AWS_SECRET_ACCESS_KEY="wrong")
    elif fault == "stopped":
        proxy = endpoints("relay", host_port(s3.env["AWS_ENDPOINT_URL"]))
        env.update(AWS_ENDPOINT_URL=proxy.url, PAUSE="1")
        endpoint = proxy.url
    elif fault == "vanished":
        env["DELETE"] = f"{bucket}/raw.txt"
    cmd = [sys.executable, "-m", "datamake"]
    if fault == "denied":
        checking_credentials(s3, "0")
    try:
        proc = subprocess.Popen(cmd, cwd=proj.root, env=env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        if fault == "stopped":
            wait_for(proj.path("started"), proc)
            proxy.stop()  # the server dies while `out` runs, before it is uploaded
            proj.write("go", "")
        _, err = proc.communicate(timeout=180)
    finally:
        if fault == "denied":
            checking_credentials(s3, "inf")
    assert proc.returncode == 1, err
    clean(err)
    assert "warning" not in err
    assert err.count("datamake: error:") == 1, err
    check = "help: check AWS_ENDPOINT_URL and the network; the waits are " \
            "DATAMAKE_STORAGE_CONNECT_TIMEOUT, DATAMAKE_STORAGE_READ_TIMEOUT (seconds) " \
            "and DATAMAKE_STORAGE_RETRIES\n"
    said = {
        "refused": f"dataset `raw` at `{raw}`: cannot reach the storage endpoint "
                   f"{endpoint}\n" + check,
        "hang": f"dataset `raw` at `{raw}`: cannot reach the storage endpoint "
                f"{endpoint}: it did not answer in time\n" + check,
        "no-bucket": f"dataset `raw` at `{raw}`: the bucket does not exist\n"
                     f"help: create it, or fix the location\n",
        "denied": f"dataset `raw` at `{raw}`: access denied\nhelp: check the credentials "
                  f"(AWS_* variables) and the bucket's policy\n",
        "stopped": f"dataset `out` at `{out}`: cannot reach the storage endpoint "
                   f"{endpoint}\n" + check,
        "vanished": f"dataset `raw` does not exist at `{raw}`\nhelp: build the rule that "
                    f"writes it, or check the location\n",
    }[fault]
    assert f"datamake: error: {said}" in err, err
    if fault in ("stopped", "vanished"):
        assert proj.read("seen.txt") == "abc"  # what finished before the fault is kept


CACHED = """
    cache "{url}"
    dataset src = "src.txt"
    dataset a = "a.txt"
    dataset b = "b.txt"
    dataset c = "c.txt"

    c: b
        b + "c"

    b: a
        import os, time
        if os.environ.get("PAUSE"):
            open("started", "w").close()
            while not os.path.exists("go"):
                time.sleep(0.05)
        a + "b"

    a: src
        src + "a"
"""

CACHE_FAULTS = ["refused", "hang", "no-bucket", "denied", "stopped", "vanished"]


@pytest.mark.parametrize("fault", CACHE_FAULTS)
def test_a_shared_cache_fault_is_a_warning(tmp_path, s3, endpoints, fault):
    bucket = "no-such-bucket-dm" if fault == "no-bucket" else s3.bucket
    url = f"s3://{bucket}/cache"
    env = clean_env(**s3.env, **FAST)
    if fault == "vanished":  # a teammate filled the cache; then its objects went
        first = Proj(tmp_path / "first")
        first.root.mkdir()
        first.write("Datafile", CACHED.format(url=url))
        first.write("src.txt", "x")
        assert first.run(env=env).code == 0
        for key in s3.keys("cache/objects/"):
            s3.client.delete_object(Bucket=s3.bucket, Key=key)
    proj = Proj(tmp_path / "p")
    proj.root.mkdir()
    proj.write("Datafile", CACHED.format(url=url))
    proj.write("src.txt", "x")
    endpoint = None
    if fault == "refused":
        env["AWS_ENDPOINT_URL"] = endpoint = endpoints("refused").url
    elif fault == "hang":
        env["AWS_ENDPOINT_URL"] = endpoint = endpoints().url
    elif fault == "denied":
        env.update(AWS_ACCESS_KEY_ID="AKIANOSUCHKEY0000000", AWS_SECRET_ACCESS_KEY="wrong")
    elif fault == "stopped":
        proxy = endpoints("relay", host_port(s3.env["AWS_ENDPOINT_URL"]))
        env.update(AWS_ENDPOINT_URL=proxy.url, PAUSE="1")
        endpoint = proxy.url
    if fault == "denied":
        checking_credentials(s3, "0")
    try:
        proc = subprocess.Popen([sys.executable, "-m", "datamake", "--json"], cwd=proj.root,
                                env=env, text=True, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        if fault == "stopped":
            wait_for(proj.path("started"), proc)
            proxy.stop()  # `a` was looked up (and maybe uploaded); `b` and `c` cannot be
            proj.write("go", "")
        out, err = proc.communicate(timeout=180)
    finally:
        if fault == "denied":
            checking_credentials(s3, "inf")
    assert proc.returncode == 0, err
    clean(err)
    import json

    assert json.loads(out)["built"] == ["a", "b", "c"]
    assert proj.read("c.txt") == "xabc"
    if fault == "vanished":
        assert "warning" not in err  # an entry whose objects expired is a miss
        return
    warnings = [line for line in err.splitlines() if line.startswith("datamake: warning:")]
    assert len(warnings) == 1, err  # once: the cache is not asked again in this build
    said = {
        "refused": f"cannot reach the storage endpoint {endpoint}",
        "hang": f"cannot reach the storage endpoint {endpoint}: it did not answer in time",
        "no-bucket": "the bucket does not exist",
        "denied": "access denied",
        "stopped": f"cannot reach the storage endpoint {endpoint}",
    }[fault]
    assert warnings[0].startswith(f"datamake: warning: shared cache `{url}`: {said}; "), err


def test_storage_timeouts_come_from_the_environment():
    from datamake.catalog import open_filesystem, storage_options

    assert storage_options("s3", {}) == {"config_kwargs": {
        "connect_timeout": 5.0, "read_timeout": 15.0,
        "retries": {"total_max_attempts": 3, "mode": "standard"}}}
    env = {"DATAMAKE_STORAGE_CONNECT_TIMEOUT": "0.5", "DATAMAKE_STORAGE_READ_TIMEOUT": "2",
           "DATAMAKE_STORAGE_RETRIES": "0"}
    assert storage_options("s3", env)["config_kwargs"] == {
        "connect_timeout": 0.5, "read_timeout": 2.0,
        "retries": {"total_max_attempts": 1, "mode": "standard"}}
    # Not numbers (or negative, or a fraction of a retry): the defaults.
    bad = {"DATAMAKE_STORAGE_CONNECT_TIMEOUT": "soon", "DATAMAKE_STORAGE_READ_TIMEOUT": "-1",
           "DATAMAKE_STORAGE_RETRIES": "1.5"}
    assert storage_options("s3", bad) == storage_options("s3", {})
    assert storage_options("file", env) == {}
    fs = open_filesystem("s3://any-bucket/cache")
    assert fs.config_kwargs["read_timeout"] == 15.0 and fs.retries == 1
