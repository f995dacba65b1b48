"""-j N and the Dask executor: the same outputs and records as a serial build, faster;
failures under -k; early cutoff and partitions across workers; clean logs."""
from __future__ import annotations

import json
import sqlite3

from conftest import Proj

BURN = """
    param seconds = 1.0
    dataset total = "out/total.json"

    python:
        import time

        def burn(seed, seconds):
            # About `seconds` of pure-Python work (CPU-bound: threads would not help).
            t = time.perf_counter()
            x = seed
            while time.perf_counter() - t < seconds:
                for _ in range(5000):
                    x = (x * 1103515245 + 12345) % 2147483648
            return seed * 10

    total: a b c d
        {"sum": a + b + c + d}

    a: seconds
        burn(1, seconds)
    b: seconds
        burn(2, seconds)
    c: seconds
        burn(3, seconds)
    d: seconds
        burn(4, seconds)
"""


def records(proj: Proj) -> dict[str, tuple]:
    db = sqlite3.connect(proj.path(".datamake/state.db"))
    rows = db.execute("SELECT node, sig, code_fp, params_fp, inputs_fp, out_digests FROM steps")
    return {r[0]: r[1:] for r in rows}


def folder(tmp_path, name: str, datafile: str) -> Proj:
    p = Proj(tmp_path / name)
    p.root.mkdir()
    p.write("Datafile", datafile)
    return p


def test_j2_is_faster_with_identical_results_and_records(tmp_path):
    serial, parallel = folder(tmp_path, "serial", BURN), folder(tmp_path, "parallel", BURN)
    one = serial.build("-j1")
    two = parallel.build("-j2")
    assert sorted(one["built"]) == sorted(two["built"]) == ["a", "b", "c", "d", "total"]
    assert one["built"][-1] == two["built"][-1] == "total"  # it waits for its inputs
    speedup = one["seconds"] / two["seconds"]
    assert speedup >= 1.6, (one["seconds"], two["seconds"])
    assert serial.read("out/total.json") == parallel.read("out/total.json")
    for name in "abcd":
        assert (serial.path(f".datamake/data/{name}.pkl").read_bytes()
                == parallel.path(f".datamake/data/{name}.pkl").read_bytes())
    assert records(serial) == records(parallel)
    assert parallel.built("-j2") == []
    assert parallel.built("-j") == []  # -j alone: one per CPU


def test_keep_going_with_j2_builds_everything_independent(proj):
    proj.write("Datafile", BURN.replace("burn(3, seconds)", "1 / 0"))
    r = proj.run("-j2", "-k", "--json", "seconds=0.2")
    assert r.code == 1
    doc = r.json
    assert sorted(doc["built"]) == ["a", "b", "d"]
    assert [f["node"] for f in doc["failed"]] == ["c"]
    assert "ZeroDivisionError" in r.err
    # Without -k, no new step starts after the failure; what ran is kept.
    proj.write("Datafile", BURN.replace("burn(3, seconds)", "1 / 0").replace("burn(4, seconds)", "burn(5, seconds)"))
    r = proj.run("-j2", "--json", "seconds=0.2")
    assert r.code == 1
    assert "total" not in r.json["built"]


def test_early_cutoff_and_partitions_under_parallelism(proj):
    proj.write("Datafile", """
        dataset src = "src/{id}.txt"
        dataset parsed = "parsed/{id}.json"
        dataset total = "total.json"
        python:
            import time
        parsed[id]: src[id]
            time.sleep(0.5)
            [int(x) for x in src.split()]
        total: parsed
            sum(sum(v) for v in parsed.values())
    """)
    for i in range(4):
        proj.write(f"src/{i}.txt", f"{i} {i}\n")
    doc = proj.build("-j2", "total")
    assert sorted(doc["built"]) == ["parsed[0]", "parsed[1]", "parsed[2]", "parsed[3]", "total"]
    assert doc["seconds"] < 1.8  # four half-second steps on two workers
    assert json.loads(proj.read("total.json")) == 12
    proj.write("src/2.txt", "2  2\n")  # same numbers: early cutoff stops at parsed[2]
    assert proj.built("-j2", "total") == ["parsed[2]"]


def test_a_yielding_recipe_in_a_worker_records_each_partition(proj):
    proj.write("Datafile", """
        dataset chunks = "chunks/{k}.json"
        chunks:
            for i in range(5):
                if str(i) not in done:
                    yield str(i), {"i": i}
        total: chunks
            sum(v["i"] for v in chunks.values())
    """)
    assert proj.built("-j2", "total") == ["chunks", "total"]
    db = sqlite3.connect(proj.path(".datamake/state.db"))
    assert {r[0] for r in db.execute("SELECT node FROM steps WHERE node LIKE 'chunks[%'")} == {
        f"chunks[{i}]" for i in range(5)}
    assert proj.built("-j2", "total") == []


def test_dask_local_cluster_builds_the_same(tmp_path):
    serial = folder(tmp_path, "serial", BURN)
    dask = folder(tmp_path, "dask", BURN)
    assert sorted(serial.built("seconds=0.1")) == ["a", "b", "c", "d", "total"]
    r = dask.run("--executor", "dask", "-j2", "--json", "seconds=0.1")
    assert r.code == 0, r.err
    assert sorted(r.json["built"]) == ["a", "b", "c", "d", "total"]
    assert serial.read("out/total.json") == dask.read("out/total.json")
    assert records(serial) == records(dask)
    assert dask.built("--executor", "dask", "seconds=0.1") == []


