"""Shared-cache benchmarks on S3 (moto's server on 127.0.0.1):
- a recipe that yields N partitions: one project folder builds it (and uploads every
  partition), a second one with the same Datafile fetches them all instead;
- N steps of a pattern rule, each sleeping 10 ms, built once with the shared cache on
  (each step's output is uploaded while the next steps run).

    python bench/s3_cache.py [--n 1000] [--steps 200]

Run it with the datamake you want to measure importable by `python -m datamake`.
Prints the two builds' wall times and what each reported.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

DATAFILE = """
cache "s3://dm-bench-cache/cache"
param n = {n}
dataset emb = "emb/{{k}}.json"

emb: n
    for i in range(n):
        yield f"c{{i}}", {{"i": i}}
"""

STEPS = """
cache "s3://dm-bench-cache/steps-cache"
dataset src = "in/{i}.txt"
dataset up = "out/{i}.txt"

up[i]: src[i]
    import time
    time.sleep(0.01)
    src.upper()
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--steps", type=int, default=200)
    a = ap.parse_args()
    import logging

    import boto3

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from s3 import moto

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request
    server, env = moto()
    boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], aws_access_key_id="bench",
                 aws_secret_access_key="bench", region_name="us-east-1"
                 ).create_bucket(Bucket="dm-bench-cache")
    root = tempfile.mkdtemp()
    try:
        for who in ("first", "second"):
            os.makedirs(f"{root}/{who}")
            with open(f"{root}/{who}/Datafile", "w") as f:
                f.write(DATAFILE.format(n=a.n))
        for who in ("first", "second"):
            t = time.perf_counter()
            r = subprocess.run([sys.executable, "-m", "datamake", "--json"], cwd=f"{root}/{who}",
                               env=env, capture_output=True, text=True)
            doc = json.loads(r.stdout)
            print(f"{who}: {time.perf_counter() - t:.2f} s, built {doc['built']}, "
                  f"cached {doc['cached']}")
        steps = f"{root}/steps"
        os.makedirs(f"{steps}/in")
        with open(f"{steps}/Datafile", "w") as f:
            f.write(STEPS)
        for i in range(a.steps):
            with open(f"{steps}/in/{i}.txt", "w") as f:
                f.write(f"text {i}\n")
        t = time.perf_counter()
        r = subprocess.run([sys.executable, "-m", "datamake", "--json"], cwd=steps, env=env,
                           capture_output=True, text=True)
        print(f"{a.steps} steps of 10 ms, each output uploaded: {time.perf_counter() - t:.2f} s, "
              f"built {len(json.loads(r.stdout)['built'])}")
    finally:
        server.stop()
        shutil.rmtree(root)


if __name__ == "__main__":
    main()
