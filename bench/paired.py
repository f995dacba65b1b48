#!/usr/bin/env python3
"""Clean builds of several tools, interleaved, for ratios the disk's moods cannot skew.

    bench/.venv/bin/python bench/paired.py [--tools datamake,datamake-pattern,doit]
                                           [--shape wide] [--n 1000] [--rounds 9]

`run.py` measures one tool after another; on this machine's virtual disk creating a
file costs 30 µs one minute and 1 ms the next, so two tools measured ten minutes apart
can trade places. Here every round builds each tool's workload once from clean (in an
order that rotates from round to round), so each round's ratios compare builds made
seconds apart. Writes bench/paired.json (the latest run of each workload);
`run.py --report-only` puts it in RESULTS.md.
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import gen  # noqa: E402
import run  # noqa: E402

PAIRED_JSON = HERE / "paired.json"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tools", default="datamake,datamake-pattern,doit")
    ap.add_argument("--shape", default="wide", choices=gen.SHAPES)
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--tmpfs", action="store_true",
                    help="build in /dev/shm (memory): each tool's own cost, without the disk")
    a = ap.parse_args(argv)
    tools = a.tools.split(",")
    base = tools[0]
    cmds, dirs = {}, {}

    def place(t: str) -> Path:
        """The workload, generated afresh: on this disk the speed of file creation
        also depends on where a folder happens to be allocated, so every round gets new
        folders (outside the timing) rather than one tool keeping a lucky or unlucky one."""
        d = gen.generate(t, a.shape, a.n)
        if a.tmpfs:
            mem = Path("/dev/shm/datamake-bench") / f"{t}-{a.shape}-{a.n}"
            shutil.rmtree(mem, ignore_errors=True)
            shutil.copytree(d, mem)
            d = mem
        return d

    for t in tools:
        cmd = run.resolve(t) if t in run.COMMANDS else None
        if cmd is None or not gen.supports(t, a.shape):
            ap.error(f"{t}: not installed, unknown, or no {a.shape} workload")
        cmds[t] = cmd
        dirs[t] = place(t)
    samples: dict[str, list[float]] = {t: [] for t in tools}
    ratios: dict[str, list[float]] = {t: [] for t in tools[1:]}
    for t in tools:  # untimed warm-up: .pyc caches, page cache
        run.clean(t, dirs[t])
        run.timed(cmds[t], dirs[t])
    for r in range(a.rounds):
        order = tools[r % len(tools):] + tools[:r % len(tools)]
        this = {}
        for t in tools:
            dirs[t] = place(t)
        for t in order:
            run.clean(t, dirs[t])
            dt, rc, tail = run.timed(cmds[t], dirs[t])
            if rc != 0:
                print(f"{t} failed:\n{tail}", file=sys.stderr)
                return 1
            err = run.verify(a.shape, a.n, dirs[t])
            if err:
                print(f"{t}: wrong outputs: {err}", file=sys.stderr)
                return 1
            this[t] = dt
            samples[t].append(round(dt, 4))
        for t in tools[1:]:
            ratios[t].append(round(this[t] / this[base], 3))
        print(f"round {r + 1}: " + "  ".join(f"{t} {this[t]:.3f}" for t in tools), file=sys.stderr)
    doc = {
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
        "shape": a.shape, "n": a.n, "rounds": a.rounds, "base": base, "tmpfs": a.tmpfs,
        "machine_file_create": run.file_create_cost(),
        "versions": run.versions(),
        "median": {t: statistics.median(s) for t, s in samples.items()},
        "min": {t: min(s) for t, s in samples.items()},
        "ratio_median": {t: statistics.median(v) for t, v in ratios.items()},
        "samples": samples, "ratios": ratios,
    }
    runs = json.loads(PAIRED_JSON.read_text()).get("runs", {}) if PAIRED_JSON.exists() else {}
    # One entry per workload and place, the latest run of each.
    runs[f"{a.shape}-{a.n}" + ("-tmpfs" if a.tmpfs else "")] = doc
    if a.tmpfs:
        shutil.rmtree("/dev/shm/datamake-bench", ignore_errors=True)
    PAIRED_JSON.write_text(json.dumps({"runs": runs}, indent=1) + "\n")
    for t in tools:
        extra = f"  ×{doc['ratio_median'][t]:.2f} of {base}" if t != base else ""
        print(f"{t:18} median {doc['median'][t]:.3f} s  min {doc['min'][t]:.3f} s{extra}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
