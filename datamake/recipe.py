"""Compiling and calling recipes with the Datafile as their file name.

A Python recipe is compiled as the body of a function placed on the line above it, the
source padded with blank lines, so code objects carry the Datafile's own line numbers:
tracebacks and `linecache` show the Datafile lines without any line map.
"""
from __future__ import annotations

import _thread
import contextlib
import functools
import importlib
import marshal
import os
import sys
import types
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, NamedTuple

from .pysource import parse_at

if TYPE_CHECKING:
    from . import model

MODULE = "__datafile__"
_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


class RecipeFailure(Exception):
    """A recipe raised or a shell line failed; `text` is what to show the user."""

    def __init__(self, summary: str, text: str):
        super().__init__(summary)
        self.summary = summary
        self.text = text

    def __reduce__(self):  # crosses process boundaries (-j, Dask)
        return (RecipeFailure, (self.summary, self.text))


def user_code_ran() -> bool:
    """Whether this process ran any user code (a `python:` block or a recipe)."""
    return any(m.startswith("__datafile_") for m in sys.modules)


def module_name(scope: str, root: str | Path) -> str:
    """The module a Datafile's `python:` blocks run as, which their classes pickle
    under: `__datafile__` for the top Datafile (scope ""), `__datafile_<hash>__` for an
    included one (of its path from the project's folder: stable while it stays there)."""
    if not scope:
        return MODULE
    from .hashing import hash_text

    return f"__datafile_{hash_text(os.path.relpath(scope, root))[:8]}__"


class Namespace:
    """The globals one Datafile's recipes share: its `python:` blocks, run once as a
    module of its own (`module_name`)."""

    def __init__(self, blocks: tuple[tuple[str, int, str], ...], root: Path,
                 name: str = MODULE):
        self.blocks = blocks  # (text, line, the Datafile it is in)
        self.root = str(root)
        self.name = name
        self._module: types.ModuleType | None = None

    def globals(self) -> dict[str, Any]:
        """The namespace, running the `python:` blocks on first use. Raises RecipeFailure."""
        if self._module is None:
            # This project's modules first (another project's may have the same names).
            if self.root in sys.path:
                sys.path.remove(self.root)
            sys.path.insert(0, self.root)
            _forget_edited_modules(self.root)
            mod = types.ModuleType(self.name)
            mod.__file__ = self.blocks[0][2] if self.blocks else os.path.join(self.root, "Datafile")
            # Registered so that objects of classes defined here can be unpickled.
            sys.modules[self.name] = mod
            self._module = mod
            for text, line, filename in self.blocks:
                try:
                    code = compile(parse_at("if True:\n" + text + "\n", line - 1, filename),
                                   filename, "exec")
                    with exits_contained():
                        exec(code, mod.__dict__)
                except BaseException as e:
                    self._module = None
                    raise recipe_error(e, "the `python:` block") from None
            _note_imported(self.root)
        return self._module.__dict__


# The project's own modules as this process imported them: path -> (mtime, size).
_imported: dict[str, tuple[int, int]] = {}


# The folders of the projects whose `python:` blocks ran in this process.
_roots: set[str] = set()


def _project_modules(roots: set[str]):
    """(name, module, path) of the modules in `sys.modules` that are files of one of
    these projects (under its folder, not an installed package, not datamake itself)."""
    tops = tuple(os.path.join(os.path.abspath(r), "") for r in roots)
    installed = tuple(os.path.join(p, "") for p in {sys.prefix, sys.base_prefix})
    for name, mod in list(sys.modules.items()):
        path = getattr(mod, "__file__", None)
        if isinstance(path, str) and path.startswith(tops) and not path.startswith(installed) \
                and "-packages" + os.sep not in path and not name.startswith("__datafile") \
                and name.split(".", 1)[0] != "datamake":
            yield name, mod, path


