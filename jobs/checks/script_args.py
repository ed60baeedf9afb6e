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

import argparse
import ast
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import smjobs_runtime

STATIC_TYPES = {"int": int, "float": float, "str": str}
# smjobs_runtime's argparse types, by name (``type=boolean`` or ``type=smr.boolean``): the real functions, which
# import nothing beyond the standard library, read the value as the script will
RUNTIME_TYPES = {name: getattr(smjobs_runtime, name)
                 for name in ("boolean", "json_value", "json_list", "json_dict", "toolkit_mapping")}
PARSERS = {**STATIC_TYPES, **RUNTIME_TYPES}
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
    default: Any = None
    """The default when it is a literal (None otherwise, or when there is none)."""


PLAIN_NEGATIVE = re.compile(r"^-\d+$|^-\d*\.\d+$")
"""The negative numbers argparse takes as a value (Python 3.11's own pattern; 3.12 and later take more): anything
else that starts with '-' (-1e-05, -inf, -x) is read as an option."""


@dataclass(frozen=True)
class ScriptArguments:
    options: tuple[Option, ...]
    accepts_unknown: bool
    """The script calls parse_known_args: extra keys are ignored, not fatal."""

    def find(self, key: str) -> Option | None:
        return next((o for o in self.options if key in o.names), None)

    def names(self) -> list[str]:
        return sorted(n for o in self.options for n in o.names[:1])

    def defaults(self) -> dict[str, Any]:
        """Each option's literal default, by its first name."""
        return {o.names[0]: o.default for o in self.options if o.default is not None}

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
        if text.startswith("-") and len(text) > 1 and " " not in text and not PLAIN_NEGATIVE.match(text):
            return (f"--{option.names[0]} {text}: argparse reads an argument that starts with '-' and is not a plain "
                    "negative number (-3, -0.5) as another option, so the script stops with 'expected one argument'; "
                    "write it without an exponent or a leading '-'")
        parser = PARSERS.get(option.type_name or "")
        if parser is not None and parser is not str:
            try:
                parser(text)
            except (ValueError, argparse.ArgumentTypeError):
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


def _type_name(node: ast.expr | None) -> str | None:
    if node is None:
        return "str"
    name = node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else None
    return name if name in PARSERS else None


def _choices(node: ast.expr | None, values: dict[str, Any]) -> Any:
    """A literal, or a name (``list(models)``, ``models``) whose value is known from the module or the calls."""
    found = _literal(node)
    if found is not None or node is None:
        return found
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("list", "tuple") \
            and len(node.args) == 1:
        node = node.args[0]
    return values.get(node.id) if isinstance(node, ast.Name) else None


def _option(call: ast.Call, where: str, values: dict[str, Any] | None = None) -> Option | None:
    names = tuple(a.value[2:] for a in call.args if isinstance(a, ast.Constant) and isinstance(a.value, str) and a.value.startswith("--"))
    if not names:
        return None  # a positional argument, or a short option only: the toolkit never passes those
    type_name = _type_name(_keyword(call, "type"))
    choices = _choices(_keyword(call, "choices"), values or {})
    action = _literal(_keyword(call, "action"))
    return Option(
        names=names,
        where=where,
        type_name=type_name,
        choices=tuple(choices) if isinstance(choices, list | tuple) else None,
        required=_literal(_keyword(call, "required")) is True,
        takes_value=action not in FLAG_ACTIONS,
        nargs=_literal(_keyword(call, "nargs")),
        default=_literal(_keyword(call, "default")),
    )


_READ: dict[tuple[str, str], tuple[dict[Path, int], ScriptArguments | None]] = {}
"""What ``read_arguments`` found per (script, root), with the files it read and their modification times: a tuning
space or a fuzz test validates the same script thousands of times."""


def read_arguments(script: Path, root: Path | None = None) -> ScriptArguments | None:
    """The options defined by ``script`` and the local modules it imports, or None when it has no argparse options
    (or cannot be read). Choices computed from a name (``choices=list(models)``) are read from the module's literals
    and, for a function's parameter, from the calls to that function (its default when a call passes none)."""
    root = root or script.parent
    key = (str(script), str(root))
    if key in _READ:
        files, found = _READ[key]
        try:
            if all(path.stat().st_mtime_ns == mtime for path, mtime in files.items()):
                return found
        except OSError:
            pass
    trees: dict[Path, ast.Module] = {}
    found = _read_arguments(script, root, trees)
    try:
        _READ[key] = ({path: path.stat().st_mtime_ns for path in trees}, found)
    except OSError:
        _READ.pop(key, None)
    return found


