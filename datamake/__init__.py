"""datamake: Make for data.

A `Datafile` declares datasets, parameters and rules whose recipes are Python; datamake
builds exactly the stale part of the pipeline. From Python (a notebook, a test):

    import datamake
    df = datamake.load("model_input")            # the nearest Datafile's catalog
    p = datamake.Project("path/to/Datafile")     # the same catalog, params and values
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from .api import Project
    from .report import Report

__all__ = ["Project", "Report", "load", "__version__"]


def load(name: str, datafile: str | None = None) -> Any:
    """The value of a dataset, rule output or parameter, as recipes see it.

    `datafile` defaults to the nearest `Datafile` in the current folder or above.
    """
    from .api import load

    return load(name, datafile)


def __getattr__(name: str) -> Any:
    # Imported on first use, so `import datamake` stays light.
    if name == "Project":
        from .api import Project

        return Project
    if name == "Report":
        from .report import Report

        return Report
    raise AttributeError(f"module 'datamake' has no attribute {name!r}")
