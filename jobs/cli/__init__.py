"""cli: the ``smjobs`` command line (typer). ``shared`` holds the typer app and the options and helpers every
command shares; each command group is one module that imports ``shared`` and registers its commands on its
app: ``plan`` (validate, plan, schedule), ``jobs`` (submit, status, logs, stop, list, cost), ``local`` (run),
``infer``, ``tune``, ``infra``, ``catalog`` (instances, prices). This package imports them, so that importing
``smjobs.cli`` gives the whole app; none of them imports this package.

May import: everything. Nothing imports the CLI (but ``demo``).
"""

from smjobs.cli import catalog, infer, infra, jobs, local, plan, tune  # noqa: F401  (each registers its commands)
from smjobs.cli.shared import app


def main() -> None:
    """The ``smjobs`` console script."""
    app()


__all__ = ["app", "main"]
