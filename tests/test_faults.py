"""Faults at random instants: builds killed with SIGKILL (a CI timeout, the OOM killer),
SIGTERM and SIGINT, serial and `-j2`. After each, the next build must give outputs
byte for byte those of a clean build, and run nothing needlessly: no step (or yielded
partition) that had finished and been recorded before the kill runs again.

Trials are seeded: a failure prints the seed and the instant of the kill, and
`DATAMAKE_FAULT_SEED=<seed>` replays it.
"""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import clean_env
from procutil import alive, wait_until

SEED = int(os.environ.get("DATAMAKE_FAULT_SEED", "0")) or random.randrange(1, 10**6)

# Each recipe logs "start NAME ID" and "end NAME ID" (ID: its process, to wait for its
# death after a kill), one atomic append each.
LOG = """
    python:
        import json, os, time

        def log(event, name):
            with open("/proc/self/stat") as f:
                start = f.read().rsplit(")", 1)[1].split()[19]
            fd = os.open("steps.log", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            os.write(fd, f"{event} {name} {os.getpid()} {start}\\n".encode())
            os.close(fd)

        def pause():
            time.sleep(float(os.environ.get("PAUSE", "0")))
"""


class Log:
    """steps.log read back: (event, name, process identity) per line."""

    def __init__(self, path: Path):
        self.lines = []
        if path.exists():
            for line in path.read_text().splitlines():
                event, name, pid, start = line.split()
                self.lines.append((event, name, f"{pid} {start}"))

    def names(self, event: str, since: int = 0) -> list[str]:
        return [n for e, n, _ in self.lines[since:] if e == event]

    def processes(self) -> set[str]:
        return {p for _, _, p in self.lines}


def recorded(root: Path) -> set[str]:
    """The steps (and partitions) the state holds a record of, read as the next build
    reads it (database, the build's journal and the workers' journals), without a lock."""
    from datamake.state import State

    st = State(root, create=False)
    try:
        return set(st.nodes())
    finally:
        st.close()


def outputs(root: Path) -> dict[str, bytes]:
    """Every output file, partitions included (saved versions apart: their names say
    when they were made)."""
    out = root / "out"
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*"))
            if p.is_file() and ".versions" not in p.relative_to(out).parts}


def start(root: Path, args: list[str], **env: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "datamake", *args], cwd=root,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env=clean_env(**env))


def run(root: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "datamake", *args], cwd=root,
                          capture_output=True, text=True, env=clean_env(**env),
                          timeout=120)  # a hang guard


def stop(p: subprocess.Popen, sig: int, root: Path) -> str:
    """Send `sig` to the build, and wait until it and every process that ran one of its
    recipes are gone (the workers die with the build). Returns its stderr."""
    p.send_signal(sig)
    _, err = p.communicate(timeout=120)
    procs = Log(root / "steps.log").processes()
    wait_until(lambda: not any(alive(x) for x in procs), 60,
               "the processes that ran recipes died with the build")
    return err


# -- a killed -j2 build loses at most the partition in flight ---------------------------

YIELDING = LOG + """
    dataset parts = "parts/{k}.json"
    parts:
        for i in range(40):
            k = f"p{i:03d}"
            if k not in done:
                log("start", k)
                pause()
                yield k, {"i": i}
"""


def test_a_killed_j2_build_loses_at_most_the_partition_in_flight(tmp_path):
    # A pool worker used to report each partition through a queue the build drained;
    # killed, the build lost those not yet drained (and its workers went on writing).
    # Each partition's record is now a line in the worker's own journal.
    rng = random.Random(SEED)
    for trial in range(6):
        root = tmp_path / f"t{trial}"
        root.mkdir()
        (root / "Datafile").write_text(_dedent(YIELDING))
        at = rng.randrange(2, 30)
        p = start(root, ["-j2"], PAUSE="0.01")
        where = f"seed {SEED}, trial {trial}: killed after {at} partitions"
        wait_until(lambda: len(_parts(root)) >= at or p.poll() is not None, 120, where)
        stop(p, signal.SIGKILL, root)
        on_disk = _parts(root)
        before = len(Log(root / "steps.log").lines)
        r = run(root, "-j2", "--json", PAUSE="0")
        assert r.returncode == 0, f"{where}\n{r.stderr}"
        again = set(Log(root / "steps.log").names("start", before))
        assert len(again & on_disk) <= 1, (where, sorted(again & on_disk))
        assert _parts(root) == {f"p{i:03d}" for i in range(40)}, where
        assert again >= {f"p{i:03d}" for i in range(40)} - on_disk, where


def _parts(root: Path) -> set[str]:
    folder = root / "parts"
    if not folder.exists():
        return set()
    return {n[:-len(".json")] for n in os.listdir(folder) if n.endswith(".json")
            and not n.startswith(".")}


def _dedent(text: str) -> str:
    import textwrap

    return textwrap.dedent(text).lstrip("\n")


# -- the fault suite --------------------------------------------------------------------

