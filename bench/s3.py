"""S3 benchmark (issue 4): the no-op time of a 1,000-object pipeline on S3, against
moto's S3 server on 127.0.0.1, counting the requests datamake makes.

    python bench/s3.py [--n 1000] [--runs 5]

A no-op must cost one LIST per prefix, not one HEAD per object.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import statistics
import subprocess
import time
import uuid
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent


class Requests(logging.Handler):
    """Counts the S3 server's requests by method, from its access log."""

    def __init__(self) -> None:
        super().__init__()
        self.count: Counter[str] = Counter()

    def emit(self, record: logging.LogRecord) -> None:
        msg = record.getMessage()
        for method in ("GET", "HEAD", "PUT", "POST", "DELETE"):
            if f'"{method} ' in msg:
                kind = "LIST" if method == "GET" and ("list-type" in msg or "?prefix" in msg
                                                      or "&prefix" in msg) else method
                self.count[kind] += 1
                return


def moto(verbose: bool = False):
    """moto's S3 server on 127.0.0.1 (a free port), and an environment pointing at it
    (for `datamake` subprocesses: `.pyc` caches allowed, as on a user's machine)."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=verbose)
    server.start()
    host, port = server.get_host_and_port()
    env = dict(os.environ, AWS_ENDPOINT_URL=f"http://{host}:{port}", AWS_ACCESS_KEY_ID="bench",
               AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1")
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return server, env


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()

    import boto3

    counter = Requests()
    logging.getLogger("werkzeug").addHandler(counter)
    logging.getLogger("werkzeug").setLevel(logging.INFO)
    server, env = moto(verbose=True)
    bucket = f"dm-bench-{uuid.uuid4().hex[:8]}"
    s3 = boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], aws_access_key_id="bench",
                      aws_secret_access_key="bench", region_name="us-east-1")
    s3.create_bucket(Bucket=bucket)
    for i in range(args.n):
        s3.put_object(Bucket=bucket, Key=f"in/{i}.txt", Body=f"input {i}\n".encode())

    work = HERE / "work" / f"s3-{args.n}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    lines = ["all: " + " ".join(f"o{i}" for i in range(args.n)), ""]
    for i in range(args.n):
        lines.append(f'dataset i{i} = "s3://{bucket}/in/{i}.txt"')
        lines.append(f'dataset o{i} = "s3://{bucket}/out/{i}.txt"')
    for i in range(args.n):
        lines.append(f"o{i}: i{i}\n    i{i}.upper()\n")
    (work / "Datafile").write_text("\n".join(lines) + "\n")

    def run() -> tuple[float, Counter]:
        counter.count.clear()
        t = time.perf_counter()
        p = subprocess.run(["datamake"], cwd=work, env=env, stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, text=True)
        if p.returncode:
            raise SystemExit(p.stderr)
        return time.perf_counter() - t, Counter(counter.count)

    full, full_req = run()
    run()  # the first no-op re-reads stamps recorded young
    times, reqs = [], Counter()
    for _ in range(args.runs):
        t, reqs = run()
        times.append(t)
    server.stop()
    result = {"objects": args.n, "full_seconds": round(full, 2),
              "full_requests": dict(full_req),
              "noop_median_seconds": round(statistics.median(times), 3),
              "noop_runs": [round(t, 3) for t in times], "noop_requests": dict(reqs)}
    (HERE / "s3.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