def _compiled_from_other_source(mod: types.ModuleType, st: os.stat_result) -> bool:
    """Whether a module's cached bytecode was compiled from a source of another mtime or
    size than the file now (it was imported, then edited). Unknown: False."""
    try:
        with open(mod.__cached__, "rb") as f:  # type: ignore[attr-defined]
            head = f.read(16)
    except (AttributeError, TypeError, OSError):
        return False
    if len(head) < 16 or int.from_bytes(head[4:8], "little") != 0:  # hash-based pyc
        return False
    return (int.from_bytes(head[8:12], "little"), int.from_bytes(head[12:16], "little")) != \
        (int(st.st_mtime) & 0xFFFFFFFF, st.st_size & 0xFFFFFFFF)


def _forget_edited_modules(root: str) -> None:
    """Before a Datafile's `python:` blocks run again in the same process (the Python
    API, a notebook): the project's modules edited since this process imported them,
    and other projects' modules, are dropped from `sys.modules`, so the blocks import
    them afresh. Otherwise a step rerun for an edited helper would run the old helper
    (or another project's `helpers`) and record its result as the new one's."""
    _roots.add(root)
    mine = os.path.join(os.path.abspath(root), "")
    dropped = False
    for name, mod, path in _project_modules(_roots):
        try:
            st = os.stat(path)
        except OSError:
            continue
        known = _imported.get(path)
        if not path.startswith(mine) or (  # another project's module of the same name
                known != (st.st_mtime_ns, st.st_size) if known is not None
                else _compiled_from_other_source(mod, st)):
            del sys.modules[name]
            _imported.pop(path, None)
            dropped = True
    if dropped:
        importlib.invalidate_caches()


def _note_imported(root: str) -> None:
    """Note the state of the project's modules now in `sys.modules`."""
    for _, _, path in _project_modules({root}):
        if path not in _imported:
            with contextlib.suppress(OSError):
                st = os.stat(path)
                _imported[path] = (st.st_mtime_ns, st.st_size)


def failure(exc: BaseException, summary: str) -> RecipeFailure:
    """A RecipeFailure showing the user's traceback without datamake's own frames."""
    import traceback

    te = traceback.TracebackException.from_exception(exc)
    _drop_own_frames(te)
    text = "".join(te.format())
    last = "".join(te.format_exception_only()).strip().splitlines()[-1]
    return RecipeFailure(f"{_where(te)}{last}", f"{summary}\n{text}".rstrip() + "\n")


def _where(te) -> str:
    where = next((f for f in reversed(te.stack) if not f.filename.startswith(_PACKAGE_DIR)), None)
    return f"{where.filename}:{where.lineno}: " if where else ""


class RecipeExit(BaseException):
    """Raised in place of `os._exit` called by a recipe (see `exits_contained`)."""

    def __init__(self, code: Any):
        super().__init__(code)
        self.code = code


def recipe_error(exc: BaseException, what: str) -> BaseException:
    """What an exception out of user code (`what`: "the recipe of `x`", "the `python:`
    block") becomes: a RecipeFailure, whatever it is, so that a recipe never decides the
    build's exit code. `sys.exit(0)` would end the build green with nothing built,
    `sys.exit(3)` exit 3, a recipe's own `raise KeyboardInterrupt` pass for Ctrl-C. Only
    an interruption this process was sent (SIGINT, SIGTERM) is returned as it is, to
    stop the build."""
    from . import processes

    if isinstance(exc, KeyboardInterrupt) and processes.interrupted():
        return exc
    if isinstance(exc, (SystemExit, RecipeExit)):
        code = exc.code
        call = (f"os._exit({code!r})" if isinstance(exc, RecipeExit)
                else "sys.exit()" if code is None else f"sys.exit({code!r})")
        return _exit_failure(exc, f"{what} called {call}",
                             "help: a recipe ends its step, never the build: raise an "
                             "exception to fail the step, or return its value")
    if isinstance(exc, KeyboardInterrupt):
        f = failure(exc, f"{what} raised KeyboardInterrupt:")
        return RecipeFailure(f.summary.replace("KeyboardInterrupt", f"{what} raised KeyboardInterrupt"),
                             f.text + "help: only Ctrl-C (SIGINT) or SIGTERM sent to datamake "
                                      "stops the build; a recipe that fails raises another "
                                      "exception\n")
    return failure(exc, f"{what} failed:")


