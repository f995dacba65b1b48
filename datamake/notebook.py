"""Notebook recipes: a Jupytext percent-format `.py` or an `.ipynb`, run in a fresh
kernel with the rule's values injected, rendered to one self-contained HTML page; and
the notebook's fingerprints.

Run with the ecosystem's own tools: jupytext reads a `.py`, nbformat an `.ipynb`,
nbclient executes (a new ipykernel of this very Python), nbconvert renders. They are
the `notebook` extra and are imported only by `run_notebook` and `rerender`; the
fingerprints need only the standard library, so planning never imports them.

How values reach the kernel: they are pickled into a private temporary folder, and a
first cell, injected before the notebook's own (as papermill does with a parameters
cell), loads them into the kernel's globals. The page shows that cell as a list of the
names and what they hold, never the folder. The folder also holds the kernel's
connection file, its temporary files and its IPython profile (so no startup script of
the user's runs, and no history is written); it is removed when the run ends, however
it ends.

Over 500 lines: running a notebook in a kernel, telling its failures at the
notebook's lines and rendering the page are one job (reading cells: notebook_cells.py).
"""
from __future__ import annotations

import json
import os
import pickle
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from .notebook_cells import (  # noqa: F401  (the errors and fingerprints are notebook's too)
    _MAGIC, NotebookError, NotebookFingerprints, NotebookFormatError, _code_fingerprint,
    _ipynb_cells, fingerprints)

# How long one cell may run, and the kernel may take to start, by default (seconds).
CELL_TIMEOUT = 600.0
STARTUP_TIMEOUT = 60.0

# What `run_notebook` brings back from the kernel by default: `metrics`, a dict of
# numbers, is also embedded in the page for `--diff` and the versions index.
EXPORTS = ("metrics",)

_INJECTED_TAG = "injected-parameters"  # papermill's tag for the same cell


class NotebookCellError(NotebookError):
    """A cell raised. `path`, `cell` (1-based, counting every cell of the notebook,
    markdown too, as Jupyter shows them) and `line` say where: for a `.py` notebook the
    line in that file, for an `.ipynb` the line in the cell (`line_in_file` tells
    which). `traceback` is the whole traceback as Python prints it, with frames in the
    notebook shown at the notebook's file and line; `ename`, `evalue` the exception."""

    def __init__(self, path: str, cell: int, line: int | None, line_in_file: bool,
                 ename: str, evalue: str, traceback: str):
        where = _where(path, cell, line, line_in_file)
        super().__init__(f"{where}: {ename}: {evalue}" if evalue else f"{where}: {ename}")
        self.path, self.cell, self.line, self.line_in_file = path, cell, line, line_in_file
        self.ename, self.evalue, self.traceback = ename, evalue, traceback


class NotebookTimeoutError(NotebookError):
    """A cell ran longer than the timeout; the kernel was stopped. `path`, `cell`,
    `line`, `line_in_file` as for NotebookCellError (the cell's first line)."""

    def __init__(self, path: str, cell: int, line: int | None, line_in_file: bool,
                 timeout: float):
        super().__init__(
            f"{_where(path, cell, line, line_in_file)}: the cell ran longer than "
            f"{timeout:g} s and was stopped",
            help="make the cell faster, or give notebook cells more time (the cell timeout)")
        self.path, self.cell, self.line, self.line_in_file = path, cell, line, line_in_file
        self.timeout = timeout


class NotebookKernelError(NotebookError):
    """The kernel could not start, or died while a cell ran."""


class NotebookChangedError(NotebookError):
    """`rerender` was given a notebook whose code differs from the executed one."""


def _where(path: str, cell: int, line: int | None, line_in_file: bool) -> str:
    if line is None:
        return f"{path}: cell {cell}"
    if line_in_file:
        return f"{path}:{line}: cell {cell}"
    return f"{path}: cell {cell}, line {line}"


@dataclass
class NotebookResult:
    """What a run gives: the page, the values the notebook defined among those asked
    for (`EXPORTS` by default; a name it did not define is absent), and the executed
    notebook as .ipynb JSON (for `rerender` after a markdown-only edit)."""

    html: str
    values: dict[str, Any] = field(default_factory=dict)
    executed: str = ""


# ---------------------------------------------------------------- running

def _require() -> None:
    from .extras import require

    for module in ("jupytext", "nbclient", "nbconvert", "nbformat", "ipykernel"):
        require(module, "a notebook recipe")


