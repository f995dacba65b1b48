"""Parameter overrides, as typed on the command line (`NAME=VALUE`, `model.depth=4`) or
given to `Project(params=...)`: a value is a Python literal or a plain string, and a dotted
name sets one key inside a dict parameter, leaving its other keys as they are."""
from __future__ import annotations

from typing import Any

from .diagnostics import suggest
from .errors import UsageError

# A value that starts like a Python literal of its own (a list, dict, tuple or quoted
# string) must be one: `p=[1,` is a typo, not the string "[1,".
_LITERAL_STARTS = ("[", "{", "(", "'", '"')


def parse_value(text: str, name: str = "") -> Any:
    """A command-line value: a Python literal when it parses as one, else the string.
    Raises UsageError for a value that starts like a literal but is not one."""
    import ast

    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        if text.lstrip().startswith(_LITERAL_STARTS):
            shown = text if len(text) <= 60 else text[:57] + "..."
            raise UsageError("override-not-literal", name=name or "the parameter",
                             value=shown) from None
        return text


def apply(params: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """`params` (copied, never changed) with `overrides` set. A dotted name
    (`model.depth`) sets one key of a dict parameter, which must already have it.
    Raises UsageError for an unknown parameter or key."""
    out = dict(params)
    copied: set[str] = set()
    for name, value in overrides.items():
        # The longest dotted prefix that names a parameter (an included file's are
        # `ns.name`); the rest are keys inside it.
        parts = name.split(".")
        cut = next((i for i in range(len(parts), 0, -1) if ".".join(parts[:i]) in out), 0)
        if cut == 0:
            raise UsageError("unknown-param", name=name, best=suggest(name, out))
        root, path = ".".join(parts[:cut]), parts[cut:]
        if not path:
            out[root] = value
            copied.discard(root)
            continue
        if root not in copied:
            import copy

            out[root] = copy.deepcopy(out[root])
            copied.add(root)
        cur = out[root]
        for i, key in enumerate(path):
            here = ".".join([root, *path[:i]])
            if not isinstance(cur, dict):
                raise UsageError("override-not-mapping", name=name, here=here, key=key)
            if key not in cur:
                raise UsageError("override-no-key", name=name, here=here, key=key,
                                 best=suggest(key, [str(k) for k in cur]),
                                 keys=", ".join(map(str, cur)) or "none")
            if i == len(path) - 1:
                cur[key] = value
            else:
                cur = cur[key]
    return out
