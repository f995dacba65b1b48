"""The processes datamake starts end with it and never keep its lock: forked children
close the build lock, the half-parser and pool workers die with their parent, a shell
line's background children are stopped and reaped when the line ends."""
from __future__ import annotations

import os
import subprocess

from procutil import lock_holders

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