def read(path: str | os.PathLike) -> Any:
    """The notebook at `path` as an nbformat notebook (`.py`: jupytext percent format;
    `.ipynb`: nbformat). Raises NotebookFormatError, MissingExtraError (the
    `notebook` extra is not installed)."""
    _require()
    import jupytext
    import nbformat

    p = Path(path)
    try:
        if p.suffix == ".ipynb":
            _ipynb_cells(p.read_text(encoding="utf-8"), str(path))  # a located JSON error
            nb = nbformat.read(str(p), as_version=4)
        else:
            nb = jupytext.read(str(p), fmt="py:percent")
    except NotebookFormatError:
        raise
    except (OSError, UnicodeDecodeError) as e:
        raise NotebookFormatError(f"cannot read notebook `{path}`: {e}", str(path)) from None
    except Exception as e:  # nbformat's validation errors and jupytext's are of many kinds
        raise NotebookFormatError(f"`{path}` is not a notebook jupyter can read: {e}",
                                  str(path)) from None
    return nb


def run_notebook(path: str | os.PathLike, values: Mapping[str, Any], *,
                 cwd: str | os.PathLike, title: str | None = None, context: Any = None,
                 cell_timeout: float = CELL_TIMEOUT, startup_timeout: float = STARTUP_TIMEOUT,
                 exports: Sequence[str] = EXPORTS, shown_path: str | None = None) -> NotebookResult:
    """Run the notebook at `path` in a fresh kernel and render it.

    `values` (name -> object) are defined before the first cell: the rule's inputs and
    parameters. They must pickle (they cross to the kernel's process). The kernel runs
    in `cwd` with `cwd` first on `sys.path` (the project's modules import). `title` is
    the page's title (the notebook's first heading, else its file name, by default);
    `context`, a `report.BuildContext`, is shown under it. `cell_timeout` bounds each
    cell, `startup_timeout` the kernel's start (seconds). `exports` are the names
    brought back from the kernel into `NotebookResult.values` (they must pickle); a
    `metrics` dict is embedded in the page as a Report's metrics are. `shown_path` is
    how errors name the notebook (default: `path` as given).

    Raises NotebookCellError, NotebookTimeoutError, NotebookKernelError,
    NotebookFormatError, MissingExtraError, or NotebookError (a value that does
    not pickle, a `metrics` that is not a dict).
    """
    nb = read(path)
    shown = shown_path or str(path)
    bad = [n for n in values if not str(n).isidentifier()]
    if bad:
        raise NotebookError(f"`{bad[0]}` cannot be a variable of the notebook `{shown}`")
    scratch = tempfile.mkdtemp(prefix="datamake-nb-")
    try:
        values_file = os.path.join(scratch, "values.pickle")
        _dump_values(values, values_file, shown)
        root = str(Path(cwd).resolve())
        cells = list(nb.cells)
        nb.cells = [_injected_cell(values_file, root)] + cells
        out = _execute(nb, Path(path), shown, root, scratch, cell_timeout, startup_timeout,
                       exports)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    nb.cells[0] = _shown_injected_cell(values)
    import nbformat

    from .report import _jsonable

    metrics = out.get("metrics")
    if metrics is not None and not isinstance(metrics, Mapping):
        raise NotebookError(f"`metrics` in `{shown}` is a {type(metrics).__name__}: the "
                            f"page embeds it for --diff, so it must be a dict of numbers")
    if metrics is not None:  # kept with the outputs, for `rerender`
        nb.metadata["datamake"] = {"metrics": _jsonable(dict(metrics))}
    executed = nbformat.writes(nb)
    html = _render(nb, Path(path), title, context, metrics)
    return NotebookResult(html, out, executed)


def _dump_values(values: Mapping[str, Any], target: str, shown: str) -> None:
    for name, value in values.items():
        try:
            pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as e:
            raise NotebookError(
                f"`{name}` cannot be passed to the notebook `{shown}`: it does not pickle "
                f"({type(e).__name__}: {e})",
                help="a notebook runs in its own process: pass data (frames, arrays, "
                     "models...) whose classes live in importable modules") from None
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        pickle.dump(dict(values), f, protocol=pickle.HIGHEST_PROTOCOL)


def _injected_cell(values_file: str, root: str) -> Any:
    import nbformat

    return nbformat.v4.new_code_cell(_INJECTED_SOURCE % {"root": root, "values": values_file},
                                     metadata={"tags": [_INJECTED_TAG]})


