"""Which ``--flags`` a training script accepts, read from its argparse calls without running it.

A hyperparameter the script does not accept makes argparse exit at start-up, after the cluster was
provisioned. Reading the ``add_argument`` calls of the script and of the modules it imports from its own
source_dir catches that before anything starts. Scripts that accept anything (``parse_known_args``) or that
parse arguments some other way are not checked.
"""

from __future__ import annotations

import ast
from pathlib import Path


def _local_module(root: Path, dotted: str) -> Path | None:
    base = root.joinpath(*dotted.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def accepted_flags(script: Path, root: Path | None = None) -> set[str] | None:
    """Option names (without dashes) defined by the script and the local modules it imports, or None when unknown."""
    root = root or script.parent
    flags: set[str] = set()
    seen: set[Path] = set()
    queue = [script]
    while queue:
        path = queue.pop()
        if path in seen:
            continue
        seen.add(path)
        try:
            tree = ast.parse(path.read_text())
        except (OSError, SyntaxError, UnicodeDecodeError):
            return None
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                queue += [m for m in [_local_module(root, node.module)] if m]
            elif isinstance(node, ast.Import):
                queue += [m for alias in node.names for m in [_local_module(root, alias.name)] if m]
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                if node.func.attr == "parse_known_args":
                    return None
                if node.func.attr == "add_argument":
                    for arg in node.args:
                        if isinstance(arg, ast.Constant) and isinstance(arg.value, str) and arg.value.startswith("--"):
                            flags.add(arg.value[2:])
    return flags or None