def _read_arguments(script: Path, root: Path, trees: dict[Path, ast.Module]) -> ScriptArguments | None:
    queue = [script]
    scans: dict[Path, _Scan] = {}
    while queue:
        path = queue.pop()
        if path in trees:
            continue
        try:
            trees[path] = ast.parse(path.read_text())
        except (OSError, SyntaxError, UnicodeDecodeError):
            trees[path] = ast.Module(body=[], type_ignores=[])  # remembered with its mtime: a fix is read again
            return None
        scans[path] = _scan(trees[path])
        queue += [m for m in map(lambda name: _local_module(root, name), scans[path].imports) if m]
    literals = {path: _module_literals(tree) for path, tree in trees.items()}
    calls: dict[str, list[tuple[Path, ast.Call]]] = {}
    for path, found in scans.items():
        for name, node in found.calls:
            calls.setdefault(name, []).append((path, node))
    options: list[Option] = []
    accepts_unknown = False
    for path, found in scans.items():
        where_file = path.relative_to(root) if path.is_relative_to(root) else path.name
        values_in: dict[int, dict[str, Any]] = {}  # per function (by id), computed for the functions that need it
        for node, function in found.methods:
            if node.func.attr == "parse_known_args":
                accepts_unknown = True
            elif node.func.attr == "add_argument":
                # a call inside a function sees that function's parameters (its innermost one's)
                if function is None:
                    values = literals[path]
                else:
                    values = values_in.get(id(function))
                    if values is None:
                        values = values_in[id(function)] = {**literals[path],
                                                            **_parameter_values(function, path, calls, literals)}
                option = _option(node, f"{where_file}:{node.lineno}", values)
                if option is not None:
                    options.append(option)
    if not options:
        return None
    options.sort(key=lambda o: o.where)
    return ScriptArguments(tuple(options), accepts_unknown)


@dataclass
class _Scan:
    """What one walk of a module's tree finds."""

    imports: list[str] = field(default_factory=list)
    """Absolute module names it imports (``import a.b``, ``from a.b import c``)."""
    calls: list[tuple[str | None, ast.Call]] = field(default_factory=list)
    """Every call, with the called name (``f(...)``: f, ``x.f(...)``: f)."""
    methods: list[tuple[ast.Call, ast.FunctionDef | None]] = field(default_factory=list)
    """Each method call (``parser.add_argument(...)``) with the innermost function it is in (None at module level)."""


def _scan(tree: ast.Module) -> _Scan:
    found = _Scan()
    stack: list[tuple[ast.AST, ast.FunctionDef | None]] = [(tree, None)]
    while stack:
        node, function = stack.pop()
        if isinstance(node, ast.FunctionDef):
            function = node
        elif isinstance(node, ast.Call):
            func = node.func
            found.calls.append((func.id if isinstance(func, ast.Name) else getattr(func, "attr", None), node))
            if isinstance(func, ast.Attribute):
                found.methods.append((node, function))
        elif isinstance(node, ast.ImportFrom):
            if node.module and node.level == 0:
                found.imports.append(node.module)
        elif isinstance(node, ast.Import):
            found.imports += [alias.name for alias in node.names]
        stack.extend((child, function) for child in ast.iter_child_nodes(node))
    return found


def _module_literals(tree: ast.Module) -> dict[str, Any]:
    """Module-level ``NAME = <literal>``."""
    out = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            value = _literal(node.value)
            if value is not None:
                out[node.targets[0].id] = value
    return out


def _parameter_values(function: ast.FunctionDef, path: Path, calls: dict, literals: dict) -> dict[str, Any]:
    """A parameter's value when every call seen agrees on it (a keyword literal, or none and so the default)."""
    params = function.args.args
    defaults = dict(zip([a.arg for a in params[len(params) - len(function.args.defaults):]], function.args.defaults,
                        strict=True))
    out = {}
    for name, default in defaults.items():
        fallback = _literal(default)
        if fallback is None and isinstance(default, ast.Name):
            fallback = literals[path].get(default.id)
        seen = set()
        for call_path, call in calls.get(function.name, []):
            given = _keyword(call, name)
            value = fallback if given is None else _literal(given)
            if value is None and isinstance(given, ast.Name):
                value = literals[call_path].get(given.id)
            seen.add(repr(value))
            if value is None or len(call.args) > [a.arg for a in params].index(name) - (1 if params and params[0].arg == "self" else 0):
                seen.add("unknown")
        if fallback is not None and len(seen) <= 1 and "unknown" not in seen:
            out[name] = fallback if not seen else ast.literal_eval(next(iter(seen)))
    return out