# The cell run before the notebook's own: the project importable, the values defined,
# and Altair charts shown as Vega-Lite data (its own default output loads the Vega
# libraries from the network; the page draws this with its vendored copy). Registered
# by name, so Altair is not imported for notebooks that do not use it.
_INJECTED_SOURCE = """\
import pickle as __dm_pickle, sys as __dm_sys
if %(root)r not in __dm_sys.path:
    __dm_sys.path.insert(0, %(root)r)
with open(%(values)r, 'rb') as __dm_file:
    globals().update(__dm_pickle.load(__dm_file))
def __dm_vegalite(chart, include=None, exclude=None):
    import re
    spec = chart.to_dict()
    major = re.search(r"/v(\\d+)[.]", str(spec.get("$schema", "")))
    return {"application/vnd.vegalite.v%%s+json" %% (major.group(1) if major else "6"): spec}
for __dm_v in ("v5", "v6"):
    get_ipython().display_formatter.mimebundle_formatter.for_type_by_name(
        "altair.vegalite.%%s.api" %% __dm_v, "TopLevelMixin", __dm_vegalite)
del __dm_pickle, __dm_sys, __dm_file, __dm_v
"""


def _shown_injected_cell(values: Mapping[str, Any]) -> Any:
    """What the page shows of the injected cell: each name and what it holds."""
    import nbformat

    lines = ["# Defined by datamake before the first cell:"]
    for name, value in values.items():
        lines.append(f"# {name}: {_describe(value)}")
    if not values:
        lines.append("# (nothing)")
    return nbformat.v4.new_code_cell("\n".join(lines), metadata={"tags": [_INJECTED_TAG]})


def _describe(value: Any) -> str:
    from .report import short

    kind = type(value).__name__
    shape = getattr(value, "shape", None)
    if isinstance(shape, tuple) and shape and all(isinstance(n, int) for n in shape):
        return f"{kind} " + " x ".join(f"{n:,}" for n in shape)
    if isinstance(value, (bool, int, float, str)) or value is None or (
            isinstance(value, (list, tuple, dict)) and len(repr(value)) <= 120):
        return f"{kind} = {short(value, 100)}"
    return kind


def _kernel_manager(scratch: str) -> Any:
    """A kernel manager for ipykernel on this very Python, whatever kernels the user
    has installed under the name `python3`."""
    from jupyter_client import AsyncKernelManager
    from jupyter_client.kernelspec import KernelSpec, KernelSpecManager

    class ThisPython(KernelSpecManager):
        def get_kernel_spec(self, kernel_name: str) -> KernelSpec:
            return KernelSpec(argv=[sys.executable, "-m", "ipykernel_launcher", "-f",
                                    "{connection_file}"],
                              display_name="Python 3", language="python", resource_dir=scratch)

    # Async, as nbclient expects: with a blocking client its output polling would hold
    # the event loop, and the cell timeout would never fire.
    km = AsyncKernelManager(kernel_name="python3", kernel_spec_manager=ThisPython())
    km.connection_file = os.path.join(scratch, "kernel.json")
    # Unix sockets in the private folder rather than TCP ports on localhost: only this
    # user can reach the kernel (its messages are also signed with a key).
    # (A socket path has ~100 bytes at most: a very long temporary folder keeps TCP.)
    if len(os.path.join(scratch, "kernel-9")) < 100:
        km.transport = "ipc"
        km.ip = os.path.join(scratch, "kernel")
    return km


def _kernel_env(scratch: str, root: str) -> dict[str, str]:
    env = dict(os.environ)
    tmp = os.path.join(scratch, "tmp")
    os.makedirs(tmp)
    env["TMPDIR"] = tmp  # ipykernel's cell files, the code's own temporaries
    env["IPYTHONDIR"] = os.path.join(scratch, "ipython")  # no user profile, no history
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"  # figures as outputs
    env["PYDEVD_DISABLE_FILE_VALIDATION"] = "1"
    env.pop("JPY_PARENT_PID", None)
    return env


