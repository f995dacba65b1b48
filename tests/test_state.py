"""State in .datamake/: recorded per finished step, consistent after kill -9 or Ctrl-C,
locked against a second build, schema-versioned."""
from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from conftest import calls, clean_env

from datamake.state import SCHEMA_VERSION

SLOW = """
    dataset a = "out/a.txt"
    dataset b = "out/b.txt"
    dataset c = "out/c.txt"

    python:
        import os, time

        def log(name):
            with open("calls.log", "a") as f:
                f.write(name + "\\n")

    c: b
        log("c")
        b + "c"

    b: a
        log("b")
        open("b-started", "w").close()
        time.sleep(float(os.environ.get("B_SECONDS", "0")))
        a + "b"

    a:
        log("a")
        "a"
"""


def start(proj, *args, **env):
    return subprocess.Popen([sys.executable, "-m", "datamake", *args], cwd=proj.root,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=clean_env(**env))


def wait_for(path, timeout=30.0):
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)


def test_kill_9_mid_build_keeps_finished_steps(proj):
    proj.write("Datafile", SLOW)
    p = start(proj, B_SECONDS="30")
    wait_for(proj.path("b-started"))
    p.kill()  # SIGKILL: no chance to clean up
    p.wait()
    assert calls(proj) == ["a", "b"]
    assert not proj.path("out/b.txt").exists()
    # The next run keeps `a` (recorded as it finished) and redoes the rest.
    assert proj.built() == ["b", "c"]
    assert calls(proj) == ["a", "b", "b", "c"]
    assert proj.read("out/c.txt") == "abc"
    assert os.listdir(proj.path(".datamake/tmp")) == []  # leftovers were cleaned
    assert proj.built() == []


def steps_in_db(proj):
    db = sqlite3.connect(proj.path(".datamake/state.db"))
    try:
        return sorted(r[0] for r in db.execute("SELECT node FROM steps"))
    finally:
        db.close()


def killed_after_a(proj):
    """A build of SLOW killed with SIGKILL while `b` runs: `a` finished, `b` did not."""
    proj.write("Datafile", SLOW)
    p = start(proj, B_SECONDS="30")
    wait_for(proj.path("b-started"))
    p.kill()
    p.wait()


def test_a_killed_builds_journal_is_read_and_folded(proj):
    killed_after_a(proj)
    # `a` finished: its record is a journal line (after the header), not yet in the
    # database.
    assert steps_in_db(proj) == []
    header, line, end = proj.path(".datamake/journal").read_text().split("\n")
    assert (header, json.loads(line)[1][0], end) == ('["datamake-journal",2]', "a", "")
    # A dry run (no lock, no fold) reads the journal too: only b and c are stale.
    assert proj.plan()["run"] == ["b", "c"]
    assert steps_in_db(proj) == []
    # The next build folds it first, and its own records at its end.
    assert proj.built() == ["b", "c"]
    assert steps_in_db(proj) == ["a", "b", "c"]
    assert proj.path(".datamake/journal").read_text() == ""
    assert proj.built() == []


