"""A notebook's cells, read with the standard library only: its fingerprints (what a
step's result depends on, and what its page shows) for the loader, and the cells'
kinds and code for notebook.py, which runs and renders it. A Jupytext percent-format
`.py` or an `.ipynb`.
"""
from __future__ import annotations

import ast
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from .hashing import hash_parts
from .pysource import fast_dump


class NotebookError(Exception):
    """A notebook could not be run or rendered. `str(e)` is the message; `help` says
    what to do, when there is something to say."""

    def __init__(self, message: str, help: str | None = None):
        super().__init__(message)
        self.help = help


class NotebookFormatError(NotebookError):
    """The file is not a notebook that can be read (`line` set when known)."""

    def __init__(self, message: str, path: str, line: int | None = None, help: str | None = None):
        super().__init__(message, help)
        self.path, self.line = path, line



@dataclass(frozen=True)
class NotebookFingerprints:
    """`code`: the code cells, blind to comments, formatting, markdown, outputs and
    metadata; what a step's result depends on. `page`: everything the page shows but
    the outputs (markdown, and the code as written); a change of `page` alone needs
    only a new rendering, see `rerender`."""

    code: str
    page: str


# Jupytext's percent-format cell markers (`# %%`, `# %% [markdown]`, `#%%`, ...).
_START = re.compile(r"^\s*#\s*%%(%*)\s(.*)$")
_ALT_START = re.compile(r"^\s*#\s*(%%|<codecell>|In\[[0-9 ]*\]:?)\s*$")
# IPython syntax in a code cell, commented (`# %time`, as jupytext writes it in a .py)
# or not (in an .ipynb): magics, shell escapes, help.
_MAGIC = re.compile(r"^\s*(?:# ?)*(?:%{1,3}[a-zA-Z]|[!?]\s*[A-Za-z.~$\\/{}])")


def fingerprints(path: str | os.PathLike) -> NotebookFingerprints:
    """The fingerprints of the notebook at `path` (`.py` percent format or `.ipynb`).
    Reads only the file, with the standard library. Raises NotebookFormatError."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise NotebookFormatError(f"cannot read notebook `{path}`: {e}", str(path)) from None
    if p.suffix == ".ipynb":
        cells = [(c["cell_type"], c["source"]) for c in _ipynb_cells(text, str(path))]
    else:
        cells = _percent_cells(text)
    codes = [fp for kind, src in cells if kind == "code" for fp in [_code_fingerprint(src)]
             if fp is not None]
    page = hash_parts("page", *(f"{kind}\0{src}" for kind, src in cells))
    return NotebookFingerprints(hash_parts("code", *codes), page)


def _ipynb_cells(text: str, path: str) -> list[dict[str, str]]:
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise NotebookFormatError(f"`{path}` is not a notebook: {e.msg}", path, e.lineno,
                                  help="an .ipynb notebook is JSON, as Jupyter writes it") from None
    cells = doc.get("cells") if isinstance(doc, dict) else None
    if not isinstance(cells, list):
        raise NotebookFormatError(f"`{path}` is not a notebook: it has no list of `cells`", path)
    out = []
    for c in cells:
        if not isinstance(c, dict):
            continue
        src = c.get("source", "")
        out.append({"cell_type": str(c.get("cell_type", "")),
                    "source": "".join(src) if isinstance(src, list) else str(src)})
    return out


def _percent_cells(text: str) -> list[tuple[str, str]]:
    """(kind, source) for each cell of a percent-format script, as jupytext splits it
    (tests hold the two to the same cells); a marker inside a string is no marker."""
    lines = text.replace("\r\n", "\n").split("\n")
    quoted = _lines_inside_strings(text)
    start = 0
    if lines and lines[0].rstrip() == "# ---":  # jupytext's YAML header
        for n in range(1, len(lines)):
            if lines[n].rstrip() == "# ---":
                start = n + 1
                break
    cells: list[tuple[str, str]] = []
    kind, body = "code", []
    for n in range(start, len(lines)):
        line = lines[n]
        m = None if (n + 1) in quoted else (_START.match(line) or _ALT_START.match(line))
        if m:
            if body and any(b.strip() for b in body) or cells or kind != "code":
                cells.append((kind, "\n".join(body)))
            options = m.group(2) if m.re is _START else ""
            kind = _cell_kind(options)
            body = []
        else:
            body.append(line)
    if body and any(b.strip() for b in body) or kind != "code" or not cells:
        cells.append((kind, "\n".join(body)))
    return [(k, s.strip("\n")) for k, s in cells]


def _cell_kind(options: str) -> str:
    if re.match(r"^\s*\[(markdown|md)\]", options) or 'cell_type="markdown"' in options:
        return "markdown"
    if re.match(r"^\s*\[raw\]", options) or 'cell_type="raw"' in options:
        return "raw"
    return "code"


def _lines_inside_strings(text: str) -> set[int]:
    """Lines (1-based) that continue a multi-line string, where `# %%` is text. Empty
    when the file is not Python tokenize can read (then every marker counts)."""
    import io
    import tokenize

    inside: set[int] = set()
    try:
        for tok in tokenize.generate_tokens(io.StringIO(text).readline):
            if tok.type == tokenize.STRING and tok.end[0] > tok.start[0]:
                inside.update(range(tok.start[0] + 1, tok.end[0] + 1))
    except (tokenize.TokenError, SyntaxError, IndentationError):
        return set()
    return inside


def _code_fingerprint(source: str) -> str | None:
    """A code cell's fingerprint: its Python as an AST (blind to comments and
    formatting, like recipes), its IPython lines (magics, `!`) as text; None for a cell
    with nothing to run."""
    lines = source.split("\n")
    magics = []
    for i, line in enumerate(lines):
        if _MAGIC.match(line):
            magics.append(re.sub(r"^\s*(?:# ?)*", "", line).rstrip())
            lines[i] = ""
    code = "\n".join(lines)
    try:
        tree = ast.parse(code)
        if not tree.body and not magics:
            return None
        dump = fast_dump(tree)
    except SyntaxError:  # IPython syntax of another kind (`x?`, `a = !ls`): as text
        dump = "\n".join(ln.rstrip() for ln in lines
                         if ln.strip() and not ln.lstrip().startswith("#"))
    return hash_parts(dump, *magics)