def _execute(nb: Any, path: Path, shown: str, root: str, scratch: str, cell_timeout: float,
             startup_timeout: float, exports: Sequence[str]) -> dict[str, Any]:
    """Run every cell of `nb` (the injected one first) in place; the exported values."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    client = NotebookClient(nb, km=_kernel_manager(scratch), timeout=cell_timeout,
                            startup_timeout=startup_timeout, kernel_name="python3",
                            shutdown_kernel="immediate", record_timing=False,
                            resources={"metadata": {"path": root}})
    log_path = os.path.join(scratch, "kernel.log")
    index = 0
    try:
        # cleanup_kc: nbclient stops only kernels it made itself; this one too, always.
        with open(log_path, "wb") as log, client.setup_kernel(
                env=_kernel_env(scratch, root), cwd=root, stdout=subprocess.DEVNULL,
                stderr=log, stdin=subprocess.DEVNULL, cleanup_kc=True):
            for index, cell in enumerate(nb.cells):
                try:
                    client.execute_cell(cell, index)
                except CellExecutionError as e:
                    if index == 0:  # ours: the values did not load in the kernel
                        raise NotebookError(
                            f"the values for `{shown}` could not be loaded in its kernel: "
                            f"{e.ename}: {e.evalue}",
                            help="a value whose class is defined in the Datafile's `python:` "
                                 "block cannot cross to a kernel: define it in a module") from None
                    frames = _frames(client, nb, scratch)
                    raise _cell_error(nb, index, path, shown, frames) from None
            export_file = os.path.join(scratch, "exports.pickle")
            export = nbformat.v4.new_code_cell(_export_source(exports, export_file))
            nb.cells.append(export)
            try:
                client.execute_cell(export, len(nb.cells) - 1)
            except CellExecutionError as e:
                raise NotebookError(f"the values of `{shown}` ({', '.join(exports)}) cannot "
                                    f"be returned: {e.ename}: {e.evalue}") from None
            finally:
                nb.cells.pop()
            with open(export_file, "rb") as f:
                return pickle.load(f)
    except CellTimeoutError:
        cell, line, in_file = _position(nb, index, path, 1)
        raise NotebookTimeoutError(shown, cell, line, in_file, cell_timeout) from None
    except DeadKernelError:
        cell, line, in_file = _position(nb, index, path, 1)
        raise NotebookKernelError(f"{_where(shown, cell, line, in_file)}: the kernel died "
                                  f"while the cell ran" + _log_tail(log_path)) from None
    except NotebookError:
        raise
    except (RuntimeError, TimeoutError, OSError) as e:  # the kernel did not start
        raise NotebookKernelError(f"`{shown}`: the kernel did not start: {e}"
                                  + _log_tail(log_path)) from None


def _log_tail(log_path: str) -> str:
    try:
        with open(log_path, "rb") as f:
            text = f.read().decode("utf-8", "replace").strip()
    except OSError:
        return ""
    return ("\n" + "\n".join(text.splitlines()[-15:])) if text else ""


def _export_source(exports: Sequence[str], target: str) -> str:
    return (f"import pickle as __dm_pickle\n"
            f"with open({target!r}, 'wb') as __dm_file:\n"
            f"    __dm_pickle.dump({{__dm_k: globals()[__dm_k] for __dm_k in {list(exports)!r}"
            f" if __dm_k in globals()}}, __dm_file)\n")


# Run in the kernel after a cell failed: the frames of the exception, each with the
# cell's execution count when it is a cell's code (IPython names cells `In[N]`).
_FRAMES_SOURCE = """
def __dm_frames(target):
    import json, sys, traceback
    ip = get_ipython()
    tb = getattr(sys, "last_traceback", None)
    frames = []
    for fs in (traceback.extract_tb(tb) if tb is not None else []):
        name = ip.compile.format_code_name(fs.filename) if hasattr(
            ip.compile, "format_code_name") else None
        count = int(name[1][3:-1]) if name and name[1].startswith("In[") else None
        frames.append([fs.filename, fs.lineno, fs.name, fs.line or "", count])
    value = getattr(sys, "last_value", None)
    with open(target, "w") as f:
        json.dump({"frames": frames, "type": type(value).__name__,
                   "message": str(value)}, f)
__dm_frames(%r)
del __dm_frames
"""


def _frames(client: Any, nb: Any, scratch: str) -> dict[str, Any]:
    """The failed cell's exception frames, asked of the kernel (still running)."""
    import nbformat

    target = os.path.join(scratch, "frames.json")
    probe = nbformat.v4.new_code_cell(_FRAMES_SOURCE % target)
    nb.cells.append(probe)
    try:
        client.execute_cell(probe, len(nb.cells) - 1, store_history=False)
        with open(target, encoding="utf-8") as f:
            return json.load(f)
    except Exception:  # best effort: the error output still says what happened
        return {}
    finally:
        nb.cells.pop()


