"""Error kinds, source spans and diagnostics, each error kind with its exit code."""
from __future__ import annotations

from typing import Any, NamedTuple

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


class _DiagnosticFields(NamedTuple):
    code: str
    severity: str  # "error" | "warning"
    message: str
    span: Span | None = None
    help: str | None = None
    notes: tuple[str, ...] = ()


class Diagnostic(_DiagnosticFields):
    """One message about the user's input, of a kind in `messages.MESSAGES` (its `code`),
    located at a span when it has one. Made with `Diagnostic.of(code, span, **fields)`;
    a code that is not in the table is refused, so every diagnostic has a kind.

    Immutable (a named tuple, not a dataclass: this module is on every build's start-up
    path, and the table of messages is read only when a diagnostic is made)."""

    __slots__ = ()

    def __new__(cls, code: str, severity: str, message: str, span: Span | None = None,
                help: str | None = None, notes: tuple[str, ...] = ()) -> "Diagnostic":
        from .messages import MESSAGES

        if code not in MESSAGES:
            raise ValueError(f"no message has the code {code!r}")
        return super().__new__(cls, code, severity, message, span, help, tuple(notes))

    @classmethod
    def of(cls, code: str, span: Span | None = None, /, **fields: Any) -> "Diagnostic":
        """The diagnostic of kind `code`, its text written from `fields` by the table."""
        from .messages import MESSAGES, text

        message, help, note = text(code, **fields)
        return cls(code, MESSAGES[code].severity, message, span, help,
                   (note,) if note else ())


class DatamakeError(Exception):
    """Base of every error datamake reports itself (never with a traceback), each of a
    kind in `messages.MESSAGES` (its `code`)."""

    exit_code = EXIT_USAGE
    code = "storage"
    help: str | None = None

    def to_diagnostics(self) -> list[Diagnostic]:
        """What the renderer tells of it."""
        return [Diagnostic(self.code, "error", str(self), None, self.help)]


class DatafileError(DatamakeError):
    """The Datafile (or a file it names) is wrong; carries one or more diagnostics."""

    exit_code = EXIT_USAGE

    def __init__(self, diagnostics: list[Diagnostic] | Diagnostic):
        if isinstance(diagnostics, Diagnostic):
            diagnostics = [diagnostics]
        self.diagnostics = list(diagnostics)
        if self.diagnostics:
            self.code = self.diagnostics[0].code
        super().__init__(self.diagnostics[0].message if self.diagnostics else "error")

    def to_diagnostics(self) -> list[Diagnostic]:
        return self.diagnostics


class UsageError(DatamakeError):
    """The command line (or a call of the Python API) is wrong: a kind in the table of
    messages, `UsageError(code, **fields)`."""

    exit_code = EXIT_USAGE

    def __init__(self, code: str, /, **fields: Any):
        from .messages import text

        message, help, _ = text(code, **fields)
        super().__init__(message)
        self.code = code
        self.help = help
        self.fields = fields

    def __reduce__(self):
        return (_usage_error, (self.code, self.fields))


def _usage_error(code: str, fields: dict[str, Any]) -> "UsageError":
    return UsageError(code, **fields)


class CatalogError(DatamakeError):
    """A dataset could not be read or written (missing file, bad format, storage down).

    `CatalogError.of(code, **fields)` makes one of a kind in the table of messages;
    `CatalogError(message, help)` one of the kind `storage`, told as it was met."""

    exit_code = EXIT_FAILED

    def __init__(self, message: str, help: str | None = None, code: str = "storage"):
        super().__init__(message)
        self.help = help
        self.code = code

    @classmethod
    def of(cls, code: str, /, **fields: Any) -> "CatalogError":
        from .messages import text

        message, help, _ = text(code, **fields)
        return cls(message, help, code)

    def __reduce__(self):  # crosses process boundaries (-j, Dask)
        return (CatalogError, (str(self), self.help, self.code))


class StateError(DatamakeError):
    """`.datamake/` cannot be used (another schema version, or unreadable)."""

    exit_code = EXIT_USAGE
    code = "state"

    def __init__(self, message: str, help: str | None = None):
        super().__init__(message)
        self.help = help


def error(code: str, span: Span | None = None, /, **fields: Any) -> DatafileError:
    """A `DatafileError` with the one diagnostic of kind `code` (for `raise error(...)`)."""
    return DatafileError(Diagnostic.of(code, span, **fields))