def _exit_failure(exc: BaseException, message: str, help_: str) -> RecipeFailure:
    """A recipe that exited: where (the user's frames), and why that failed its step."""
    import traceback

    te = traceback.TracebackException.from_exception(exc)
    _drop_own_frames(te)
    stack = "".join(te.stack.format())
    return RecipeFailure(f"{_where(te)}{message}",
                         f"{message}:\nTraceback (most recent call last):\n{stack}{help_}\n")


# os._exit cannot be caught. Called by a recipe in the build's own process (-j 1) it
# would end the build at once, silently and with the recipe's exit code (the finished
# steps' records are kept, but nothing is reported and -k goes no further); in a pool
# worker it would break the pool. So while user code runs, os._exit is replaced by a
# function that raises RecipeExit in that code's own thread and process, and is the real
# os._exit anywhere else: in a process the recipe forked (multiprocessing's fork start
# method ends its children with os._exit), in other threads (a Dask worker's own). The
# real one is put back as soon as no recipe runs. What the replacement cannot stop
# (os.abort, a signal, a crash in native code) ends the process: in a pool worker the
# step fails with the worker's exit status (see runners.py).
_REAL_EXIT = os._exit
_contained: dict[tuple[int, int], int] = {}  # (pid, thread) -> user code running in it
_contained_lock = _thread.allocate_lock()


def _contained_exit(code: int) -> None:
    if (os.getpid(), _thread.get_ident()) in _contained:
        raise RecipeExit(code)
    _REAL_EXIT(code)


@contextlib.contextmanager
def exits_contained():
    """While user code runs in this thread: `os._exit` fails it (RecipeExit) instead of
    ending the process."""
    key = (os.getpid(), _thread.get_ident())
    with _contained_lock:
        _contained[key] = _contained.get(key, 0) + 1
        os._exit = _contained_exit
    try:
        yield
    finally:
        with _contained_lock:
            if _contained[key] > 1:
                _contained[key] -= 1
            else:
                del _contained[key]
            if not _contained:
                os._exit = _REAL_EXIT


def _drop_own_frames(te) -> None:
    import traceback

    while te is not None:
        te.stack = traceback.StackSummary.from_list(
            [f for f in te.stack if not f.filename.startswith(_PACKAGE_DIR)])
        te = te.__cause__ or te.__context__  # type: ignore[assignment]


def shell_commands(recipe: "RecipeInfo | model.Recipe") -> list[tuple[int, str]]:
    """(Datafile line, command) for each `$ ` line of a shell recipe."""
    out = []
    for n, ln in enumerate(recipe.text.split("\n"), recipe.line):
        s = ln.strip()
        if s.startswith("$ ") or s == "$":
            out.append((n, s[2:].strip()))
    return out


def shell_env_name(name: str) -> str:
    """The environment variable through which `{name}` reaches a shell line."""
    return f"dm_{name}"


def expand_shell(command: str, names: "set[str] | dict[str, str]") -> str:
    """A shell line with each `{name}` (of `names`) replaced by a reference to the
    environment variable that holds its value (`shell_env_name`), written for the
    quoting it stands in: `"${dm_x}"` bare, `${dm_x}` inside double quotes, and
    `'"${dm_x}"'` inside single quotes (close, expand, reopen). `{{` and `}}` give
    single braces.

    Values never become part of the command's text, so a file name or a partition key
    such as `$(touch PWNED)` is data wherever the placeholder stands: the shell expands
    a variable once and never parses what it holds. The quoting is only read to give
    the right value; if it were misread (a construct this scan does not follow), the
    result would be a wrong value or a syntax error, never a command from a value.
    """
    out: list[str] = []
    pos = 0
    for m, where in _placeholders(command):
        name = m.group(1)
        if name not in names:
            continue
        var = shell_env_name(name)
        ref = {"plain": f'"${{{var}}}"', "double": f"${{{var}}}",
               "single": f"'\"${{{var}}}\"'"}[where.rstrip("`")]
        out.append(_unbrace(command[pos:m.start()]))
        out.append(ref)
        pos = m.end()
    out.append(_unbrace(command[pos:]))
    return "".join(out)


def _unbrace(text: str) -> str:
    return text.replace("{{", "{").replace("}}", "}")


