"""What a Datafile says, as frozen values; no I/O and no behaviour beyond naming."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .errors import Span

# `{name}` in a shell line, but not `${VAR}` (shell) nor `{{` (a literal brace).
SHELL_REF = re.compile(r"(?<![\${])\{([A-Za-z_][A-Za-z0-9_]*)\}(?!\})")


@dataclass(frozen=True)
class Param:
    """`param NAME = VALUE`, or one top-level key of a `params "FILE"`."""

    name: str
    value: Any
    span: Span


@dataclass(frozen=True)
class ParamsFile:
    """`params "FILE"`: where many parameters come from."""

    path: str  # as written, relative to the Datafile
    span: Span
    overlay: str | None = None  # the environment's file laid over it (envs.py), if any


@dataclass(frozen=True)
class Dataset:
    """`dataset NAME = "LOCATION" [as FORMAT[(OPTIONS)]] [versioned]`."""

    name: str
    location: str  # as written: may hold ${VAR} and {key} placeholders
    format: str | None  # None: from the extension
    options: tuple[tuple[str, Any], ...]
    versioned: bool
    span: Span  # the name
    location_span: Span
    format_span: Span | None = None


@dataclass(frozen=True)
class Output:
    """One output of a rule: a name, and a partition key for pattern rules."""

    name: str
    key: str | None
    span: Span


@dataclass(frozen=True)
class Input:
    """One input of a rule: `ref[key]@version as alias`."""

    name: str  # the full (possibly dotted) name
    key: str | None
    version: str | None
    alias: str | None
    span: Span

    @property
    def local(self) -> str:
        """The variable the recipe sees: the alias, or the last part of the name."""
        return self.alias or self.name.rsplit(".", 1)[-1]


@dataclass(frozen=True)
class NameUse:
    """A global name (or dotted chain) a recipe reads, and where it first does."""

    chain: str
    span: Span


@dataclass(frozen=True)
class Recipe:
    """A rule's indented block, kept as text with the Datafile line it starts on."""

    kind: str  # "python" | "shell" | "notebook"
    text: str  # the block exactly as written, indentation included
    line: int  # the Datafile line of the block's first line
    span: Span  # the first non-blank line
    body_fp: str  # fingerprint of the code, blind to comments and formatting
    uses: tuple[NameUse, ...] = ()  # global names read (python), or {names} (shell)
    generator: bool = False  # a python recipe that yields
    imports: tuple[tuple[str, str, str | None], ...] = ()  # (name, module, attr) imported inside
    import_chains: tuple[str, ...] = ()  # dotted names read through those imports
    args: tuple[str, ...] = ()  # the names the recipe is called with
    code: bytes = b""  # the compiled function (marshal), named by the rule
    scope: str = ""  # whose `python:` blocks it sees: "" (the top Datafile) or an include
    notebook: str = ""  # a notebook recipe's file: as written, then (loader) absolute
    notebook_span: Span | None = None  # where its path is written
    keys_read: tuple[tuple[str, tuple], ...] = ()  # inputs read only as `name["key"]`
    no_value: Span | None = None  # a last statement that gives no value (an assignment)


@dataclass(frozen=True)
class Rule:
    """`OUT [OUT ...] : [IN ...]` and its optional recipe."""

    outputs: tuple[Output, ...]
    inputs: tuple[Input, ...]
    recipe: Recipe | None
    doc: str | None
    span: Span  # the first output
    ns: str = ""  # the namespace prefix of an included file's rule ("features.")

    @property
    def name(self) -> str:
        """A rule is named by its first output."""
        return self.outputs[0].name


@dataclass(frozen=True)
class PythonBlock:
    """A `python:` block: code run once before recipes."""

    text: str
    line: int  # the Datafile line of the block's first line
    span: Span
    scope: str = ""  # "" for the top Datafile, else the included file's path


@dataclass(frozen=True)
class Include:
    """`include "FILE" [as NS]`."""

    path: str
    namespace: str | None
    span: Span


@dataclass(frozen=True)
class Datafile:
    """A whole parsed Datafile."""

    path: str
    params: tuple[Param, ...]
    params_files: tuple[ParamsFile, ...]
    datasets: tuple[Dataset, ...]
    rules: tuple[Rule, ...]
    python: tuple[PythonBlock, ...]
    includes: tuple[Include, ...]
    cache: tuple[str, Span] | None
    scopes: tuple[tuple[str, str], ...] = ()  # (scope, folder) of every file read
    sources: tuple[str, ...] = ()  # every Datafile and params file read (absolute)
    env: tuple[str, ...] = ()  # environment variables its `params "..."` paths name
