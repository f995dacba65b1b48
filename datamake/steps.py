"""Step ids: a step is named by its rule (its first output), and one partition of a
pattern rule or of a yielding rule's output as `name[key]`. Every id is made and taken
apart here, so that the spelling lives in one place: in JSON, in the state's records, in
cache entries and on the command line.
"""
from __future__ import annotations


def step_id(name: str, key: str | None = None) -> str:
    """The id of a step: `name`, or `name[key]` for one partition."""
    return name if key is None else f"{name}[{key}]"


def split_step(step: str) -> tuple[str, str | None]:
    """(name, key) of a step id or a target: `thumbs[img7]` is partition `img7` of
    `thumbs`; `thumbs` is all of it. A key may itself hold `[` (it is a file name)."""
    if step.endswith("]"):
        i = step.find("[")
        if i > 0:
            return step[:i], step[i + 1:-1]
    return step, None


def key_of(step: str, name: str) -> str | None:
    """The key of `step` when it is a partition of `name`, else None."""
    if step.startswith(name) and step.endswith("]") and step[len(name):len(name) + 1] == "[":
        return step[len(name) + 1:-1]
    return None
