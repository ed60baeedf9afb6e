"""What a training script's argparse accepts, read from its source without running it.

SageMaker's container toolkit passes every hyperparameter as ``--key value``. A key the script does not accept, a
value its ``type`` cannot parse, a value outside its ``choices``, a ``store_true`` flag (which takes no value) or a
missing ``required=True`` option each make argparse exit at start-up, after the cluster was provisioned and
billed. Reading the ``add_argument`` calls of the script, and of the modules it imports from its own source
folder, catches those before anything starts. What cannot be known statically (a ``type`` that is a function of
the script's, choices computed at run time) is not checked; a script that calls ``parse_known_args`` accepts
unknown keys. Scripts that parse arguments some other way (click, hydra, fire) are not checked at all.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path
from typing import Any

STATIC_TYPES = {"int": int, "float": float, "str": str}
FLAG_ACTIONS = ("store_true", "store_false", "store_const", "count", "help", "version")
"""Actions whose option takes no value: ``--flag value`` would leave ``value`` unrecognised."""


@dataclass(frozen=True)
class Option:
    names: tuple[str, ...]
    """Option names without dashes (``lr``, ``learning-rate``)."""
    where: str
    """``file:line`` of the add_argument call."""
    type_name: str | None = None
    """int, float or str when statically known, else None."""
    choices: tuple | None = None
    required: bool = False
    takes_value: bool = True
    nargs: Any = None


@dataclass(frozen=True)
class ScriptArguments:
    options: tuple[Option, ...]
    accepts_unknown: bool
    """The script calls parse_known_args: extra keys are ignored, not fatal."""

    def find(self, key: str) -> Option | None:
        return next((o for o in self.options if key in o.names), None)

    def names(self) -> list[str]:
        return sorted(n for o in self.options for n in o.names[:1])

    def check_value(self, option: Option, value: Any) -> str | None:
        """Why argparse would reject ``value`` (as the toolkit passes it) for ``option``, or None."""
        if not option.takes_value:
            return (f"--{option.names[0]} takes no value ({option.where}), but SageMaker passes every hyperparameter as "
                    f"--{option.names[0]} {value}")
        if option.nargs in ("+", "*") or isinstance(option.nargs, int) and option.nargs > 1:
            if isinstance(value, list | tuple | dict):
                return (f"--{option.names[0]} takes several values (nargs={option.nargs!r}, {option.where}), but a list arrives "
                        "as one JSON text argument")
            return None
        text = _as_argument(value)
        parser = STATIC_TYPES.get(option.type_name or "")
        if parser is not None and parser is not str:
            try:
                parser(text)
            except ValueError:
                return f"--{option.names[0]} is type={option.type_name} ({option.where}), which cannot read {text!r}"
        if option.choices is not None and option.type_name is not None:
            converted = parser(text) if parser is not None else text
            if converted not in option.choices:
                return f"--{option.names[0]} takes one of {', '.join(map(str, option.choices))} ({option.where}), not {text!r}"
        return None


def _as_argument(value: Any) -> str:
    """The text argparse sees: the toolkit's str() of the value smjobs sends (lists and dicts as JSON text)."""
    import json

    if isinstance(value, list | tuple | dict):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def _local_module(root: Path, dotted: str) -> Path | None:
    base = root.joinpath(*dotted.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _keyword(call: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def _literal(node: ast.expr | None) -> Any:
    if node is None:
        return None
    try:
        return ast.literal_eval(node)
    except (ValueError, SyntaxError):
        return None


def _option(call: ast.Call, where: str) -> Option | None:
    names = tuple(a.value[2:] for a in call.args if isinstance(a, ast.Constant) and isinstance(a.value, str) and a.value.startswith("--"))
    if not names:
        return None  # a positional argument, or a short option only: the toolkit never passes those
    type_node = _keyword(call, "type")
    type_name = type_node.id if isinstance(type_node, ast.Name) and type_node.id in STATIC_TYPES else None
    if type_node is None:
        type_name = "str"
    choices = _literal(_keyword(call, "choices"))
    action = _literal(_keyword(call, "action"))
    return Option(
        names=names,
        where=where,
        type_name=type_name,
        choices=tuple(choices) if isinstance(choices, list | tuple) else None,
        required=_literal(_keyword(call, "required")) is True,
        takes_value=action not in FLAG_ACTIONS,
        nargs=_literal(_keyword(call, "nargs")),
    )


def read_arguments(script: Path, root: Path | None = None) -> ScriptArguments | None:
    """The options defined by ``script`` and the local modules it imports, or None when it has no argparse options
    (or cannot be read)."""
    root = root or script.parent
    options: list[Option] = []
    accepts_unknown = False
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
                    accepts_unknown = True
                elif node.func.attr == "add_argument":
                    option = _option(node, f"{path.relative_to(root) if path.is_relative_to(root) else path.name}:{node.lineno}")
                    if option is not None:
                        options.append(option)
    if not options:
        return None
    return ScriptArguments(tuple(options), accepts_unknown)