def _cell_lines(nb: Any, path: Path) -> dict[int, int]:
    """For a `.py` notebook: notebook cell index -> the file line of the cell's first
    source line, for code cells found in the file (in order, magics commented)."""
    if path.suffix == ".ipynb":
        return {}
    try:
        lines = path.read_text(encoding="utf-8").replace("\r\n", "\n").split("\n")
    except (OSError, UnicodeDecodeError):
        return {}

    def same(file_line: str, src_line: str) -> bool:
        if file_line == src_line:
            return True
        bare = re.sub(r"^(\s*)# ?", r"\1", file_line)  # a magic jupytext commented
        return bare == src_line and _MAGIC.match(src_line) is not None

    out: dict[int, int] = {}
    cursor = 0
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code" or not cell.source.strip() or _INJECTED_TAG in cell.get(
                "metadata", {}).get("tags", []):
            continue
        src = cell.source.split("\n")
        for start in range(cursor, len(lines) - len(src) + 1):
            if all(same(lines[start + k], src[k]) for k in range(len(src))):
                out[i] = start + 1
                cursor = start + len(src)
                break
    return out


def _position(nb: Any, index: int, path: Path, line_in_cell: int | None
              ) -> tuple[int, int | None, bool]:
    """(cell number as the user counts, line, whether the line is the file's)."""
    starts = _cell_lines(nb, path)
    cell_number = index  # the injected cell is index 0: the user's first cell is 1
    if index in starts and line_in_cell is not None:
        return cell_number, starts[index] + line_in_cell - 1, True
    return cell_number, line_in_cell, False


def _cell_error(nb: Any, index: int, path: Path, shown: str, info: dict[str, Any]
                ) -> NotebookCellError:
    by_count = {c.get("execution_count"): i for i, c in enumerate(nb.cells)
                if c.cell_type == "code" and c.get("execution_count") is not None}
    starts = _cell_lines(nb, path)
    ename, evalue = info.get("type") or "Error", info.get("message", "")
    error = next((o for o in nb.cells[index].get("outputs", []) if o.output_type == "error"),
                 None)
    if error is not None and not info:
        ename, evalue = error.ename, error.evalue
    lines = ["Traceback (most recent call last):"]
    failing_line = None
    frames = info.get("frames", [])
    first = next((k for k, f in enumerate(frames) if f[4] is not None), len(frames))
    for filename, lineno, name, text, count in frames[first:]:
        where = f'File "{filename}", line {lineno}'
        if count is not None and count in by_count:
            i = by_count[count]
            if i in starts:
                where = f'File "{shown}", line {starts[i] + lineno - 1}'
            else:
                where = f'File "{shown}", cell {i}, line {lineno}'
            if i == index:
                failing_line = lineno
        lines.append(f"  {where}, in {name}")
        if text:
            lines.append(f"    {text.strip()}")
    if len(lines) == 1 and error is not None:  # no frames from the kernel: its own text
        lines = [_strip_ansi(t) for t in error.traceback]
    else:
        lines.append(f"{ename}: {evalue}" if evalue else ename)
    cell, line, in_file = _position(nb, index, path, failing_line)
    return NotebookCellError(shown, cell, line, in_file, ename, evalue, "\n".join(lines))


