"""Which ``--flags`` a training script accepts, read from its argparse calls without running it.

A hyperparameter the script does not accept makes argparse exit at start-up, after the cluster was
provisioned. Reading the script's ``add_argument`` calls catches that before anything starts. Scripts that
accept anything (``parse_known_args``) or that parse arguments some other way are not checked.
"""

from __future__ import annotations

import ast
from pathlib import Path


def accepted_flags(script: Path) -> set[str] | None:
    """Option names (without dashes) the script's argparse parser defines, or None when unknown."""
    try:
        tree = ast.parse(script.read_text())
    except (OSError, SyntaxError, UnicodeDecodeError):
        return None
    flags: set[str] = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
            continue
        if node.func.attr == "parse_known_args":
            return None
        if node.func.attr == "add_argument":
            for arg in node.args:
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str) and arg.value.startswith("--"):
                    flags.add(arg.value[2:])
    return flags or None
