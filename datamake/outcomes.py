"""What builds decide and do, as values: why a step runs (`Reason`), the planner's
answer for one step (`Verdict`), what running it wrote (`StepResult`), what became of
it (`Outcome`) and of a whole build (`BuildResult`). The console, `--json`,
`--explain`, `--dag` and the pipeline page read these without importing the engine
that makes them.
"""
from __future__ import annotations

from typing import Any, NamedTuple

# Why a step runs, most decisive first. `--json`, `--explain` and the page show them.
CODES = ("forced", "no-record", "missing-output", "output-changed", "recipe-changed",
         "param-changed", "input-changed", "upstream")


class StepResult(NamedTuple):
    """What running one step produced."""

    paths: tuple[str, ...]
    stamps: tuple[str, ...]
    digests: tuple[str, ...]
    seconds: float
    # The peak resident memory (kB) of the process that ran it, while it ran (Linux).
    peak_kb: int | None = None


class Reason(NamedTuple):
    """Why a step runs: one of CODES, the name concerned (an input, a parameter, an
    output), and its old and new value where there are two."""

    code: str
    name: str | None = None
    old: Any = None
    new: Any = None


class Verdict(NamedTuple):
    """The planner's answer for one step."""

    stale: bool
    reasons: tuple[Reason, ...]
    sig: str | None  # None while an input is unknown (dry run)
    code_fp: str
    params_fp: str
    inputs_fp: str | None
    out_digests: tuple[str, ...] | None  # the recorded ones, when fresh
    refresh: tuple[str, ...] | None  # new stamps for touched-but-unchanged outputs


class Outcome(NamedTuple):
    status: str  # built | fresh | cached | failed | skipped | planned
    digests: tuple[str, ...] | None
    seconds: float = 0.0
    reasons: tuple[Reason, ...] = ()
    error: str | None = None


class BuildResult:
    """What a build (or a dry run) did, step by step, in execution order."""

    def __init__(self, targets: list[str], dry_run: bool = False):
        self.targets = targets
        self.outcomes: dict[str, Outcome] = {}
        self.seconds = 0.0
        self.interrupted = False
        self.dry_run = dry_run
        # Dry run: steps it cannot judge (not that a build would fail) -> (error, help).
        self.unknown: dict[str, tuple[str, str | None]] = {}

    def names(self, status: str) -> list[str]:
        return [n for n, o in self.outcomes.items() if o.status == status]

    @property
    def failed(self) -> list[str]:
        return self.names("failed")

    @property
    def ok(self) -> bool:
        return not self.failed and not self.interrupted

    @property
    def work(self) -> bool:
        """Whether anything was (or, in a dry run, would be) run."""
        return any(o.status in ("planned", "built", "failed") for o in self.outcomes.values())