def _strip_ansi(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


# ---------------------------------------------------------------- rendering

_NB_CSS = """
.dm-notebook .cell{margin:.6rem 0}
details.dm-code{border-left:3px solid #e5e7eb;padding-left:.6rem;margin:.3rem 0}
details.dm-code>summary{cursor:pointer;color:#6b7280;font-size:.85rem}
details.dm-code>summary code{color:#374151}
.dm-notebook .input_area pre,.dm-notebook .output_area pre{background:#f9fafb;padding:.5rem;
overflow-x:auto;font-size:.85rem;line-height:1.35;margin:.3rem 0}
.dm-notebook .output_area img{max-width:100%}
.dm-notebook .output_stderr pre{background:#fdf2f2}
.dm-notebook .output_area table{border-collapse:collapse}
.dm-notebook .anchor-link{display:none}
button.dm-fold{font-size:.85rem;margin:.2rem 0 .6rem;cursor:pointer}
"""

_FOLD_JS = """
(function(){var b=document.getElementById('dm-fold-all');if(!b)return;
b.addEventListener('click',function(){var open=b.getAttribute('aria-pressed')!=='true';
document.querySelectorAll('details.dm-code').forEach(function(d){d.open=open;});
b.setAttribute('aria-pressed',String(open));b.textContent=open?'Hide the code':'Show the code';});
})();
"""


def _exporter() -> Any:
    from importlib.resources import files

    from nbconvert import HTMLExporter

    from .report import json_script

    from traitlets.config import Config

    assets = str(files("datamake") / "page-assets")
    # Vega-Lite outputs (Altair's) first, drawn by the vendored libraries.
    priority = HTMLExporter().default_config["NbConvertBase"]["display_data_priority"]
    config = Config({"NbConvertBase": {"display_data_priority": [
        "application/vnd.vegalite.v6+json", "application/vnd.vegalite.v5+json",
        "application/vnd.vega.v6+json", "application/vnd.vega.v5+json", *priority]}})
    exporter = HTMLExporter(config=config, template_name="datamake-notebook",
                            extra_template_basedirs=[assets], exclude_input_prompt=True,
                            exclude_output_prompt=True, embed_images=True)
    exporter.register_filter("dm_chart", lambda spec: json_script("", spec, data_dm_chart=""))
    return exporter


def _render(nb: Any, path: Path, title: str | None, context: Any,
            metrics: Mapping[str, Any] | None) -> str:
    from .report import _CHART_JS, page, vendored_js

    for i, cell in enumerate(nb.cells):
        if "id" in cell:  # jupytext makes random ids: a page should not change for nothing
            cell["id"] = f"cell-{i}"
    exporter = _exporter()
    body, resources = exporter.from_notebook_node(
        nb, resources={"metadata": {"name": path.stem, "path": str(path.parent)}})
    css = "".join(resources.get("inlining", {}).get("css", []))
    scripts = f"<script>{_FOLD_JS}</script>"
    if "data-dm-chart" in body:
        scripts += vendored_js() + f"<script>{_CHART_JS}</script>"
    fold = ('<button type="button" class="dm-fold" id="dm-fold-all" aria-pressed="false">'
            'Show the code</button>')
    return page(title or _title(nb, path), fold + f'<div class="dm-notebook">{body}</div>',
                context=context, metrics=metrics, scripts=scripts, css=_NB_CSS + css)


def _title(nb: Any, path: Path) -> str:
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            m = re.search(r"^#\s+(.+?)\s*#*\s*$", cell.source, re.M)
            if m:
                return m.group(1)
    return path.stem


def rerender(path: str | os.PathLike, executed: str, *, title: str | None = None,
             context: Any = None, shown_path: str | None = None) -> str:
    """The page of the notebook at `path` with the outputs of `executed` (a previous
    `NotebookResult.executed`) and without running anything: for an edit that changed
    the `page` fingerprint and not the `code` one (markdown, comments, formatting).

    Raises NotebookChangedError when the code cells differ from the executed ones
    (then run the notebook again), and NotebookFormatError, MissingExtraError (the
    `notebook` extra is not installed)."""
    import nbformat

    shown = shown_path or str(path)
    nb = read(path)
    old = nbformat.reads(executed, as_version=4)
    old_code = [c for c in old.cells[1:] if c.cell_type == "code"
                and _code_fingerprint(c.source) is not None]
    new_code = [c for c in nb.cells if c.cell_type == "code"
                and _code_fingerprint(c.source) is not None]
    if [_code_fingerprint(c.source) for c in old_code] != [
            _code_fingerprint(c.source) for c in new_code]:
        raise NotebookChangedError(f"the code of `{shown}` changed since it ran: run it again")
    for new, before in zip(new_code, old_code):
        new.outputs, new.execution_count = before.outputs, before.execution_count
    for c in nb.cells:
        if c.cell_type == "code" and _code_fingerprint(c.source) is None:
            c.outputs, c.execution_count = [], None
    nb.cells = [old.cells[0]] + list(nb.cells)
    metrics = _metrics_in(executed)
    return _render(nb, Path(path), title, context, metrics)


def _metrics_in(executed: str) -> dict[str, Any] | None:
    doc = json.loads(executed)
    return doc.get("metadata", {}).get("datamake", {}).get("metrics")
