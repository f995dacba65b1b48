"""`datamake --watch` with a real watchdog observer and real file changes, run as a
subprocess. No fixed sleeps beyond what is needed: each test polls for the state it
expects, with a timeout."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pytest

import datamake
from conftest import calls as logged, clean_env

DATAFILE = """
    param suffix = "!"
    dataset text = "in/text.txt"
    dataset shout = "out/shout.txt"

    python:
        from helpers import loud

    shout: text suffix
        with open("calls.log", "a") as f:
            f.write("shout\\n")
        loud(text) + suffix
"""


class Watcher:
    def __init__(self, proj, *args):
        self.proj = proj
        self.lines: list[str] = []
        self.p = subprocess.Popen([sys.executable, "-m", "datamake", "--watch", *args],
                                  cwd=proj.root, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True, env=clean_env())
        self.t = threading.Thread(target=self._read, daemon=True)
        self.t.start()

    def _read(self):
        for line in self.p.stdout:
            self.lines.append(line.rstrip("\n"))

    def count(self, text: str) -> int:
        return sum(text in line for line in self.lines)

    def wait(self, pred, timeout: float = 60.0, what: str = "") -> None:
        deadline = time.monotonic() + timeout
        while not pred():
            assert self.p.poll() is None, "the watcher died:\n" + "\n".join(self.lines)
            assert time.monotonic() < deadline, f"timed out waiting for {what}:\n" + "\n".join(self.lines)
            time.sleep(0.02)

    def idle(self, n: int, timeout: float = 60.0) -> None:
        """Wait for the n-th 'waiting for changes'."""
        self.wait(lambda: self.count("waiting for changes") >= n, timeout, what=f"build #{n}")

    def stop(self) -> int:
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGINT)
        code = self.p.wait(timeout=15)
        self.t.join(timeout=5)
        return code


@pytest.fixture
def watcher(proj):
    proj.write("Datafile", DATAFILE)
    proj.write("helpers.py", "def loud(s):\n    return s.strip().upper()\n")
    proj.write("in/text.txt", "hello\n")
    w = Watcher(proj)
    w.idle(1, timeout=30)  # the first build starts an interpreter: slow disks take long
    assert proj.read("out/shout.txt") == "HELLO!"
    yield w
    code = w.stop()
    assert code in (0, 130)
    own = os.path.dirname(datamake.__file__)
    assert not any(own in line for line in w.lines), "\n".join(w.lines)  # no datamake frames


def calls(proj):
    return len(logged(proj))


def test_an_input_edit_rebuilds_quickly(watcher, proj):
    t = time.monotonic()
    proj.write("in/text.txt", "again\n")
    watcher.wait(lambda: proj.path("out/shout.txt").read_text() == "AGAIN!", timeout=5,
                 what="the rebuilt output")
    assert time.monotonic() - t < 3
    watcher.idle(2)


def test_an_atomic_rename_over_save_rebuilds(watcher, proj):
    tmp = proj.write("in/.text.txt.swp", "renamed\n")
    os.replace(tmp, proj.path("in/text.txt"))
    watcher.wait(lambda: proj.read("out/shout.txt") == "RENAMED!", what="rename-over save")


def test_a_helper_module_edit_rebuilds(watcher, proj):
    proj.write("helpers.py", "def loud(s):\n    return s.strip().upper() + '?'\n")
    watcher.wait(lambda: proj.read("out/shout.txt") == "HELLO?!", what="helper change")


def test_a_touch_without_change_runs_nothing(watcher, proj):
    os.utime(proj.path("in/text.txt"))
    watcher.idle(2)  # it looked...
    assert calls(proj) == 1  # ...and ran nothing
    assert watcher.count("is up to date") == 1


def test_a_burst_of_writes_is_one_rebuild(watcher, proj):
    for i in range(50):
        proj.write("in/text.txt", f"burst {i}\n")
    watcher.wait(lambda: proj.read("out/shout.txt") == "BURST 49!", what="the last write")
    watcher.idle(2)
    time.sleep(1.0)  # longer than the quiet period: no second rebuild follows
    assert watcher.count("rebuilding") == 1
    assert calls(proj) == 2


def test_its_own_outputs_never_trigger_a_rebuild(watcher, proj):
    proj.write("in/text.txt", "one\n")
    watcher.idle(2)
    time.sleep(1.5)
    assert watcher.count("rebuilding") == 1
    proj.write("out/notes.txt", "not a source\n")  # a file next to the outputs
    proj.write(".datamake/junk", "x")
    time.sleep(1.0)
    assert watcher.count("rebuilding") == 1


def test_survives_a_broken_datafile_and_a_failing_recipe(watcher, proj):
    proj.write("Datafile", DATAFILE.replace("shout: text suffix", "shout text suffix"))
    watcher.wait(lambda: watcher.count("expected `:` after the outputs of a rule") == 1,
                 what="the syntax error")
    watcher.idle(2)
    proj.write("Datafile", DATAFILE.replace("loud(text) + suffix", "loud(text) + 1"))
    watcher.wait(lambda: watcher.count("TypeError") >= 1, what="the failing recipe")
    watcher.idle(3)
    proj.write("Datafile", DATAFILE.replace("loud(text) + suffix", "loud(text) + '?'"))
    watcher.wait(lambda: proj.read("out/shout.txt") == "HELLO?", what="the fix")


def test_sigint_stops_it(proj):
    proj.write("Datafile", DATAFILE)
    proj.write("helpers.py", "def loud(s):\n    return s.upper()\n")
    proj.write("in/text.txt", "x")
    w = Watcher(proj)
    w.idle(1)
    assert w.stop() == 0
    assert w.lines[-1] == "datamake watch: stopped watching"


def test_a_datafile_broken_from_the_start_is_watched_until_fixed(proj):
    proj.write("Datafile", DATAFILE.replace("shout: text suffix", "shout text suffix"))
    proj.write("helpers.py", "def loud(s):\n    return s.strip().upper()\n")
    proj.write("in/text.txt", "hello\n")
    w = Watcher(proj)
    try:
        w.idle(1)
        assert w.count("expected `:` after the outputs of a rule") == 1
        assert not proj.path("out/shout.txt").exists()
        proj.write("Datafile", DATAFILE)
        w.wait(lambda: proj.path("out/shout.txt").exists(), what="the build after the fix")
        assert proj.read("out/shout.txt") == "HELLO!"
    finally:
        assert w.stop() in (0, 130)
