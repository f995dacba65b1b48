"""A recipe never sets datamake's exit code: `sys.exit`, `os._exit`, its own
`KeyboardInterrupt` and a worker process dying are each a failed step (exit 1, a clear
message, the other steps kept, -k going on), in the build's process, in a pool and on
Dask. Only a signal sent to datamake (Ctrl-C, SIGTERM) stops the build."""
from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from conftest import calls, clean_env

EXITS = """
    python:
        import os, sys

    all: ok zero three bare hard ki after

    ok:
        "ok"
    zero:
        sys.exit(0)
    three:
        sys.exit(3)
    bare:
        raise SystemExit
    hard:
        os._exit(5)
    ki:
        raise KeyboardInterrupt
    after: ok
        ok + "!"
"""

MESSAGES = {
    "zero": "Datafile:9: the recipe of `zero` called sys.exit(0)",
    "three": "Datafile:11: the recipe of `three` called sys.exit(3)",
    "bare": "Datafile:13: the recipe of `bare` called sys.exit()",
    "hard": "Datafile:15: the recipe of `hard` called os._exit(5)",
    "ki": "Datafile:17: the recipe of `ki` raised KeyboardInterrupt",
}


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_a_recipe_that_exits_is_a_failed_step(proj, jobs):
    proj.write("Datafile", EXITS)
    r = proj.run("-k", "--json", "-j", jobs)
    assert r.code == 1, r.err
    assert sorted(r.json["built"]) == ["after", "ok"]
    assert {f["node"]: f["error"] for f in r.json["failed"]} == MESSAGES
    for name in MESSAGES:
        assert f"FAILED {name}" in r.err
    assert ("help: a recipe ends its step, never the build: raise an exception to fail "
            "the step, or return its value") in r.err
    assert "BrokenProcessPool" not in r.err and "datamake/" not in r.err
    # What was built is kept and recorded; the failed steps run again.
    r = proj.run("-k", "--json", "-j", jobs)
    assert r.code == 1
    assert (sorted(r.json["fresh"]), r.json["built"]) == (["after", "ok"], [])
    assert sorted(f["node"] for f in r.json["failed"]) == sorted(MESSAGES)


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_sys_exit_0_never_ends_a_build_green(proj, jobs):
    proj.write("Datafile", """
        python:
            import sys
        all: a b
        a:
            sys.exit(0)
        b:
            "b"
    """)
    r = proj.run("-j", jobs)
    assert r.code == 1, r.err  # was 0: CI went green with nothing built
    assert "the recipe of `a` called sys.exit(0)" in r.err
    if jobs == "1":
        assert not proj.path(".datamake/data/b.pkl").exists()  # stopped there (no -k)


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_a_python_block_that_exits_fails_its_steps(proj, jobs):
    proj.write("Datafile", """
        python:
            import sys
            sys.exit(2)
        out:
            "x"
    """)
    r = proj.run("--json", "-j", jobs)
    assert r.code == 1, r.err
    assert r.json["failed"] == [{"node": "out", "error":
                                 "Datafile:3: the `python:` block called sys.exit(2)"}]


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_a_yielding_recipe_that_exits_keeps_its_partitions(proj, jobs):
    proj.write("Datafile", """
        dataset parts = "parts/{k}.json"
        python:
            import os, sys
            def log(name):
                with open("calls.log", "a") as f:
                    f.write(name + "\\n")
        parts:
            for k in "abc":
                if k not in done:
                    log(k)
                    if k == "c" and not os.path.exists("fixed"):
                        os._exit(4)
                    yield k, k
    """)
    r = proj.run("--json", "-j", jobs)
    assert r.code == 1, r.err
    assert r.json["failed"] == [{"node": "parts", "error":
                                 "Datafile:12: the recipe of `parts` called os._exit(4)"}]
    assert sorted(os.listdir(proj.path("parts"))) == ["a.json", "b.json"]
    proj.write("fixed", "")
    assert proj.built("-j", jobs) == ["parts"]
    assert calls(proj) == ["a", "b", "c", "c"]  # a and b were kept: not made again


def test_on_dask_a_recipe_that_exits_is_a_failed_step(proj):
    proj.write("Datafile", """
        python:
            import os, sys
        all: ok three hard
        ok:
            "ok"
        three:
            sys.exit(3)
        hard:
            os._exit(5)
    """)
    r = proj.run("-k", "--json", "--executor", "dask", "-j2")
    assert r.code == 1, r.err
    assert r.json["built"] == ["ok"]
    assert {f["node"]: f["error"] for f in r.json["failed"]} == {
        "three": "Datafile:7: the recipe of `three` called sys.exit(3)",
        "hard": "Datafile:9: the recipe of `hard` called os._exit(5)"}


