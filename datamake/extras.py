"""Optional dependencies: the one place that says which extra brings which module, so a
missing one is one line naming what to install (exit 2), never a traceback."""
from __future__ import annotations

import importlib
from types import ModuleType

from .errors import UsageError

# module (top-level name) -> the extra of datamake that installs it
EXTRAS = {
    "pandas": "data", "pyarrow": "data", "openpyxl": "data", "matplotlib": "data",
    "s3fs": "s3", "distributed": "dask", "dask": "dask",
    "starlette": "ui", "uvicorn": "ui",
    "jupytext": "notebook", "nbclient": "notebook", "nbconvert": "notebook",
    "nbformat": "notebook", "ipykernel": "notebook",
    "watchdog": "watch",
}


class MissingExtraError(UsageError):
    """An optional dependency is not installed; the message names the extra."""

    def __init__(self, what: str, needs: str, install: str):
        super().__init__("extra-missing", what=what, needs=needs, install=install)

    def __reduce__(self):  # crosses process boundaries (-j, Dask)
        return (MissingExtraError, (self.fields["what"], self.fields["needs"],
                                    self.fields["install"]))


def install_hint(extra: str) -> str:
    """The command that installs `extra`."""
    return f'pip install "datamake[{extra}]"'


def require(module: str, what: str, needs: str | None = None) -> ModuleType:
    """Import `module` (a dotted name is fine) for `what` (a singular subject: "the csv
    format", "--ui"), or raise MissingExtraError with one line: "`what` needs `needs`
    (default: the module's name): pip install "datamake[extra]"". An ImportError from
    inside an installed module (a dependency of it missing) is the same error."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        top = module.split(".")[0]
        missing = (getattr(e, "name", None) or top).split(".")[0]
        extra = EXTRAS.get(top) or EXTRAS.get(missing) or "all"
        if needs is None:
            needs = module if missing == top else f"{module} ({missing} is not installed)"
        raise MissingExtraError(what, needs, install_hint(extra)) from None
