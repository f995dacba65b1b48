"""Pipeline page benchmark (issue 15): how long `datamake --ui`'s page takes, in headless
Chromium, from navigation until every node of a generated pipeline is drawn and the page
answers clicks (the page's own `datamake-interactive` performance mark), and how much of
that is the layout (dagre, the `datamake-layout` measure).

    python bench/ui.py [--rules 300] [--runs 5] [--screenshot docs/ui.png]

The server runs in this process, as `datamake --ui` runs it; the pipeline is
tests/ui_pipeline.py's (rules in layers reading one to three rules before them, a
parameter read by every seventh). `--screenshot` also takes the picture of the page that
docs/ui.md shows: the spaceflights example, built, then looked at with `test_size=0.3`
(a stale step and what it would rerun), one node's panel open.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO / "tests"))

import ui_pipeline  # noqa: E402
from browser import chromium  # noqa: E402


def serve(root: Path, *overrides: str):
    from datamake.cli import split_args
    from datamake.ui.server import PageServer
    from datamake.ui.source import LocalSource

    os.chdir(root)
    _, params, raw = split_args(overrides)
    server = PageServer(LocalSource("Datafile", params, raw))
    server.start()
    return server


def wait(browser, script: str, timeout: float = 120) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = browser.execute_script(script)
        if value:
            return value
        time.sleep(0.02)
    raise SystemExit(f"the page never got there: {script}")


def measure(rules: int, runs: int) -> None:
    root = Path(tempfile.mkdtemp(prefix="dm-ui-bench-"))
    ui_pipeline.write(root, rules)
    server = serve(root)
    try:
        with chromium(1400, 900) as b:
            rows = []
            for i in range(runs + 1):  # the first is a warm-up (Chromium's caches)
                b.get(server.url)
                wait(b, "return document.body.dataset.ready === '1'")
                got = b.execute_script("""
                    const m = performance.getEntriesByName('datamake-interactive')[0];
                    const l = performance.getEntriesByName('datamake-layout')[0];
                    return [m.startTime, l.duration,
                            document.querySelectorAll('#viewport g.node').length,
                            document.querySelectorAll('#viewport path.edge').length];""")
                if i:
                    rows.append(got)
            nodes, edges = rows[0][2], rows[0][3]
            ready = [r[0] / 1000 for r in rows]
            layout = [r[1] / 1000 for r in rows]
            print(f"{rules} rules: {nodes} nodes and {edges} edges drawn")
            print(f"interactive after: median {statistics.median(ready):.3f} s "
                  f"(min {min(ready):.3f}, max {max(ready):.3f}) over {runs} loads")
            print(f"of which the layout: median {statistics.median(layout):.3f} s "
                  f"(min {min(layout):.3f}, max {max(layout):.3f})")
    finally:
        server.stop()
        os.chdir(REPO)
        shutil.rmtree(root, ignore_errors=True)


def screenshot(path: Path) -> None:
    import subprocess

    root = Path(tempfile.mkdtemp(prefix="dm-ui-shot-"))
    shutil.copy(REPO / "Datafile.example", root / "Datafile")
    ignore = shutil.ignore_patterns("0[2-9]_*", "results", ".datamake", "__pycache__")
    shutil.copytree(REPO / "examples" / "spaceflights", root / "examples" / "spaceflights",
                    ignore=ignore)
    subprocess.run([sys.executable, "-m", "datamake", "-q"], cwd=root, check=False,
                   capture_output=True)
    subprocess.run([sys.executable, "-m", "datamake"], cwd=root, check=True,
                   capture_output=True)
    server = serve(root, "test_size=0.3")
    try:
        with chromium(1800, 900) as b:
            b.get(server.url)
            wait(b, "return document.body.dataset.ready === '1'")
            b.execute_script("datamakePage.openPanel('X_train')")
            wait(b, "return document.querySelector('#panel pre.explain')")
            b.execute_script("datamakePage.fit()")
            time.sleep(0.3)  # the panel's preview settles (a picture: no assertion)
            b.save_screenshot(str(path))
        print(f"wrote {path}")
    finally:
        server.stop()
        os.chdir(REPO)
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rules", type=int, default=300)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--screenshot", type=Path)
    args = ap.parse_args()
    measure(args.rules, args.runs)
    if args.screenshot:
        screenshot(args.screenshot.resolve())


if __name__ == "__main__":
    main()