def _placeholders(command: str):
    """Each `{name}` match of a shell line with its quoting: "plain", "single" or
    "double". Follows backslashes, quotes, and `$(...)` and backquotes (which start
    an unquoted context again, even inside double quotes)."""
    from .model import SHELL_REF

    found = {m.start(): m for m in SHELL_REF.finditer(command)}
    stack = ["plain"]  # the quoting of each nested command substitution
    i, n = 0, len(command)
    while i < n:
        c = command[i]
        top = stack[-1]
        if i in found:
            m = found[i]
            yield m, top
            i = m.end()
            continue
        if top == "single":
            if c == "'":
                stack.pop()
        elif c == "\\":
            i += 1  # the next character is taken as it is
        elif top == "double":
            if c == '"':
                stack.pop()
            elif command.startswith("$(", i):
                stack.append("plain")
                i += 1
            elif c == "`":
                stack.append("plain`")
        else:  # plain, possibly inside $( ) or backquotes
            if c == "'":
                stack.append("single")
            elif c == '"':
                stack.append("double")
            elif command.startswith("$(", i):
                stack.append("plain")
                i += 1
            elif c == ")" and len(stack) > 1 and top == "plain":
                stack.pop()
            elif c == "`" and top == "plain`":
                stack.pop()
            elif c == "`":
                stack.append("plain`")
        i += 1


def _shown(command: str, values: dict[str, str]) -> str:
    """A shell line with its values written in, quoted, for messages only."""
    import shlex

    from .model import SHELL_REF

    def sub(m) -> str:
        name = m.group(1)
        return shlex.quote(values[name]) if name in values else m.group(0)

    return _unbrace(SHELL_REF.sub(sub, command))


def run_shell(recipe: "RecipeInfo", values: dict[str, str], cwd: Path, filename: str,
              stdout: Any = None) -> None:
    """Run each `$ ` line with `sh -e`, like Make, `{name}` bound to `values[name]`
    through the environment (see `expand_shell`); what a line leaves running in the
    background is stopped when it ends (`processes.run_line`). Raises RecipeFailure at
    the failed line."""
    from .processes import run_line

    env = dict(os.environ)
    env.update({shell_env_name(k): v for k, v in values.items()})
    for line, cmd in shell_commands(recipe):
        expanded = expand_shell(cmd, values)
        try:
            returncode = run_line(["sh", "-ec", expanded], cwd, stdout, env)
        except OSError as e:
            raise RecipeFailure(f"{filename}:{line}: cannot run sh: {e}",
                                f"{filename}:{line}: cannot run sh: {e}\n") from None
        if returncode != 0:
            status = (f"killed by signal {-returncode}" if returncode < 0
                      else f"exit status {returncode}")
            raise RecipeFailure(f"{filename}:{line}: shell command failed ({status})",
                                f"  File \"{filename}\", line {line}\n    $ {cmd}\n"
                                f"shell command failed ({status}): {_shown(cmd, values)}\n")


class RecipeInfo(NamedTuple):
    """What running a rule needs, kept apart from the model so it loads fast."""

    kind: str  # "python" | "shell" | "notebook"
    text: str
    line: int  # the Datafile line of the recipe's first line
    header_line: int  # the rule's line, for messages
    generator: bool
    args: tuple[str, ...]
    code: bytes  # marshalled function (python recipes)
    scope: str = ""  # whose python: blocks it sees ("" for the top Datafile)
    filename: str = ""  # the Datafile it is written in, as shown in messages
    notebook: str = ""  # a notebook recipe's file (absolute)


def recipe_info(rule: "model.Rule") -> RecipeInfo:
    r = rule.recipe
    assert r is not None
    return RecipeInfo(r.kind, r.text, r.line, rule.span.line, r.generator, r.args, r.code,
                      r.scope, rule.span.file, r.notebook)


def make_function(info: RecipeInfo, name: str, globals_: dict[str, Any]) -> Callable[..., Any]:
    """The recipe's function, from the code compiled when the Datafile was parsed."""
    return types.FunctionType(_code(info.code), globals_, name)


@functools.lru_cache(maxsize=1024)
def _code(marshalled: bytes) -> types.CodeType:
    # A pattern rule's thousands of steps share one recipe: unmarshal it once.
    return marshal.loads(marshalled)
