"""Parallel benchmark (issue 6): -j1 against -j2 on CPU-bound wide and fan-in workloads,
and the cost per step of the process pool and of a local Dask cluster.

    python bench/parallel.py [--runs 3]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

BURN = '''
python:
    import time

    def burn(seed, seconds):
        t = time.perf_counter()
        x = seed
        while time.perf_counter() - t < seconds:
            for _ in range(5000):
                x = (x * 1103515245 + 12345) % 2147483648
        return seed
'''


def wide(n: int, seconds: float) -> str:
    rules = [f"t{i}:\n    burn({i}, {seconds})\n" for i in range(n)]
    return BURN + "\nall: " + " ".join(f"t{i}" for i in range(n)) + "\n\n" + "\n".join(rules)


def fanin(n: int, seconds: float) -> str:
    rules = [f"t{i}:\n    burn({i}, {seconds})\n" for i in range(n)]
    total = "total: " + " ".join(f"t{i}" for i in range(n)) + "\n    " + " + ".join(f"t{i}" for i in range(n)) + "\n"
    return BURN + "\n" + total + "\n" + "\n".join(rules)


def trivial(n: int) -> str:
    rules = [f"t{i}:\n    {i}\n" for i in range(n)]
    return "all: " + " ".join(f"t{i}" for i in range(n)) + "\n\n" + "\n".join(rules)


def timed(work: Path, *args: str) -> float:
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    shutil.rmtree(work / ".datamake", ignore_errors=True)
    t = time.perf_counter()
    p = subprocess.run(["datamake", "--json", *args], cwd=work, env=env, capture_output=True,
                       text=True)
    if p.returncode:
        raise SystemExit(p.stderr)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    out: dict = {"speedup": {}, "overhead_ms_per_step": {}}
    for shape, text in (("wide", wide(8, 0.5)), ("fanin", fanin(8, 0.5))):
        work = HERE / "work" / f"parallel-{shape}"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        (work / "Datafile").write_text(text)
        j1 = statistics.median(timed(work, "-j1") for _ in range(args.runs))
        j2 = statistics.median(timed(work, "-j2") for _ in range(args.runs))
        out["speedup"][shape] = {"steps": 8, "seconds_each": 0.5, "j1": round(j1, 2),
                                 "j2": round(j2, 2), "ratio": round(j1 / j2, 2)}
    work = HERE / "work" / "parallel-overhead"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    n = 200
    (work / "Datafile").write_text(trivial(n))
    base = statistics.median(timed(work, "-j1") for _ in range(args.runs))
    for label, extra in (("pool -j2", ["-j2"]), ("dask -j2", ["--executor", "dask", "-j2"])):
        t = statistics.median(timed(work, *extra) for _ in range(args.runs))
        out["overhead_ms_per_step"][label] = {"steps": n, "seconds": round(t, 2),
                                              "inline_seconds": round(base, 2),
                                              "ms_per_step_over_inline": round((t - base) / n * 1000, 2)}
    (HERE / "parallel.json").write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
