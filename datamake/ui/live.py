"""The builds under way, as the events they wrote (see `events.py`): what a page that
opens mid-build replays before it follows the new ones. A build's events are dropped
when it ends, or when its process is found gone without an end (killed)."""
from __future__ import annotations

import time
from typing import Any, Callable


class Live:
    def __init__(self) -> None:
        self.builds: dict[int, list[dict[str, Any]]] = {}  # pid -> its events, in order
        self.generation = 0  # builds ended since the server started

    def apply(self, event: dict[str, Any]) -> None:
        pid = event.get("pid")
        if not isinstance(pid, int):
            return
        if event.get("event") == "end":
            self.builds.pop(pid, None)
            self.generation += 1
        else:
            self.builds.setdefault(pid, []).append(event)

    def reap(self, alive: Callable[[int], bool]) -> list[dict[str, Any]]:
        """`end` events for the builds whose process is gone without one."""
        gone = [pid for pid in self.builds if not alive(pid)]
        ends = [{"event": "end", "pid": pid, "t": time.time(), "status": "killed",
                 "seconds": None} for pid in gone]
        for e in ends:
            self.apply(e)
        return ends

    def replay(self) -> list[dict[str, Any]]:
        return [e for events in self.builds.values() for e in events]
