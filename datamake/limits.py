"""Limits on what datamake reads from outside: a Datafile, the files it names, the
values it holds. Each keeps a hostile or broken input from exhausting the machine, and
whoever meets one reports it as an error at its place, never a traceback or a hang."""
from __future__ import annotations

import os
from typing import Any


# Limits on what a Datafile and the files it names may hold. Each keeps a hostile or
# broken input from exhausting the machine, and ends in an error at its place.
# A Datafile: 100,000 short rules are about 3 MB (0.9 GB of memory to parse; a line of
# nothing but names takes up to 700 bytes of memory per byte).
MAX_DATAFILE_BYTES = 4_000_000


MAX_NAME = 100  # characters in a name: names become file names (`.datamake/data/NAME.pkl`)


MAX_DEPTH = 200  # levels of nesting in a recipe, a `python:` block or a parameter value


MAX_PARAMS_BYTES = 1_000_000  # a params file (YAML is parsed at about 0.5 MB a second)


MAX_PARAMS_VALUES = 1_000_000  # values in a params file, YAML aliases expanded


class NotRegularError(OSError):
    """A path names a device, a folder or a pipe, not a regular file."""


class TooBigError(OSError):
    """A file is larger than the limit for what it holds."""


def read_regular(path: str | os.PathLike, limit: int) -> bytes:
    """The bytes of the regular file at `path`, if it holds at most `limit` of them.

    Raises NotRegularError (`/dev/zero`, a folder, a named pipe: never read, and never
    waited on), TooBigError, or OSError.
    """
    import stat

    # O_NONBLOCK: opening a named pipe must not wait for a writer (it is refused below).
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotRegularError(f"{os.fspath(path)}: not a regular file")
        if st.st_size > limit:
            raise TooBigError(f"{os.fspath(path)}: larger than {limit} bytes")
        data = f.read(limit + 1)  # it may grow meanwhile
    if len(data) > limit:
        raise TooBigError(f"{os.fspath(path)}: larger than {limit} bytes")
    return data


def value_problem(value: Any) -> str | None:
    """What makes a parameter's value unsafe to fingerprint and store, as the end of a
    sentence, or None: more than MAX_PARAMS_VALUES values once shared parts are counted
    each time they appear (a YAML alias bomb), nesting deeper than MAX_DEPTH, a value
    that contains itself (a recursive YAML alias), or an integer too long to print.

    Iterative, and each shared part is walked once, so a billion-laughs file is judged
    in the time it took to load."""
    def kids(v: Any) -> list | None:
        if isinstance(v, dict):
            return [*v.keys(), *v.values()]
        if isinstance(v, (list, tuple, set, frozenset)):
            return list(v)
        return None

    def scalar_problem(v: Any) -> str | None:
        if isinstance(v, int) and v.bit_length() > 10_000:
            try:
                str(v)
            except ValueError:  # more digits than Python prints (4300 by default)
                return "holds an integer too long to print"
        return None

    top = kids(value)
    if top is None:
        return scalar_problem(value)
    too_deep = f"is nested more than {MAX_DEPTH} levels deep"
    too_many = (f"holds more than {MAX_PARAMS_VALUES:,} values once shared parts (YAML "
                f"aliases) are counted each time they appear")
    done: dict[int, tuple[int, int]] = {}  # id -> (values, height) of a container walked
    path = {id(value)}  # the containers being walked, to find one inside itself
    # Per container being walked: itself, its children left, [its values, its height].
    stack: list[tuple[Any, Any, list[int]]] = [(value, iter(top), [1, 1])]
    total = 1  # values met so far, shared parts counted each time
    while stack:
        v, children, acc = stack[-1]
        entered = False
        for child in children:
            grand = kids(child)
            if grand is None:
                problem = scalar_problem(child)
                if problem:
                    return problem
                acc[0] += 1
                total += 1
            elif id(child) in done:
                n, height = done[id(child)]
                if len(stack) + height > MAX_DEPTH:
                    return too_deep
                acc[0] += n
                acc[1] = max(acc[1], height + 1)
                total += n
            elif id(child) in path:
                return "contains itself (a YAML alias inside its own anchor)"
            else:
                if len(stack) >= MAX_DEPTH:
                    return too_deep
                path.add(id(child))
                stack.append((child, iter(grand), [1, 1]))
                total += 1
                entered = True
            if total > MAX_PARAMS_VALUES:
                return too_many
            if entered:
                break
        if entered:
            continue
        stack.pop()
        path.discard(id(v))
        done[id(v)] = (acc[0], acc[1])
        if stack:
            parent = stack[-1][2]
            parent[0] += acc[0]
            parent[1] = max(parent[1], acc[1] + 1)
    return None
