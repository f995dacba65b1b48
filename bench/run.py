#!/usr/bin/env python3
"""Benchmark datamake against GNU make, ninja, doit, snakemake and kedro.

    bench/setup.sh && bench/.venv/bin/python bench/run.py            # everything (~45 min)
    bench/.venv/bin/python bench/run.py --quick                      # a subset (~8 min)
    bench/.venv/bin/python bench/run.py --tools datamake,make --sizes 1000
    bench/.venv/bin/python bench/run.py --report-only                # rewrite RESULTS.md

For every tool x shape x N it generates the workload (gen.py), then measures the wall
time of three kinds of build:

  full  a clean build: outputs and the tool's own state deleted first
  noop  the same build again at once, nothing changed
  one   one input file's content changed, then the build

and checks each build: after `full` and `one` every output must hold the right
content; after `noop` no output may have been rewritten (mtime and inode compared);
after `one` it reports how many outputs were rewritten against how many had to be.

Results are merged into bench/results.json (same tool/shape/N replaced) and
bench/RESULTS.md is rewritten from it. The "Observations" section of RESULTS.md, which
a person writes, is kept across rewrites.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import gen  # noqa: E402

VENV_BIN = HERE / ".venv" / "bin"
RESULTS_JSON = HERE / "results.json"
RESULTS_MD = HERE / "RESULTS.md"
OBS_MARK = "<!-- observations: kept by run.py when it rewrites this file -->"

TOOLS = gen.TOOLS
SHAPES = gen.SHAPES
KINDS = ("full", "noop", "one")
DEFAULT_SIZES = {t: (100, 1000, 10000) for t in ("datamake", "datamake-pattern", "make",
                                                  "ninja", "doit")}
DEFAULT_SIZES.update({"snakemake": (100, 1000), "kedro": (100, 1000)})
RUNS = 5                     # samples per measurement ...
SLOW_S = 20.0                # ... but only 3 when one run takes longer than this
VERY_SLOW_S = 60.0           # ... and only 2 when it takes longer than this
TIMEOUT_S = 1800

# Every tool runs serially (one job at a time), its default except for ninja.
COMMANDS = {
    "datamake": ["datamake"],
    "datamake-pattern": ["datamake"],
    "make": ["make"],
    "ninja": ["ninja", "-j1"],
    "doit": ["doit"],
    # Without --force-use-threads, snakemake runs each `run:` job in a new snakemake
    # process that parses the Snakefile again: about 2 s per job on this machine.
    "snakemake": ["snakemake", "--cores", "1", "--force-use-threads"],
    "kedro": ["kedro", "run"],
}
# What `full` deletes besides out/: the tool's memory of earlier builds.
STATE = {
    "datamake": [".datamake"],
    "datamake-pattern": [".datamake"],
    "make": [],
    "ninja": [".ninja_log", ".ninja_deps"],
    "doit": [".doit.db", ".doit.db.bak", ".doit.db.dat", ".doit.db.dir", ".doit.db.db"],
    "snakemake": [".snakemake"],
    "kedro": [],
}


def tool_env() -> dict[str, str]:
    env = dict(os.environ)
    # Python tools must get their .pyc caches, as on a normal user machine.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env.pop("VIRTUAL_ENV", None)
    return env


def resolve(tool: str) -> list[str] | None:
    cmd = list(COMMANDS[tool])
    exe = shutil.which(cmd[0], path=tool_env()["PATH"])
    if exe is None:
        return None
    cmd[0] = exe
    return cmd


# --------------------------------------------------------------------------- machine
def sh(cmd: list[str]) -> str:
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, env=tool_env(), timeout=120)
        return (r.stdout or r.stderr).strip()
    except (OSError, subprocess.SubprocessError) as e:
        return f"unavailable ({e.__class__.__name__})"


def file_create_cost(count: int = 500) -> dict[str, float]:
    """Time to create (write + close) one small file, in microseconds."""
    d = HERE / "work" / "_disk_probe"
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    costs = []
    for i in range(count):
        t = time.perf_counter()
        with open(d / f"{i}.txt", "w") as f:
            f.write("x\n")
        costs.append((time.perf_counter() - t) * 1e6)
    shutil.rmtree(d, ignore_errors=True)
    costs.sort()
    return {"median_us": round(costs[len(costs) // 2], 1),
            "p10_us": round(costs[len(costs) // 10], 1),
            "p90_us": round(costs[len(costs) * 9 // 10], 1),
            "max_us": round(costs[-1], 1)}


def machine() -> dict:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = "unknown"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    return {
        "cores": os.cpu_count(),
        "cpu": cpu,
        "memory": mem,
        "python": platform.python_version(),
        "kernel": platform.release(),
        "file_create": file_create_cost(),
    }


def versions() -> dict[str, str]:
    py = str(VENV_BIN / "python")
    meta = sh([py, "-c", "import importlib.metadata as m, json\n"
               "out = {}\n"
               "for p in ('datamake', 'doit', 'snakemake', 'kedro', 'kedro-datasets'):\n"
               "    try: out[p] = m.version(p)\n"
               "    except Exception: out[p] = 'not installed'\n"
               "print(json.dumps(out))"])
    try:
        v = json.loads(meta)
    except ValueError:
        v = {}
    src = VENV_BIN.parent / "datamake-source.txt"
    if src.exists() and "datamake" in v:
        v["datamake"] += f" (from the repository at {src.read_text().strip()})"
    if "datamake" in v:
        v["datamake-pattern"] = v["datamake"]  # the same datamake; only the Datafile differs
    v["make"] = sh(["make", "--version"]).splitlines()[0] if shutil.which("make") else "not installed"
    v["ninja"] = sh(["ninja", "--version"]) if shutil.which("ninja") else "not installed"
    return v


# --------------------------------------------------------------------------- one workload
def snapshot(d: Path, outs: list[str]) -> dict[str, tuple[int, int] | None]:
    snap = {}
    for rel in outs:
        try:
            st = os.stat(d / rel)
            snap[rel] = (st.st_mtime_ns, st.st_ino)
        except FileNotFoundError:
            snap[rel] = None
    return snap


def expected(shape: str, n: int, d: Path) -> dict[str, str]:
    if shape == "chain":
        first = (d / "in/0.txt").read_text().upper()
        return {f"out/{i}.txt": first for i in range(n)}
    want = {f"out/{i}.txt": (d / f"in/{i}.txt").read_text().upper() for i in range(n)}
    if shape == "fanin":
        want["out/total.txt"] = "".join(want[f"out/{i}.txt"] for i in range(n))
    return want


def verify(shape: str, n: int, d: Path) -> str | None:
    """None when every output holds what the inputs say it must."""
    bad = []
    for rel, text in expected(shape, n, d).items():
        p = d / rel
        got = p.read_text() if p.exists() else None
        if got != text:
            bad.append(rel if got is not None else f"{rel} (missing)")
    if bad:
        return f"{len(bad)} wrong output(s), e.g. {', '.join(bad[:3])}"
    return None


def clean(tool: str, d: Path) -> None:
    shutil.rmtree(d / "out", ignore_errors=True)
    for name in STATE[tool]:
        p = d / name
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        elif p.exists():
            p.unlink()


LOADS: list[float] = []  # the 1-minute load average before each timed build


def timed(cmd: list[str], d: Path) -> tuple[float, int, str]:
    os.sync()  # let the previous build's writes reach the disk outside the timing
    try:
        LOADS.append(os.getloadavg()[0])
    except OSError:
        pass
    log = d / "bench-log.txt"
    with open(log, "w") as f:
        # No timeout= on the wait: with one, Python polls the child with sleeps of up
        # to 50 ms, which rounds every measurement up to a multiple of ~50 ms.
        t = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=d, stdout=f, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=tool_env())
        timer = threading.Timer(TIMEOUT_S, proc.kill)
        timer.start()
        rc = proc.wait()
        dt = time.perf_counter() - t
        timer.cancel()
    tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:]) if rc else ""
    return dt, rc, tail


def wanted_runs(first: float, runs: int) -> int:
    if first > VERY_SLOW_S:
        return min(runs, 2)
    if first > SLOW_S:
        return min(runs, 3)
    return runs


def bench_one(tool: str, shape: str, n: int, runs: int, log) -> dict:
    cmd = resolve(tool)
    entry = {"tool": tool, "shape": shape, "n": n, "runs": runs, "samples": {k: [] for k in KINDS},
             "checks": [], "error": None}
    if cmd is None:
        entry["error"] = f"{COMMANDS[tool][0]} not found"
        return entry
    d = gen.generate(tool, shape, n)
    outs = gen.outputs(shape, n)
    affected = set(gen.affected_outputs(shape, n))
    target = {k: runs for k in KINDS}
    problems: set[str] = set()
    rewritten_one: list[int] = []

    def note(kind: str, msg: str) -> None:
        key = f"{kind}: {msg}"
        if key not in problems:
            problems.add(key)
            entry["checks"].append(key)
            log(f"    CHECK FAILED {tool} {shape}-{n} {key}")

    def run(kind: str) -> bool:
        dt, rc, tail = timed(cmd, d)
        if rc != 0:
            entry["error"] = f"{kind} build exited {rc}:\n{tail}"
            log(f"    ERROR {tool} {shape}-{n} {kind}: exit {rc}\n{tail}")
            return False
        entry["samples"][kind].append(round(dt, 4))
        if len(entry["samples"][kind]) == 1:
            target[kind] = wanted_runs(dt, runs)
        return True

    # Warm-up: one untimed clean build (compiles dodo.py / the kedro package to .pyc,
    # as any earlier build on a user's machine would have).
    clean(tool, d)
    dt, rc, tail = timed(cmd, d)
    entry["warmup"] = round(dt, 4)
    if rc != 0:
        entry["error"] = f"warm-up build exited {rc}:\n{tail}"
        log(f"    ERROR {tool} {shape}-{n} warm-up: exit {rc}\n{tail}")
        return entry
    log(f"    warm-up {dt:.3f}s")

    rep = 0
    while any(len(entry["samples"][k]) < target[k] for k in KINDS):
        if len(entry["samples"]["full"]) < target["full"]:
            clean(tool, d)
            if not run("full"):
                break
            err = verify(shape, n, d)
            if err:
                note("full", err)
        if len(entry["samples"]["noop"]) < target["noop"]:
            before = snapshot(d, outs)
            if not run("noop"):
                break
            after = snapshot(d, outs)
            changed = sum(1 for rel in outs if before[rel] != after[rel])
            if changed:
                note("noop", f"rewrote {changed} of {len(outs)} outputs")
        if len(entry["samples"]["one"]) < target["one"]:
            before = snapshot(d, outs)
            src = gen.changed_input(shape, n)
            new_text = f"changed in run {rep} at {time.time_ns()}\n"
            (d / src).write_text(new_text)
            if not run("one"):
                break
            after = snapshot(d, outs)
            err = gen.check_one(shape, n, d, new_text) or verify(shape, n, d)
            if err:
                note("one", err)
            rewritten = {rel for rel in outs if before[rel] != after[rel]}
            rewritten_one.append(len(rewritten))
            missed = affected - rewritten
            if missed:
                note("one", f"did not rewrite {len(missed)} output(s) that depend on {src}")
        rep += 1
        log(f"    rep {rep}: " + "  ".join(
            f"{k} {entry['samples'][k][-1]:.3f}s" for k in KINDS if entry["samples"][k]))

    entry["rewritten_one"] = rewritten_one
    entry["expected_one"] = len(affected)
    for k in KINDS:
        s = entry["samples"][k]
        entry[k] = round(statistics.median(s), 4) if s else None
        entry[f"{k}_min"] = min(s) if s else None
    return entry


# --------------------------------------------------------------------------- report
def fmt_s(x: float | None) -> str:
    if x is None:
        return "—"
    if x < 1:
        return f"{x:.3f}"
    if x < 10:
        return f"{x:.2f}"
    return f"{x:.1f}"


def fmt_ratio(x: float | None, base: float | None) -> str:
    if x is None or not base:
        return ""
    r = x / base
    return f" (×{r:.2f})" if r < 10 else f" (×{r:.0f})"


def load_summary(res: dict) -> str:
    loads = [e["load_avg"] for e in res.values() if "load_avg" in e]
    if not loads:
        return "not recorded"
    return (f"{statistics.median(loads):.2f} at the median over workloads "
            f"(from {min(loads):.2f} to {max(loads):.2f})")


def render(data: dict) -> str:
    m = data.get("machine", {})
    v = data.get("versions", {})
    res = {(e["tool"], e["shape"], e["n"]): e for e in data.get("results", [])}
    tools = [t for t in TOOLS if any(k[0] == t for k in res)]
    sizes = sorted({k[2] for k in res})
    out = ["# Benchmark results", "",
           f"Written by `bench/run.py` on {data.get('date', '?')}; "
           "raw samples in `bench/results.json`. How to run and what each workload is: "
           "`bench/README.md`.", "",
           "## Machine", ""]
    fc = m.get("file_create", {})
    out += [f"- CPU: {m.get('cpu')} — {m.get('cores')} cores",
            f"- Memory: {m.get('memory')}",
            f"- Python {m.get('python')}, Linux {m.get('kernel')}",
            "- Disk: a virtualised, noisy disk. Creating and writing one small file took "
            f"{fc.get('median_us')} µs at the median (10%–90%: {fc.get('p10_us')}–"
            f"{fc.get('p90_us')} µs, max {fc.get('max_us')} µs) when the last `run.py` invocation started.",
            "- Other work on the machine: the 1-minute load average before the timed builds "
            f"was {load_summary(res)} (1 = one core busy; this benchmark itself adds about 1 "
            "while a build runs). Above that, other processes were sharing the 2 cores.",
            "", "## Tool versions", ""]
    for name in ("datamake", "make", "ninja", "doit", "snakemake", "kedro", "kedro-datasets"):
        out.append(f"- {name}: {v.get(name, '?')}")
        older = sorted({f"{s} N={n}" for (t, s, n), e in res.items()
                        if t == name and e.get("version") and e["version"] != v.get(name)})
        if older:
            out.append(f"  - measured with an earlier version: {', '.join(older)}")
    out += ["", "## Method", "",
            "Wall-clock seconds, median of 5 runs (3 runs when a single run took more than "
            f"{SLOW_S:.0f} s, 2 when it took more than {VERY_SLOW_S:.0f} s; "
            "`results.json` keeps every sample and the minimum). `full` = clean build (outputs and the tool's "
            "state deleted), `noop` = the same build again with nothing changed, `one` = one "
            "input's content changed, then the build. Each workload gets one untimed warm-up "
            "build first. Every tool runs one job at a time (`ninja -j1`, `snakemake --cores 1 "
            "--force-use-threads`, the others' default). In parentheses: the time divided by datamake's "
            "(above 1 = slower than datamake).", ""]
    runs_note = []
    for shape in SHAPES:
        if not any(k[1] == shape for k in res):
            continue
        out += [f"## {shape}", "", "| N | build | " + " | ".join(tools) + " |",
                "|---:|---|" + "---:|" * len(tools)]
        for n in sizes:
            for kind in KINDS:
                base = res.get(("datamake", shape, n), {}).get(kind)
                cells = []
                for t in tools:
                    e = res.get((t, shape, n))
                    if e is None:
                        cells.append("")
                    elif e.get(kind) is None:
                        cells.append("error" if e.get("error") else "—")
                    else:
                        val = e[kind]
                        cells.append(fmt_s(val) + ("" if t == "datamake" else fmt_ratio(val, base)))
                        cnt = len(e["samples"][kind])
                        if cnt < e.get("runs", RUNS):
                            runs_note.append(f"{t} {shape} N={n} {kind} ({cnt})")
                if any(cells):
                    out.append(f"| {n} | {kind} | " + " | ".join(cells) + " |")
        out.append("")
    if runs_note:
        out += ["Measurements with fewer runs because one run took more than "
                f"{SLOW_S:.0f} s (run count in parentheses): " + ", ".join(runs_note) + ".", ""]
    asked = sorted({e.get("runs", RUNS) for e in res.values()})
    if asked != [RUNS]:
        out += [f"Note: this results file was made with {'/'.join(map(str, asked))} run(s) "
                "per measurement (--runs or --quick), not 5.", ""]

    out += ["## Over-building after `one`", "",
            "Outputs rewritten by the `one` build (median over its runs) against the outputs "
            "that depend on the changed input.", "",
            "| tool | " + " | ".join(f"{s} N={n}" for s in SHAPES for n in sizes) + " |",
            "|---|" + "---:|" * (len(SHAPES) * len(sizes))]
    for t in tools:
        cells = []
        for s in SHAPES:
            for n in sizes:
                e = res.get((t, s, n))
                if not e or not e.get("rewritten_one"):
                    cells.append("")
                else:
                    cells.append(f"{int(statistics.median(e['rewritten_one']))}/{e['expected_one']}")
        out.append(f"| {t} | " + " | ".join(cells) + " |")
    out.append("")

    out += ["## Correctness checks", ""]
    failures = [(k, e) for k, e in sorted(res.items()) if e.get("checks") or e.get("error")]
    if not failures:
        out += ["Every build passed: after `full` and `one` all outputs held the right "
                "content, and no `noop` build rewrote an output.", ""]
    else:
        out += ["Every build not listed here passed (after `full` and `one` all outputs held "
                "the right content; `noop` rewrote nothing).", ""]
        for (t, s, n), e in failures:
            for c in e.get("checks", []):
                why = (" — by design: kedro has no staleness check and reruns every node"
                       if t == "kedro" and (c.startswith("noop: rewrote") or "rewrite" in c) else "")
                out.append(f"- {t} {s} N={n}: {c}{why}")
            if e.get("error"):
                first = e["error"].splitlines()[0]
                out.append(f"- {t} {s} N={n}: ERROR {first}")
        out.append("")

    out += ["## datamake targets", "", "| target | limit | measured | met |",
            "|---|---:|---:|---|"]
    for tool, shape, n, kind, limit in (
            ("datamake", "wide", 1000, "noop", 0.12), ("datamake", "wide", 1000, "full", 0.30),
            ("datamake", "wide", 10000, "noop", 0.5),
            ("datamake-pattern", "wide", 1000, "full", 0.30)):
        e = res.get((tool, shape, n))
        val = e.get(kind) if e else None
        met = "—" if val is None else ("yes" if val <= limit else "**no**")
        label = f"{shape} N={n} {kind}" + (" (as one pattern rule)" if tool != "datamake" else "")
        out.append(f"| {label} | {limit} s | {fmt_s(val)} | {met} |")
    out += paired_targets()
    out.append("")
    out += paired_section()
    return "\n".join(out)


def _paired_runs() -> dict:
    p = HERE / "paired.json"
    return json.loads(p.read_text()).get("runs", {}) if p.exists() else {}


def paired_targets() -> list[str]:
    """Target rows for the clean build measured in memory, interleaved with doit
    (`paired.py --tmpfs`): the disk's moods out of the comparison."""
    rows = []
    for d in _paired_runs().values():
        if not (d.get("tmpfs") and d["shape"] == "wide" and d["n"] == 1000):
            continue
        med = d["median"]
        for tool in ("datamake", "datamake-pattern"):
            if tool not in med:
                continue
            form = " (as one pattern rule)" if tool != "datamake" else ""
            val = med[tool]
            rows.append(f"| wide N=1000 full{form}, in memory, interleaved | 0.3 s | "
                        f"{fmt_s(val)} | {'yes' if val <= 0.30 else '**no**'} |")
            samples = d.get("samples", {})
            if "doit" in samples and tool in samples:
                r = statistics.median(a / b for a, b in zip(samples["doit"], samples[tool]))
                rows.append(f"| ... at least as fast as doit (doit's time ÷ this one's, median "
                            f"over rounds){form} | ≥ 1 | {r:.2f} | "
                            f"{'yes' if r >= 1 else '**no**'} |")
    return rows


