"""Partition benchmarks (issue 3): bounded memory for a yielding recipe and a lazy
whole-dataset input, and the no-op planning time of 100,000 source partitions.

    python bench/partitions.py [--quick]

Writes bench/partitions.json and prints a markdown table. Run it with the datamake
you want to measure on PATH (bench/setup.sh installs one into bench/.venv).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
WORK = HERE / "work" / "partitions"

BIG = """
param n = {n}
param mb = {mb}
dataset chunks = "chunks/{{key}}.bin" as bytes
dataset total = "total.json"

## A long job writing one 10 MB partition at a time.
chunks: n mb
    import hashlib
    for i in range(n):
        key = f"{{i:05d}}"
        if key in done:
            continue
        block = hashlib.sha256(key.encode()).digest() * (mb * 1024 * 1024 // 32)
        yield key, block

## Aggregated through the lazy mapping: one partition in memory at a time.
total: chunks
    s = 0
    for key, data in chunks.items():
        s += data[0] + len(data)
    {{"sum": s, "partitions": len(chunks)}}
"""

WIDE = """
dataset src = "src/{{id}}.txt"
dataset out = "out/{{id}}.txt"
out[id]: src[id]
    src.upper()
"""


def env() -> dict[str, str]:
    e = dict(os.environ)
    e.pop("PYTHONDONTWRITEBYTECODE", None)
    return e


def rss_of(cmd: list[str], cwd: Path) -> tuple[float, int]:
    """Wall seconds and peak RSS (KiB) of one command, measured by /usr/bin/time."""
    t = time.perf_counter()
    proc = subprocess.run(["/usr/bin/time", "-f", "%M", *cmd], cwd=cwd, env=env(),
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seconds = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed in {cwd}:\n{proc.stderr}")
    return seconds, int(proc.stderr.strip().splitlines()[-1])


def memory(n: int, mb: int) -> dict:
    d = WORK / f"memory-{n}x{mb}mb"
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    (d / "Datafile").write_text(BIG.format(n=n, mb=mb))
    write_s, write_kb = rss_of(["datamake", "chunks"], d)
    read_s, read_kb = rss_of(["datamake", "total"], d)
    total = json.loads((d / "total.json").read_text())
    assert total["partitions"] == n, total
    shutil.rmtree(d)  # 10 GB is not worth keeping
    return {"partitions": n, "mb_each": mb, "write_seconds": round(write_s, 2),
            "write_peak_mb": round(write_kb / 1024, 1), "aggregate_seconds": round(read_s, 2),
            "aggregate_peak_mb": round(read_kb / 1024, 1)}


def planning(n: int, runs: int) -> dict:
    d = WORK / f"plan-{n}"
    if not (d / "src").exists() or len(os.listdir(d / "src")) != n:
        shutil.rmtree(d, ignore_errors=True)
        (d / "src").mkdir(parents=True)
        for i in range(n):
            (d / "src" / f"{i:06d}.txt").write_text(f"{i}\n")
    (d / "Datafile").write_text(WIDE.format())
    shutil.rmtree(d / ".datamake", ignore_errors=True)  # a clean build
    shutil.rmtree(d / "out", ignore_errors=True)
    full_s, _ = rss_of(["datamake"], d)
    rss_of(["datamake"], d)  # the first no-op after a build re-reads young stamps once
    times, peaks = [], []
    for _ in range(runs):
        s, kb = rss_of(["datamake"], d)
        times.append(s)
        peaks.append(kb)
    return {"partitions": n, "full_seconds": round(full_s, 2),
            "noop_median_seconds": round(statistics.median(times), 3),
            "noop_runs": [round(t, 3) for t in times],
            "noop_peak_mb": round(max(peaks) / 1024, 1)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="small sizes, for a smoke test")
    args = ap.parse_args()
    mb = 1 if args.quick else 10
    sizes = (20, 100) if args.quick else (100, 1000)
    results = {"memory": [memory(n, mb) for n in sizes],
               "planning": planning(2000 if args.quick else 100_000, 3 if args.quick else 5)}
    (HERE / "partitions.json").write_text(json.dumps(results, indent=2) + "\n")
    print("| partitions x size | write s | write peak MB | aggregate s | aggregate peak MB |")
    print("|---|---|---|---|---|")
    for r in results["memory"]:
        print(f"| {r['partitions']} x {r['mb_each']} MB | {r['write_seconds']} | "
              f"{r['write_peak_mb']} | {r['aggregate_seconds']} | {r['aggregate_peak_mb']} |")
    p = results["planning"]
    print(f"\nno-op planning of {p['partitions']:,} source partitions: median "
          f"{p['noop_median_seconds']} s (runs {p['noop_runs']}), peak {p['noop_peak_mb']} MB; "
          f"full build {p['full_seconds']} s")


if __name__ == "__main__":
    sys.exit(main())
