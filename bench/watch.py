"""Watch benchmark (issue 5): latency from saving an input to the rebuilt output, for a
small pipeline under `datamake --watch`.

    python bench/watch.py [--runs 10]

The latency is the trailing quiet period (0.3 s, so that a burst of saves is one
rebuild) plus a `datamake` run in a child process.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

DATAFILE = """
dataset text = "in/text.txt"
dataset words = "out/words.json"
dataset shout = "out/shout.txt"

all: shout

words: text
    text.split()

shout: words
    " ".join(w.upper() for w in words)
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=10)
    args = ap.parse_args()
    work = HERE / "work" / "watch"
    shutil.rmtree(work, ignore_errors=True)
    (work / "in").mkdir(parents=True)
    (work / "Datafile").write_text(DATAFILE)
    (work / "in" / "text.txt").write_text("start\n")
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    p = subprocess.Popen(["datamake", "--watch"], cwd=work, env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    out = work / "out" / "shout.txt"
    deadline = time.monotonic() + 30
    while not (out.exists() and out.read_text() == "START"):
        assert time.monotonic() < deadline, "the first build never finished"
        time.sleep(0.01)
    latencies = []
    for i in range(args.runs):
        time.sleep(0.5)
        word = f"word{i}"
        t = time.perf_counter()
        (work / "in" / "text.txt").write_text(word + "\n")
        while out.read_text() != word.upper():
            time.sleep(0.005)
            assert time.perf_counter() - t < 30, "no rebuild"
        latencies.append(time.perf_counter() - t)
    p.send_signal(signal.SIGINT)
    p.wait(timeout=10)
    result = {"runs": args.runs, "median_seconds": round(statistics.median(latencies), 3),
              "min_seconds": round(min(latencies), 3), "max_seconds": round(max(latencies), 3)}
    (HERE / "watch.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    sys.exit(main())