def test_a_recipes_own_forks_exit_for_real(proj):
    # os._exit is the real one in a process the recipe forks (multiprocessing's fork
    # start method ends its children with it): only the recipe's own call is caught.
    proj.write("Datafile", """
        python:
            import multiprocessing, os

            def square(q, x):
                q.put(x * x)

        out:
            pid = os.fork()
            if pid == 0:
                os._exit(7)
            _, status = os.waitpid(pid, 0)
            ctx = multiprocessing.get_context("fork")
            q = ctx.Queue()
            p = ctx.Process(target=square, args=(q, 6))
            p.start()
            value = q.get()
            p.join()
            [os.waitstatus_to_exitcode(status), p.exitcode, value]
    """)
    assert proj.built() == ["out"]
    r = subprocess.run([sys.executable, "-c", "import datamake, json; "
                        "print(json.dumps(datamake.Project('Datafile').load('out')))"],
                       cwd=proj.root, capture_output=True, text=True, env=clean_env())
    assert r.stdout.strip() == "[7, 0, 36]", r.stderr


DIES = """
    python:
        import os, signal, time
        def log(name):
            with open("calls.log", "a") as f:
                f.write(name + "\\n")
    all: slow dies after
%s
    after: slow
        slow + "!"
"""
SLOW = """
    slow:
        log("slow")
        time.sleep(float(os.environ.get("SLOW", "0")))
        "slow"
"""
DYING = """
    dies:
        log("dies")
        time.sleep(0.2)
        os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.mark.parametrize("slow,first", [("0", "slow"), ("1.5", "slow"), ("1.5", "dies")])
def test_a_worker_that_dies_fails_its_step_and_the_pool_goes_on(proj, slow, first):
    # A worker killed outright (the OOM killer, a crash in native code) takes Python's
    # pool with it: a new pool takes its place. With `slow` running beside it, which
    # step killed its worker is not known: both run again alone (in the order they were
    # started: `first`), and only the one that dies again fails.
    rules = SLOW + DYING if first == "slow" else DYING + SLOW
    proj.write("Datafile", DIES % rules)
    r = proj.run("-k", "--json", "-j2", env=clean_env(SLOW=slow))
    assert r.code == 1, r.err
    assert sorted(r.json["built"]) == ["after", "slow"]
    assert r.json["failed"] == [{"node": "dies", "error": "the worker process running "
                                 "`dies` died (killed by signal 9 (SIGKILL; out of memory?))"}]
    assert "help: the process ended without an exception" in r.err
    assert "BrokenProcessPool" not in r.err and "Traceback" not in r.err
    # Each ran once, or twice when they were running together (usually with slow=1.5).
    ran = calls(proj)
    assert ran.count("dies") in (1, 2) and ran.count("slow") in (1, 2), ran


def test_a_real_ctrl_c_stops_the_build_even_if_a_recipe_swallows_it(proj):
    # SIGINT sent to datamake while a recipe runs in its process: the recipe catches the
    # KeyboardInterrupt and returns, but the build stops there (130), its step kept.
    proj.write("Datafile", """
        python:
            import time
        all: first second
        first:
            try:
                open("started", "w").close()
                time.sleep(60)
            except KeyboardInterrupt:
                pass
            "first"
        second: first
            open("second-ran", "w").close()
            first + "second"
    """)
    p = subprocess.Popen([sys.executable, "-m", "datamake"], cwd=proj.root,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env=clean_env())
    from procutil import wait_until

    wait_until(lambda: proj.path("started").exists(), 60, "the recipe started")
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 130, err
    assert not proj.path("second-ran").exists()
    assert proj.plan()["fresh"] == ["first"]


def test_sigterm_stops_a_serial_build_and_its_shell_line(proj):
    # SIGTERM (a CI timeout, `kill`) is handled as Ctrl-C: the running shell line and
    # what it started are stopped, what finished is kept, the exit status is 143.
    from procutil import alive, wait_until

    proj.write("Datafile", """
        dataset out = "out.txt"
        all: quick out
        quick:
            "quick"
        out:
            $ sleep 60 & echo "$! $(cut -d' ' -f22 /proc/$!/stat)" > bg.id; sleep 60; echo x > {out}
    """)
    p = subprocess.Popen([sys.executable, "-m", "datamake"], cwd=proj.root,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env=clean_env())
    wait_until(lambda: proj.path("bg.id").exists() and proj.read("bg.id").strip(), 60,
               "the shell line started")
    bg = proj.read("bg.id").strip()
    assert alive(bg)
    p.terminate()
    out, err = p.communicate(timeout=60)
    assert p.returncode == 143, err
    assert "interrupted; the outputs of every finished step are kept" in err
    assert not alive(bg)
    assert proj.plan()["fresh"] == ["quick"]
