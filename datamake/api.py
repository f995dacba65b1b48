"""The Python API: `datamake.Project` and `datamake.load`, for notebooks and tests.

    import datamake
    df = datamake.load("model_input")            # the nearest Datafile's catalog
    p = datamake.Project("path/to/Datafile")     # the same catalog, params and values
    p.status()                                   # what would run, and why
    p.build("report")                            # build quietly; a BuildResult

A `Project` here is the loaded Datafile (project.py) with building on top of it, so
that the layer that loads a Datafile never imports the one that builds it.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import project as project_mod

if TYPE_CHECKING:
    from .outcomes import BuildResult


class Project(project_mod.Project):
    """A Datafile, ready to plan, build and load from."""

    def build(self, targets: list[str] | str | None = None, **options: Any) -> "BuildResult":
        """Build `targets` (default: the default target) quietly; returns a BuildResult."""
        from .executor import build
        from .console import QuietReporter

        return build(self, self.resolve_targets(targets), QuietReporter(), **options)

    def status(self, targets: list[str] | str | None = None) -> "BuildResult":
        """A dry run: what would run and why (a BuildResult with `planned` steps)."""
        return self.build(targets, dry_run=True)


def load(name: str, datafile: str | None = None) -> Any:
    """The value of a dataset, rule output or parameter, as recipes see it.

    `datafile` defaults to the nearest `Datafile` in the current folder or above.
    """
    project = project_mod.Project(datafile or project_mod.find_datafile())
    try:
        return project.load(name)
    finally:
        project.close()