def test_a_remote_cluster_cannot_use_local_files(proj):
    proj.write("Datafile", 'dataset out = "out.txt"\nout:\n    "x"\n')
    r = proj.run("--executor", "dask://10.1.2.3:8786")
    assert r.code == 2
    assert r.err.startswith("datamake: error: the Dask workers at `10.1.2.3:8786` cannot see "
                            "this machine's files: `out` (out.txt)")
    assert "s3://" in r.err


def test_logs_off_a_terminal_are_plain(proj):
    proj.write("Datafile", BURN)
    r = proj.run("-j2", "seconds=0.05")
    assert r.code == 0
    assert "\x1b" not in r.out + r.err and "\r" not in r.out + r.err
    assert sorted(line.split()[1] for line in r.out.splitlines() if line.startswith("built")) == [
        "a", "b", "c", "d", "total"]


def test_ctrl_c_with_j2_stops_everything_and_keeps_what_finished(proj):
    import os
    import signal
    import subprocess
    import sys
    import time

    from conftest import clean_env

    proj.write("Datafile", """
        python:
            import time
        all: quick slow1 slow2
        quick:
            "done"
        slow1:
            open("slow1-started", "w").close()
            time.sleep(30)
        slow2:
            time.sleep(30)
    """)
    p = subprocess.Popen([sys.executable, "-m", "datamake", "-j2"], cwd=proj.root,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env=clean_env(), start_new_session=True)
    deadline = time.monotonic() + 30
    while not proj.path("slow1-started").exists():
        assert time.monotonic() < deadline
        time.sleep(0.02)
    time.sleep(0.3)
    os.killpg(p.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the whole group
    out, err = p.communicate(timeout=30)
    assert p.returncode == 130, err
    assert "Traceback" not in err
    assert proj.plan()["fresh"] == ["quick"]  # kept, and recorded
    alive = subprocess.run(["pgrep", "-g", str(p.pid)], capture_output=True, text=True).stdout
    assert alive.strip() == ""  # no worker left behind


# -- killing the build ------------------------------------------------------------------

KILLED = """
    python:
        import os, time
%s
    all: quick a b
    quick:
        "done"
    a:
        me("a")
        time.sleep(float(os.environ.get("SLEEP", "0")))
        "a"
    b:
        me("b")
        time.sleep(float(os.environ.get("SLEEP", "0")))
        "b"
"""


def killed_datafile() -> str:
    from procutil import ME

    return KILLED % "\n".join("    " + line for line in ME.strip("\n").splitlines())


def start_j2(proj, **env):
    import subprocess
    import sys

    from conftest import clean_env

    return subprocess.Popen([sys.executable, "-m", "datamake", "-j2"], cwd=proj.root,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=clean_env(**env))


def test_kill_9_of_a_j2_build_never_hangs_the_next(proj):
    # A CI timeout or the OOM killer: the build's own process is killed outright while
    # its workers run. The workers die with it, and none keeps the build lock: the next
    # build runs at once (it waited for ever).
    from procutil import alive, idents, wait_until

    proj.write("Datafile", killed_datafile())
    p = start_j2(proj, SLEEP="60")
    wait_until(lambda: len(idents(proj.path("pids"))) == 2, 60, "both workers started")
    workers = idents(proj.path("pids"))
    assert all(alive(w) for w in workers.values())
    p.kill()
    p.communicate(timeout=30)
    wait_until(lambda: not any(alive(w) for w in workers.values()), 30,
               f"the workers {workers} died with the build")
    r = proj.run("-j2", "--json", timeout=60)  # a hang guard, never a measure
    assert r.code == 0, r.err
    assert sorted(r.json["built"]) == ["a", "b"]
    assert r.json["fresh"] == ["quick"]  # finished before the kill: kept


def test_no_worker_holds_the_build_lock(proj):
    # A flock lasts while any descriptor of it is open: a worker that inherited the
    # build's would hold the lock for as long as it lived.
    from procutil import idents, lock_holders, wait_until

    proj.write("Datafile", killed_datafile())
    p = start_j2(proj, SLEEP="60")
    wait_until(lambda: len(idents(proj.path("pids"))) == 2, 60, "both workers started")
    workers = [int(w.split()[0]) for w in idents(proj.path("pids")).values()]
    try:
        assert lock_holders([p.pid], proj.root) == [p.pid]  # the build holds it
        assert lock_holders(workers, proj.root) == []
    finally:
        p.terminate()
        p.communicate(timeout=60)


def test_sigterm_of_a_j2_build_is_an_interruption(proj):
    # As Ctrl-C: what finished is kept, the workers are stopped, and the exit status
    # says SIGTERM (143), as a process ended by it would.
    from procutil import alive, idents, wait_until

    proj.write("Datafile", killed_datafile())
    p = start_j2(proj, SLEEP="60")
    wait_until(lambda: len(idents(proj.path("pids"))) == 2, 60, "both workers started")
    workers = idents(proj.path("pids"))
    p.terminate()
    out, err = p.communicate(timeout=60)
    assert p.returncode == 143, err
    assert "interrupted; the outputs of every finished step are kept" in err
    assert "Traceback" not in err
    assert not any(alive(w) for w in workers.values())
    assert proj.plan()["fresh"] == ["quick"]
