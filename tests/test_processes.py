"""The processes datamake starts end with it and never keep its lock: forked children
close the build lock, the half-parser and pool workers die with their parent, a shell
line's background children are stopped and reaped when the line ends."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from conftest import clean_env
from procutil import alive, lock_holders, wait_until

from datamake import processes
from datamake.state import State


def test_a_forked_child_does_not_hold_the_build_lock(tmp_path):
    # A flock lasts while any descriptor of it is open: a child of the build (a pool
    # worker, a recipe's own fork) that kept one would make later builds wait as long
    # as it lives.
    state = State(tmp_path)
    state.lock()
    try:
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: report what it holds, then vanish
            try:
                held = lock_holders([os.getpid()], tmp_path)
                os.write(w, b"held" if held else b"free")
            finally:
                os._exit(0)
        os.close(w)
        said = os.read(r, 10)
        os.waitpid(pid, 0)
        os.close(r)
        assert said == b"free"
        assert lock_holders([os.getpid()], tmp_path) == [os.getpid()]  # still ours
        # Nor do programs it runs inherit it.
        fds = subprocess.run(["ls", "-l", "/proc/self/fd"], capture_output=True,
                             text=True, close_fds=False).stdout
        assert ".datamake/lock" not in fds
    finally:
        state.close()
    assert lock_holders([os.getpid()], tmp_path) == []


def children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def ident(pid: int) -> str:
    with open(f"/proc/{pid}/stat") as f:
        return f"{pid} {f.read().rsplit(')', 1)[1].split()[19]}"


def cpu_ticks(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def test_killing_check_kills_the_half_parser(proj):
    # A Datafile of 2,000 lines or more is parsed in two halves, the second by a forked
    # child; killed meanwhile (a timeout around `--check`), the parent takes the child
    # with it (it went on parsing alone: 27 s and 1.2 GB in one case). The child is
    # stopped before the parent is killed, so that only a signal can end it: ending its
    # parse on its own would not do.
    proj.write("Datafile", "\n".join(f"r{i}:\n    {i} + 1\n" for i in range(20000)),
               dedent=False)
    p = subprocess.Popen([sys.executable, "-m", "datamake", "--check"], cwd=proj.root,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=clean_env())
    kids: list[str] = []
    try:
        wait_until(lambda: children(p.pid) or p.poll() is not None, 60, "the fork")
        kid = children(p.pid)[0]
        kids = [ident(kid)]
        # Parsing, so past its first acts (asking for the parent-death signal).
        wait_until(lambda: cpu_ticks(kid) >= 20, 60, "the child parsing")
        os.kill(kid, signal.SIGSTOP)
        p.kill()
        p.wait()
        wait_until(lambda: not alive(kids[0]), 30, "the stopped half-parser died with its parent")
    finally:
        p.kill()
        p.wait()
        for k in kids:
            if alive(k):
                os.kill(int(k.split()[0]), signal.SIGKILL)


def test_a_child_whose_parent_is_gone_exits_at_once(tmp_path):
    # The parent-death signal is asked for after the fork: a parent that died before
    # that would never send it. The child sees it and exits.
    import select

    marker = tmp_path / "survived"
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the parent-to-be-dead
        try:
            os.close(r)
            parent = os.getpid()
            if os.fork() == 0:  # the child: holds `w` open until it ends
                while os.getppid() == parent:
                    time.sleep(0.01)
                processes.die_with_parent(parent)
                marker.write_text("yes")
        finally:
            os._exit(0)
    os.close(w)
    os.waitpid(pid, 0)
    ready, _, _ = select.select([r], [], [], 30)  # a hang guard
    assert ready and os.read(r, 1) == b""  # the end of the pipe: the child ended
    os.close(r)
    assert not marker.exists()


SHELL = """
    dataset out = "out.txt"
    out:
        $ sleep 60 & echo "$! $(cut -d' ' -f22 /proc/$!/stat)" > bg.id; echo done > {out}
"""


def test_a_shell_lines_background_children_end_with_it(proj):
    # `cmd &` in a shell line outlived the step and the build, held the build's output
    # open (a CI log reading it waited for the child), and ended as a zombie where init
    # does not reap. Now it is stopped when the line ends, and reaped.
    proj.write("Datafile", SHELL)
    r = proj.run("--json", timeout=30)  # hang guard: the child sleeps 60 s
    assert r.code == 0, r.err
    assert r.json["built"] == ["out"]
    bg = proj.read("bg.id").split()
    assert processes_state(bg) is None  # gone: not even a zombie


def test_background_children_end_with_their_line_in_a_pool_worker(proj):
    proj.write("Datafile", SHELL)
    r = proj.run("--json", "-j2", timeout=30)
    assert r.code == 0, r.err
    assert processes_state(proj.read("bg.id").split()) is None


def processes_state(bg: list[str]) -> str | None:
    from procutil import state

    return state(" ".join(bg))


def test_a_line_that_ignores_sigterm_is_killed_after_its_grace(tmp_path, monkeypatch):
    monkeypatch.setattr(processes, "GRACE", 0.2)
    code = processes.run_line(
        ["sh", "-c", "(trap '' TERM; echo $$ > started; exec sleep 60) & "
                     "while [ ! -s started ]; do sleep 0.01; done; "
                     "echo \"$! $(cut -d' ' -f22 /proc/$!/stat)\" > bg.id"], tmp_path)
    assert code == 0
    bg = (tmp_path / "bg.id").read_text().split()
    assert processes_state(bg) is None


def test_an_interrupted_line_is_stopped_with_its_children(tmp_path):
    # Ctrl-C (or SIGTERM) while a line runs: the line and what it started are stopped.
    restore = processes.handle_signals()
    try:
        def interrupt(signum, frame):
            raise processes.Interrupted(signal.SIGINT)

        signal.signal(signal.SIGALRM, interrupt)
        signal.setitimer(signal.ITIMER_REAL, 0.5)
        try:
            processes.run_line(["sh", "-c", "sleep 60 & echo \"$! $(cut -d' ' -f22 "
                                "/proc/$!/stat)\" > bg.id; echo $$ > sh.pid; sleep 60"],
                               tmp_path)
        except processes.Interrupted:
            pass
        else:
            raise AssertionError("not interrupted")
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, signal.SIG_DFL)
        restore()
    bg = (tmp_path / "bg.id").read_text().split()
    assert processes_state(bg) is None
    sh = int((tmp_path / "sh.pid").read_text())
    assert not os.path.exists(f"/proc/{sh}")
