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
    from .status import Status


class Project(project_mod.Project):
    """A Datafile, ready to plan, build and load from."""

    def build(self, targets: list[str] | str | None = None, **options: Any) -> "BuildResult":
        """Build `targets` (default: the default target) quietly; returns a BuildResult."""
        from .executor import build
        from .console import QuietReporter

        return build(self, self.resolve_targets(targets), QuietReporter(), **options)

    def load(self, name: str) -> Any:
        """The value of a parameter, dataset or rule output, as a recipe would see it;
        with a StaleValueWarning when it (or what it was made from) was built with
        other parameter values than this project's."""
        value = super().load(name)
        if self.graph.kind_of(name) == "output":
            from .status import warn_if_built_with_other_params

            warn_if_built_with_other_params(self, name)
        return value

    def status(self, targets: list[str] | str | None = None) -> "Status":
        """A dry run: what would run and why, as a table (text, and HTML in Jupyter); it
        has all a BuildResult has (`names("planned")`, `outcomes`...)."""
        from .status import Status

        return Status(self.build(targets, dry_run=True))


def load(name: str, datafile: str | None = None) -> Any:
    """The value of a dataset, rule output or parameter, as recipes see it.

    `datafile` defaults to the nearest `Datafile` in the current folder or above.
    """
    project = Project(datafile or project_mod.find_datafile())
    try:
        return project.load(name)
    finally:
        project.close()