def paired_section() -> list[str]:
    """The interleaved clean builds of `paired.py`, when it has run."""
    runs = _paired_runs()
    if not runs:
        return []
    out = ["## Clean builds, interleaved (`bench/paired.py`)", "",
           "Each round builds every tool's workload once from clean, in an order rotating "
           "from round to round, so that each ratio compares builds made seconds apart. "
           "Ratio: the median over rounds of the tool's time divided by the first tool's "
           "in the same round.", ""]
    for name, d in sorted(runs.items(), key=lambda kv: (kv[1].get("tmpfs", False),
                                                         kv[1]["shape"], kv[1]["n"])):
        base = d["base"]
        fc = d.get("machine_file_create", {})
        where = ("in memory (`--tmpfs`: /dev/shm, no disk)" if d.get("tmpfs") else
                 f"on the disk (creating a small file took {fc.get('median_us')} µs at the "
                 "median when it started)")
        out += [f"**{d['shape']} N={d['n']}** {where}, {d['rounds']} rounds on {d['date']}:", "",
                "| tool | median | min | ratio |", "|---|---:|---:|---:|"]
        for t, med in d["median"].items():
            ratio = "1" if t == base else f"×{d['ratio_median'][t]:.2f}"
            out.append(f"| {t} | {fmt_s(med)} | {fmt_s(d['min'][t])} | {ratio} |")
        out.append("")
    return out