def test_a_torn_journal_line_is_ignored(proj):
    killed_after_a(proj)
    journal = proj.path(".datamake/journal")
    line = journal.read_text()
    # As if killed in the middle of writing the line of `b`, after the line of `a`.
    journal.write_text(line + line[: len(line) // 2])
    assert proj.built() == ["b", "c"]
    assert calls(proj) == ["a", "b", "b", "c"]
    assert proj.built() == []


def test_a_journal_line_that_is_not_one_is_not_trusted(proj):
    killed_after_a(proj)
    journal = proj.path(".datamake/journal")
    good = journal.read_text()
    # Valid JSON, but not a record (another version's, or garbage): it and what follows
    # are ignored, and the build neither crashes nor trusts them.
    journal.write_text('["step", ["b"], [], null]\n' + good)
    assert proj.built() == ["a", "b", "c"]
    journal.write_text(good + '{"not": "a list"}\n')
    assert proj.built() == []


def test_a_journal_of_another_version_is_not_read(proj):
    killed_after_a(proj)
    journal = proj.path(".datamake/journal")
    header, line = journal.read_text().split("\n")[:2]
    # The same line under another version's header, or under none (the first
    # journals had no header): not read, so `a` runs again.
    journal.write_text('["datamake-journal",1]\n' + line + "\n")
    assert proj.plan()["run"] == ["a", "b", "c"]
    journal.write_text(line + "\n")
    assert proj.plan()["run"] == ["a", "b", "c"]
    assert proj.built() == ["a", "b", "c"]
    assert journal.read_text() == ""
    assert proj.built() == []


def test_a_build_after_a_torn_first_line_keeps_its_journal_readable(proj):
    # A build killed while writing its journal's first line left a fragment. The next
    # build starts the journal afresh: killed in its turn after `a`, its line of `a`
    # is read (it would be glued to the fragment and lost if appended after it).
    proj.write("Datafile", SLOW)
    proj.path(".datamake").mkdir()
    proj.path(".datamake/journal").write_text('["datamake-jour')
    killed_after_a(proj)
    assert calls(proj) == ["a", "b"]
    assert proj.plan()["run"] == ["b", "c"]
    assert proj.built() == ["b", "c"]


def test_ctrl_c_exits_130_and_keeps_finished_steps(proj):
    proj.write("Datafile", SLOW)
    p = start(proj, B_SECONDS="30")
    wait_for(proj.path("b-started"))
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=30)
    assert p.returncode == 130
    assert "interrupted" in err and "Traceback" not in err
    assert proj.built() == ["b", "c"]
    assert calls(proj) == ["a", "b", "b", "c"]


def test_a_second_build_waits_for_the_first(proj):
    proj.write("Datafile", SLOW)
    first = start(proj, B_SECONDS="2")
    wait_for(proj.path("b-started"))
    second = start(proj, "--json")
    out2, err2 = second.communicate(timeout=60)
    out1, err1 = first.communicate(timeout=60)
    assert (first.returncode, second.returncode) == (0, 0)
    assert f"waiting for another datamake (pid {first.pid})" in err2
    assert calls(proj) == ["a", "b", "c"]  # the second found it all done
    import json

    assert json.loads(out2)["built"] == []


def test_state_of_another_schema_says_how_to_start_over(proj):
    proj.write("Datafile", SLOW)
    proj.built()
    db = sqlite3.connect(proj.path(".datamake/state.db"))
    db.execute("UPDATE meta SET value='999' WHERE key='schema'")
    db.commit()
    db.close()
    r = proj.run()
    assert r.code == 2
    assert r.err == ("datamake: error: `" + str(proj.path(".datamake/state.db")) +
                     "` was written by another version of datamake (state schema 999, "
                     f"this one reads {SCHEMA_VERSION})\nhelp: delete `" + str(proj.path(".datamake")) +
                     "` to start over: the next build rebuilds what it cannot verify\n")


@pytest.mark.parametrize("how", ["damaged", "deleted"])
def test_a_lost_state_restores_intact_outputs_from_the_cache(proj, how):
    # The local cache's entries are also kept beside its objects: a new database takes
    # them back, and the steps come back from the cache instead of running again.
    proj.write("Datafile", SLOW)
    assert proj.built() == ["a", "b", "c"]
    for suffix in ("", "-wal", "-shm"):
        p = proj.path(f".datamake/state.db{suffix}")
        if p.exists():
            if how == "damaged":
                p.write_bytes(b"this is not a database" * 100)
            else:
                p.unlink()
    r = proj.run("--json")
    assert r.code == 0, r.err
    assert (r.json["built"], r.json["cached"]) == ([], ["a", "b", "c"])
    assert calls(proj) == ["a", "b", "c"]
    assert "Traceback" not in r.err
    if how == "damaged":
        assert r.err == (f"datamake: warning: `{proj.path('.datamake/state.db')}` was damaged: "
                         f"it is set aside as `{proj.path('.datamake/state.db.damaged')}`, and "
                         f"this build starts a new state (restoring from the cache, or "
                         f"rebuilding, what it cannot verify)\n")
        assert proj.path(".datamake/state.db.damaged").exists()
    assert proj.built() == []
    assert proj.read("out/c.txt") == "abc"


def test_the_cache_index_is_written_afresh_by_gc(proj):
    proj.write("Datafile", SLOW)
    assert proj.built() == ["a", "b", "c"]
    index = proj.path(".datamake/cache/index")
    assert len(index.read_text().splitlines()) == 3
    assert proj.built("-B") == ["a", "b", "c"]  # the same entries again
    assert len(index.read_text().splitlines()) == 6
    assert proj.run("--gc").code == 0  # nothing to trim: the index is compacted
    assert len(index.read_text().splitlines()) == 3
    assert proj.run("--gc", "0").code == 0
    assert index.read_text() == ""
    proj.path(".datamake/state.db").unlink()
    assert proj.built() == ["a", "b", "c"]  # nothing left to restore from


def test_a_damaged_state_stops_a_dry_run_with_a_hint(proj):
    proj.write("Datafile", SLOW)
    proj.built()
    proj.path(".datamake/state.db").write_bytes(b"this is not a database" * 100)
    for suffix in ("-wal", "-shm"):
        proj.path(f".datamake/state.db{suffix}").unlink(missing_ok=True)
    r = proj.run("-n")
    assert r.code == 2
    assert r.err.startswith(f"datamake: error: `{proj.path('.datamake/state.db')}` is damaged (")
    assert r.err.endswith("help: run a build: it sets the damaged database aside and starts a "
                          "new state, restoring from the cache or rebuilding what it cannot "
                          "verify\n")
    assert proj.path(".datamake/state.db").exists()  # a dry run changes nothing


@pytest.mark.parametrize("entry", ["journal", "lock", "state.db", "cache/index"])
def test_a_folder_where_datamake_keeps_a_file_is_one_clear_error(proj, entry):
    proj.write("Datafile", SLOW)
    proj.built()
    path = proj.path(f".datamake/{entry}")
    path.unlink()
    path.mkdir()
    r = proj.run()
    assert (r.code, r.err) == (2, f"datamake: error: `{path}` is not a file, as datamake keeps "
                                  f"it\nhelp: remove it (`rm -r {path}`): datamake makes it "
                                  f"again, and what it cannot verify is built again\n")


def test_a_file_where_datamake_keeps_its_folder_is_one_clear_error(proj):
    proj.write("Datafile", SLOW)
    proj.path(".datamake").write_text("mine")
    for args in ((), ("-n",), ("--gc", "0")):
        r = proj.run(*args)
        assert (r.code, r.err) == (2, f"datamake: error: `{proj.path('.datamake')}` is a file, "
                                      f"but datamake keeps its state in a folder of that name\n"
                                      f"help: move the file away: the next build starts a new "
                                      f"state there\n"), args
    assert proj.read(".datamake") == "mine"


def test_run_history_is_recorded(proj):
    proj.write("Datafile", SLOW)
    proj.built()
    db = sqlite3.connect(proj.path(".datamake/state.db"))
    runs = db.execute("SELECT status, versions FROM runs").fetchall()
    steps = db.execute("SELECT node, status FROM run_steps ORDER BY rowid").fetchall()
    assert runs[0][0] == "ok" and '"python"' in runs[0][1]
    assert steps == [("a", "built"), ("b", "built"), ("c", "built")]


def test_run_history_is_trimmed(proj, monkeypatch):
    import datamake.state as state_mod
    from datamake.state import State

    monkeypatch.setattr(state_mod, "KEEP_RUNS", 150)
    st = State(proj.root)
    for _ in range(300):
        st.begin_run(["datamake"])
        st.record_run_step("x", "built", 0.1, [])
        st.end_run("ok")
    ids = [r[0] for r in st.db.execute("SELECT id FROM runs ORDER BY id")]
    assert ids[0] == 151 and ids[-1] == 300
    assert st.db.execute("SELECT COUNT(*) FROM run_steps").fetchone()[0] == 150
    st.close()


def test_young_stamps_are_trusted_once_old_enough(proj):
    # A stamp recorded within 20 ms of the file's mtime is not trusted (it is stored
    # empty, so the next check hashes). At the end of the build, outputs that have aged
    # by then get their stamps; the last one, written just now, is left to the next run.
    proj.write("Datafile", """
        dataset a = "out/a.txt"
        dataset b = "out/b.txt"
        dataset c = "out/c.txt"

        python:
            import time

        c: b
            time.sleep(0.05)
            b + "c"

        b: a
            time.sleep(0.05)
            a + "b"

        a:
            "a"
    """)
    assert proj.built() == ["a", "b", "c"]
    db = sqlite3.connect(proj.path(".datamake/state.db"))
    stamps = dict(db.execute("SELECT node, out_stamps FROM steps"))
    db.close()
    now = {}
    for node in ("a", "b", "c"):
        st = os.stat(proj.path(f"out/{node}.txt"))
        now[node] = f"{st.st_mtime_ns}:{st.st_size}:{st.st_ino}"
    assert stamps["a"] == now["a"] and stamps["b"] == now["b"]
    assert stamps["c"] in ("", now["c"])  # "" unless the machine paused 20 ms just then
    assert proj.built() == []


def build_upper(proj, monkeypatch, n: int):
    """A pattern rule over `n` inputs, built in this process (Project.build)."""
    import datamake

    proj.write("Datafile", """
        dataset src = "in/{k}.txt"
        dataset up = "out/{k}.txt"

        up[k]: src[k]
            src.upper()
    """)
    for k in range(n):
        proj.write(f"in/{k}.txt", f"text {k}\n")
    monkeypatch.chdir(proj.root)
    project = datamake.Project(proj.path("Datafile"))
    try:
        return project.build()
    finally:
        project.close()


def test_a_long_build_folds_its_journal_as_it_goes(proj, monkeypatch):
    # The journal is folded every FOLD_EVERY lines, so memory and the file stay bounded
    # on a build of a hundred thousand partitions; the records are the same.
    import datamake.state as state_mod

    monkeypatch.setattr(state_mod, "FOLD_EVERY", 3)
    folds = []
    real_fold = state_mod.State.fold

    def fold(self):
        folds.append(self._journal_lines)
        real_fold(self)

    monkeypatch.setattr(state_mod.State, "fold", fold)
    result = build_upper(proj, monkeypatch, 8)
    assert sorted(result.names("built")) == [f"up[{k}]" for k in range(8)]
    assert [n for n in folds if n] == [3, 3, 2]  # two folds on the way, one at the end
    assert steps_in_db(proj) == [f"up[{k}]" for k in range(8)]
    assert proj.path(".datamake/journal").read_text() == ""
    assert proj.built() == []


def test_cache_lookups_see_entries_added_since_an_empty_table_was_seen(tmp_path):
    # An empty cache table is noted once (a first build asks for every step); an entry
    # added since is still found.
    from datamake.state import State

    st = State(tmp_path)
    assert st.cache_entry("s1") is None
    st.cache_add("s1", [("out", "d1")], [("d1", 3)])
    assert st.cache_entry("s1") == [("out", "d1")]
    st.close()


def test_an_empty_cache_table_seen_before_a_lock_is_asked_again_after(tmp_path):
    from datamake.state import State

    st = State(tmp_path)
    assert st.cache_entry("s9") is None  # the table is empty now
    other = State(tmp_path)
    other.cache_add("s9", [("out", "d9")], [("d9", 1)])
    other.close()
    st.lock(lambda pid: None)  # a build starts from the state as it is now
    assert st.cache_entry("s9") == [("out", "d9")]
    st.unlock()
    st.close()


def test_a_build_whose_last_step_fills_the_journal_keeps_its_record(proj, monkeypatch):
    # The line that reaches FOLD_EVERY is folded with the others, not left in memory
    # only (it was once: the next build ran that step again, one in every 10,000).
    import datamake.state as state_mod

    monkeypatch.setattr(state_mod, "FOLD_EVERY", 3)
    first = build_upper(proj, monkeypatch, 9)
    assert sorted(first.names("built")) == [f"up[{k}]" for k in range(9)]
    assert steps_in_db(proj) == [f"up[{k}]" for k in range(9)]
    second = build_upper(proj, monkeypatch, 9)
    assert second.names("built") == [] and len(second.names("fresh")) == 9


def test_a_failed_steps_text_is_kept_until_it_succeeds(proj):
    from datamake.state import State

    proj.write("Datafile", """
        param n = 0
        dataset out = "out.txt"

        out: n
            str(1 / n)
    """)
    r = proj.run()
    assert r.code == 1
    state = State(proj.root)
    text = state.failure("out")
    assert text is not None and "ZeroDivisionError" in text
    assert 'File "Datafile", line 5, in out' in text
    assert state.last_runs()["out"][0] == "failed"
    state.close()
    assert proj.run("n=2").code == 0
    state = State(proj.root)
    assert state.failure("out") is None
    assert state.last_runs()["out"][0] == "built"
    state.close()


def _as_schema(proj, version: int, *statements: str) -> None:
    """Make the project's state look as an older datamake left it."""
    db = sqlite3.connect(proj.path(".datamake/state.db"))
    for sql in statements:
        db.execute(sql)
    db.execute("UPDATE meta SET value=? WHERE key='schema'", (str(version),))
    db.commit()
    db.close()


def test_a_state_of_schema_4_is_upgraded_in_place(proj):
    # The failures table came with schema 5: a state of schema 4 (BLAKE3 digests already)
    # gets it, and keeps its records.
    proj.write("Datafile", SLOW)
    assert proj.built() == ["a", "b", "c"]
    _as_schema(proj, 4, "DROP TABLE failures", "ALTER TABLE run_steps DROP COLUMN peak_kb")
    assert proj.built() == []
    from datamake.state import State

    state = State(proj.root)
    assert state.failure("a") is None
    state.close()


def test_a_state_of_schema_5_is_upgraded_in_place(proj):
    # Peak memory came with schema 6: a state of schema 5 gets the column, keeps its
    # records and its run history, and records peaks from then on.
    proj.write("Datafile", SLOW)
    assert proj.built() == ["a", "b", "c"]
    _as_schema(proj, 5, "ALTER TABLE run_steps DROP COLUMN peak_kb")
    assert proj.built() == []
    proj.write("Datafile", SLOW.replace('a + "b"', 'a + "B"'))
    assert proj.built() == ["b", "c"]
    from datamake.state import State

    state = State(proj.root)
    rows = state.history("b")
    state.close()
    assert [r[1] for r in rows] == ["built", "built"]
    assert rows[0][3] is not None and rows[1][3] is None