PIPELINE = LOG + """
    param n = 3
    dataset src = "src/{id}.txt"
    dataset clean = "out/clean/{id}.txt"
    dataset words = "out/words.json"
    dataset shout = "out/shout.txt"
    dataset chunks = "out/chunks/{k}.json"
    dataset summary = "out/summary.json" versioned

    all: summary shout

    ## A pattern rule over partitions.
    clean[id]: src[id]
        log("start", f"clean[{id}]")
        pause()
        text = src.strip().lower() + "\\n"
        log("end", f"clean[{id}]")
        text

    words: clean
        log("start", "words")
        pause()
        counts = {}
        for key, text in clean.items():
            for w in text.split():
                counts[w] = counts.get(w, 0) + 1
        log("end", "words")
        counts

    ## A shell recipe.
    shout: words
        $ echo "start shout $$ $(cut -d' ' -f22 /proc/$$/stat)" >> steps.log
        $ sleep "$PAUSE"; tr a-z A-Z < {words} > {out}
        $ echo "end shout $$ $(cut -d' ' -f22 /proc/$$/stat)" >> steps.log

    ## A recipe that yields its partitions and resumes with `done`.
    chunks: n
        for i in range(2 * n):
            k = f"c{i}"
            if k in done:
                continue
            log("start", f"chunks[{k}]")
            pause()
            log("end", f"chunks[{k}]")
            yield k, {"i": i, "square": i * i}

    summary: words chunks
        log("start", "summary")
        pause()
        value = {"words": sorted(words), "squares": sum(v["square"] for v in chunks.values())}
        log("end", "summary")
        value
"""

SOURCES = {"src/a.txt": "The cat\n", "src/b.txt": "the DOG and the cat\n",
           "src/c.txt": "A bird\n", "src/d.txt": "dog dog\n"}
PAUSE = "0.03"


@pytest.fixture(scope="module")
def clean_build(tmp_path_factory) -> tuple[dict[str, bytes], dict[str, float]]:
    """The outputs of a clean build, and how long one takes serially and with -j2 (only
    to choose instants to kill at)."""
    took, results = {}, []
    for jobs in ("1", "2"):
        root = tmp_path_factory.mktemp(f"clean{jobs}")
        _project(root)
        t = time.monotonic()
        r = run(root, "-j", jobs, PAUSE=PAUSE)
        took[jobs] = time.monotonic() - t
        assert r.returncode == 0, r.stderr
        results.append(outputs(root))
    assert results[0] == results[1]
    return results[0], took


def _project(root: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / "Datafile").write_text(_dedent(PIPELINE))
    for rel, text in SOURCES.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)


def trial(root: Path, jobs: str, sig: int, at: float, where: str,
          clean: dict[str, bytes]) -> None:
    """A build stopped by `sig` `at` seconds in, then a build that must finish it as a
    clean build would, rerunning nothing that was finished and recorded."""
    _project(root)
    p = start(root, ["-j", jobs], PAUSE=PAUSE)
    try:
        p.wait(timeout=at)
    except subprocess.TimeoutExpired:
        pass
    if sig != signal.SIGKILL:
        # SIGTERM and SIGINT are handled from the first step on (before, they end the
        # process as they would any other: nothing has run to record).
        wait_until(lambda: p.poll() is not None or (root / "steps.log").exists(), 120, where)
    err = stop(p, sig, root)
    if sig != signal.SIGKILL:
        # 0: the build ended before the signal reached it.
        assert p.returncode in (0, 128 + sig), f"{where}: exit {p.returncode}\n{err}"
        assert "Traceback" not in err, where
    log = Log(root / "steps.log")
    finished = set(log.names("end"))
    kept = recorded(root)
    before = len(log.lines)
    r = run(root, "-j", jobs, "--json", PAUSE="0")
    assert r.returncode == 0, f"{where}\n{r.stderr}"
    again = set(Log(root / "steps.log").names("start", before))
    needless = sorted(again & finished & kept)
    assert needless == [], f"{where}: ran again though finished and recorded: {needless}"
    if jobs == "1" and sig == signal.SIGKILL:
        # Serially, at most the step in flight can have finished unrecorded.
        assert len(finished - kept) <= 1, (where, sorted(finished - kept))
    assert outputs(root) == clean, f"{where}: outputs differ from a clean build's"
    assert not list((root / "out").rglob("*.datamake-tmp*")), where
    history = json.loads(run(root, "--history", "summary", "--json").stdout)
    assert history and Path(history[-1]["path"]).read_bytes() == clean["summary.json"], where
    assert run(root, "-q").returncode == 0, f"{where}: not up to date after the resume"


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_sigkill_at_random_instants(tmp_path, clean_build, jobs):
    clean, took = clean_build
    rng = random.Random(f"{SEED}-{jobs}")
    for i in range(8):
        at = rng.uniform(0.15, took[jobs])
        where = f"seed {SEED}, -j{jobs}, trial {i}: SIGKILL at {at:.3f} s"
        trial(tmp_path / f"t{i}", jobs, signal.SIGKILL, at, where, clean)


@pytest.mark.parametrize("jobs,sig", [("2", signal.SIGTERM), ("1", signal.SIGINT)])
def test_sigterm_and_sigint_mid_build(tmp_path, clean_build, jobs, sig):
    clean, took = clean_build
    at = random.Random(f"{SEED}-{sig}").uniform(0.3 * took[jobs], 0.8 * took[jobs])
    where = f"seed {SEED}, -j{jobs}: {signal.Signals(sig).name} at {at:.3f} s"
    trial(tmp_path / "t", jobs, sig, at, where, clean)