def write_report(data: dict) -> None:
    old = RESULTS_MD.read_text() if RESULTS_MD.exists() else ""
    obs = old[old.index(OBS_MARK):] if OBS_MARK in old else (
        OBS_MARK + "\n## Observations\n\n(To be written by whoever reads these numbers.)\n")
    RESULTS_MD.write_text(render(data) + "\n" + obs)


# --------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="N = 100 and 1000, 3 runs each, snakemake only at N = 100")
    ap.add_argument("--tools", default=",".join(TOOLS))
    ap.add_argument("--shapes", default=",".join(SHAPES))
    ap.add_argument("--sizes", default=None,
                    help="comma-separated N (default: 100,1000 for all tools, 10000 too "
                         "for datamake, make, ninja and doit)")
    ap.add_argument("--runs", type=int, default=None, help=f"samples per measurement (default {RUNS})")
    ap.add_argument("--fresh", action="store_true", help="discard earlier results.json")
    ap.add_argument("--report-only", action="store_true", help="only rewrite RESULTS.md")
    a = ap.parse_args(argv)

    data = {}
    if RESULTS_JSON.exists() and not a.fresh:
        data = json.loads(RESULTS_JSON.read_text())
    if a.report_only:
        write_report(data)
        return 0

    tools = a.tools.split(",")
    shapes = a.shapes.split(",")
    for t in tools:
        if t not in TOOLS:
            ap.error(f"unknown tool {t!r}")
    for s in shapes:
        if s not in SHAPES:
            ap.error(f"unknown shape {s!r}")
    runs = a.runs or (3 if a.quick else RUNS)

    def sizes_for(tool: str) -> tuple[int, ...]:
        if a.sizes:
            return tuple(int(x) for x in a.sizes.split(","))
        if a.quick:
            return (100,) if tool == "snakemake" else (100, 1000)
        return DEFAULT_SIZES[tool]

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    started = time.time()
    log("probing the machine ...")
    data["machine"] = machine()
    data["versions"] = versions()
    data["date"] = time.strftime("%Y-%m-%d %H:%M %Z")
    data.setdefault("results", [])
    all_sizes = sorted({n for t in tools for n in sizes_for(t)})
    for n in all_sizes:
        for shape in shapes:
            for tool in tools:
                if n not in sizes_for(tool) or not gen.supports(tool, shape):
                    continue
                log(f"{tool} {shape} N={n}")
                t0 = time.time()
                LOADS.clear()
                entry = bench_one(tool, shape, n, runs, log)
                if LOADS:
                    entry["load_avg"] = round(statistics.mean(LOADS), 2)
                entry["seconds_spent"] = round(time.time() - t0, 1)
                entry["version"] = data["versions"].get(tool)
                log("  -> " + "  ".join(f"{k} {fmt_s(entry.get(k))}" for k in KINDS)
                    + f"  ({entry['seconds_spent']:.0f}s)")
                data["results"] = [e for e in data["results"]
                                   if (e["tool"], e["shape"], e["n"]) != (tool, shape, n)]
                data["results"].append(entry)
                RESULTS_JSON.write_text(json.dumps(data, indent=1) + "\n")
                write_report(data)
    data["last_run_seconds"] = round(time.time() - started, 1)
    RESULTS_JSON.write_text(json.dumps(data, indent=1) + "\n")
    write_report(data)
    log(f"done in {data['last_run_seconds'] / 60:.1f} min; see {RESULTS_MD}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
