"""cli: the ``smjobs`` command line (typer). ``shared`` holds the typer app and the options and helpers every
command shares; each command group is one module that imports ``shared`` and registers its commands on its
app: ``plan`` (validate, plan, schedule), ``jobs`` (submit, status, logs, stop, list, cost), ``local`` (run),
``infer``, ``tune``, ``infra``, ``catalog`` (instances, prices). This package imports them, so that importing
``smjobs.cli`` gives the whole app; none of them imports this package.

May import: everything. Nothing imports the CLI (but ``demo``).
"""

import copy
import sys

import typer
from typer.main import get_command_name

from smjobs.cli import catalog, infer, infra, jobs, local, plan, tune  # noqa: F401  (each registers its commands)
from smjobs.cli.shared import app


def main() -> None:
    """The ``smjobs`` console script."""
    one_command(sys.argv[1:])()


def one_command(args: list[str]) -> typer.Typer:
    """The app with only the command ``args`` names, when it names one: typer builds every registered command's
    parameters from its signature on each start (the type hints evaluated, a converter made per option: 0.09 s for
    smjobs' 19 commands, a fifth of ``smjobs validate``), yet a run uses one. The command's own help, errors and
    options are the same either way; ``smjobs --help``, a misspelt command (whose error lists the near names) and
    no command at all get the whole app."""
    # the first word that is not an option: the app's only option, --version, takes no value
    name = next((arg for arg in args if not arg.startswith("-")), None)
    commands = [info for info in app.registered_commands
                if (info.name or get_command_name(info.callback.__name__)) == name]
    groups = [info for info in app.registered_groups if info.name == name]
    if not commands and not groups:
        return app
    narrowed = copy.copy(app)
    narrowed.registered_commands, narrowed.registered_groups = commands, groups
    return narrowed


__all__ = ["app", "main"]
