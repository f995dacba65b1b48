"""Shared-cache benchmark: a recipe that yields N partitions, with the shared cache on
S3 (moto's server on 127.0.0.1). One project folder builds it (and uploads every
partition), a second one with the same Datafile fetches them all instead of running
the recipe.

    python bench/s3_cache.py [--n 1000]

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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=1000)
    a = ap.parse_args()
    import logging

    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env = dict(os.environ, AWS_ENDPOINT_URL=f"http://{host}:{port}", AWS_ACCESS_KEY_ID="x",
               AWS_SECRET_ACCESS_KEY="y", AWS_DEFAULT_REGION="us-east-1")
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], aws_access_key_id="x",
                 aws_secret_access_key="y", region_name="us-east-1"
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
    finally:
        server.stop()
        shutil.rmtree(root)


if __name__ == "__main__":
    main()
