"""cli: the ``smjobs`` command line (typer). ``app`` holds the typer app and the options and helpers every
command shares; each command group is one module that imports ``app`` and registers its commands on it:
``plan`` (validate, plan, schedule), ``jobs`` (submit, status, logs, stop, list, cost), ``local`` (run),
``infer``, ``tune``, ``infra``, ``catalog`` (instances, prices).

May import: everything. Nothing imports the CLI (but ``demo``).
"""

from smjobs.cli.app import app, main

__all__ = ["app", "main"]
