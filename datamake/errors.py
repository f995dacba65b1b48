"""Error kinds, source spans and diagnostics, each error kind with its exit code."""
from __future__ import annotations

from typing import NamedTuple

EXIT_OK = 0
EXIT_FAILED = 1  # a recipe failed, or `-q` found work
EXIT_USAGE = 2  # the Datafile or the command line is wrong
EXIT_INTERRUPTED = 130


class Span(NamedTuple):
    """A region of a source file; lines and columns are 1-based, `end_col` exclusive."""

    file: str
    line: int
    col: int
    end_line: int = 0
    end_col: int = 0

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


class Diagnostic(NamedTuple):
    """One message about the user's input, located at a span when it has one."""

    severity: str  # "error" | "warning"
    message: str
    span: Span | None = None
    help: str | None = None
    notes: tuple[str, ...] = ()


class DatamakeError(Exception):
    """Base of every error datamake reports itself (never with a traceback)."""

    exit_code = EXIT_USAGE


class DatafileError(DatamakeError):
    """The Datafile (or a file it names) is wrong; carries one or more diagnostics."""

    exit_code = EXIT_USAGE

    def __init__(self, diagnostics: list[Diagnostic] | Diagnostic):
        if isinstance(diagnostics, Diagnostic):
            diagnostics = [diagnostics]
        self.diagnostics = list(diagnostics)
        super().__init__(self.diagnostics[0].message if self.diagnostics else "error")


class UsageError(DatamakeError):
    """The command line is wrong."""

    exit_code = EXIT_USAGE

    def __init__(self, message: str, help: str | None = None):
        super().__init__(message)
        self.help = help


class CatalogError(DatamakeError):
    """A dataset could not be read or written (missing file, bad format, storage down)."""

    exit_code = EXIT_FAILED

    def __init__(self, message: str, help: str | None = None):
        super().__init__(message)
        self.help = help

    def __reduce__(self):  # crosses process boundaries (-j, Dask)
        return (CatalogError, (str(self), self.help))


class StateError(DatamakeError):
    """`.datamake/` cannot be used (another schema version, or unreadable)."""

    exit_code = EXIT_USAGE

    def __init__(self, message: str, help: str | None = None):
        super().__init__(message)
        self.help = help


def error(message: str, span: Span | None = None, help: str | None = None,
          notes: tuple[str, ...] = ()) -> DatafileError:
    """A `DatafileError` with a single error diagnostic (for `raise error(...)`)."""
    return DatafileError(Diagnostic("error", message, span, help, tuple(notes)))
