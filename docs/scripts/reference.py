"""The docs' generated reference pages: every spec field from the pydantic models (type, default, unit,
constraints, and the docstring written under it) and every command and option of the typer app.

MkDocs builds them on each build (``gen_pages.py``, through mkdocs-gen-files), so they cannot fall behind the
code; ``python docs/scripts/reference.py spec|cli`` prints one, and the docs tests check both cover everything.
"""

from __future__ import annotations

import enum
import sys
import types
import typing
from typing import Any, Literal, get_args, get_origin

import annotated_types
from pydantic import BaseModel
from pydantic_core import PydanticUndefined

UNITS = (("_gb", "GB"), ("_gib", "GiB"), ("_mb", "MB"), ("_s", "seconds"), ("_hours", "hours"),
         ("_usd_per_hour", "USD per hour"), ("_usd", "USD"), ("_days", "days"), ("_bytes", "bytes"))
"""Unit by name suffix: names carry their units (``volume_size_gb``, ``max_run_s``)."""


def unit(name: str) -> str:
    return next((label for suffix, label in UNITS if name.endswith(suffix)), "")


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in get_args(annotation) for m in _models_in(arg)]


def _anchor(path: str) -> str:
    """MkDocs' heading id for ``## `path```: lower case, punctuation dropped, spaces to dashes."""
    return "".join(c for c in path.lower().replace(" ", "-") if c.isalnum() or c in "-_")


def type_name(annotation: Any, links: dict[type, str]) -> str:
    """A field's type as a reader writes it in YAML terms."""
    origin, args = get_origin(annotation), get_args(annotation)
    if annotation is type(None):
        return "null"
    if origin in (typing.Union, types.UnionType):
        if all(isinstance(a, type) and issubclass(a, BaseModel) for a in args if a is not type(None)) and len(args) > 2:
            return "one of: " + ", ".join(type_name(a, links) for a in args)
        return " or ".join(type_name(a, links) for a in args)
    if origin is typing.Annotated:
        return type_name(args[0], links)
    if origin is Literal:
        return " \\| ".join(f"`{a}`" for a in args)
    if origin in (list, tuple):
        inner = [a for a in args if a is not Ellipsis]
        return f"list of {type_name(inner[0], links)}" if inner else "list"
    if origin is dict:
        return f"mapping of {type_name(args[0], links)} to {type_name(args[1], links)}"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return f"[{annotation.__name__}](#{links[annotation]})" if annotation in links else annotation.__name__
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return " \\| ".join(f"`{m.value}`" for m in annotation)
    names = {str: "string", int: "integer", float: "number", bool: "boolean", Any: "any", list: "list", dict: "mapping"}
    return names.get(annotation, str(annotation))


def constraints(field) -> str:
    out = []
    for item in field.metadata:
        for attr, symbol in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
            if isinstance(item, getattr(annotated_types, {"ge": "Ge", "gt": "Gt", "le": "Le", "lt": "Lt"}[attr])):
                out.append(f"{symbol} {getattr(item, attr):,}")
        if isinstance(item, annotated_types.MinLen):
            out.append(f"at least {item.min_length} character{'' if item.min_length == 1 else 's'}")
        if isinstance(item, annotated_types.MaxLen):
            out.append(f"at most {item.max_length} character{'' if item.max_length == 1 else 's'}")
        if getattr(item, "pattern", None):
            out.append(f"matches `{item.pattern}`")
    return ", ".join(out)


def default(field) -> str:
    if field.default_factory is not None:
        value = field.default_factory()
        if isinstance(value, BaseModel):
            kind = getattr(value, "type", None)
            return f"`type: {kind}`" if kind else "all defaults"
        return f"`{value!r}`" if value not in ({}, [], ()) else "empty"
    if field.default is PydanticUndefined:
        return "**required**"
    if field.default is None:
        return "unset"
    if field.default in ((), [], {}):
        return "empty"
    value = field.default.value if isinstance(field.default, enum.Enum) else field.default
    return f"`{str(value).lower() if isinstance(value, bool) else value}`"


def _cell(text: str | None) -> str:
    return " ".join((text or "").split()).replace("|", "\\|")


def _sections(root: type[BaseModel]) -> list[tuple[str, type[BaseModel]]]:
    """(path, model) for every model reachable from ``root``, breadth first, each once."""
    seen, queue, out = set(), [("", root)], []
    while queue:
        path, model = queue.pop(0)
        if model in seen:
            continue
        seen.add(model)
        out.append((path, model))
        for name, field in model.model_fields.items():
            annotation, origin = field.annotation, get_origin(field.annotation)
            child = f"{path}.{name}" if path else name
            if origin is dict:
                child += ".<name>"
            elif origin in (list, tuple):
                child += "[]"
            models = _models_in(annotation)
            for model_ in models:
                kind = model_.model_fields.get("type")
                label = f"{child} (type: {kind.default})" if len(models) > 2 and kind is not None else child
                queue.append((label, model_))
    return out


def spec_markdown() -> str:
    from smjobs.spec.job import JobSpec

    sections = _sections(JobSpec)
    links = {model: _anchor(path or "top-level-fields") for path, model in sections}
    lines = ["# Spec reference", "",
             "Every field of a job spec (YAML or JSON file, or `smjobs.JobSpec` in Python), generated from the pydantic "
             "models' field docstrings on each docs build. Units are in the names (`_gb`, `_s`, `_usd`). Unknown "
             "fields are refused with the nearest known name; `smjobs validate` checks the rest "
             "([What gets checked](../validation.md)).", ""]
    for path, model in sections:
        lines += [f"## `{path}`" if path else "## Top-level fields", ""]
        doc = (model.__doc__ or "").strip()
        if doc:
            lines += [" ".join(doc.split()), ""]
        lines += ["| field | type | default | unit | constraints | description |", "|---|---|---|---|---|---|"]
        for name, field in model.model_fields.items():
            lines.append(f"| `{name}` | {_cell(type_name(field.annotation, links))} | {_cell(default(field))} | "
                         f"{unit(name)} | {_cell(constraints(field))} | {_cell(field.description)} |")
        lines.append("")
    return "\n".join(lines)


def _param_row(param) -> str:
    """One option or argument: typer 0.29 carries its own copy of click, so this reads the parameters by their
    attributes, not by click's classes."""
    if param.param_type_name == "argument":
        names = f"`{param.name.upper()}` (argument)"
    else:
        names = ", ".join(f"`{o}`" for o in [*param.opts, *param.secondary_opts])
    kind = "flag" if getattr(param, "is_flag", False) else param.bare_type()
    value = param.default
    shown = "" if value in (None, (), [], False) or callable(value) else f"`{str(value).lower() if value is True else value}`"
    if param.required:
        shown = "**required**"
    return f"| {names} | {_cell(str(kind))} | {_cell(shown)} | {_cell(getattr(param, 'help', None))} |"


def _commands(group, prefix: str):
    for name, command in group.commands.items():
        if command.hidden:
            continue
        full = f"{prefix} {name}"
        nested = hasattr(command, "commands")
        yield full, command, nested
        if nested:
            yield from _commands(command, full)


def cli_markdown() -> str:
    import typer

    from smjobs.cli import app

    root = typer.main.get_command(app)
    lines = ["# CLI reference", "",
             "Every `smjobs` command and option, generated from the typer app on each docs build (`smjobs COMMAND "
             "--help` prints the same). Exit codes: 0 success, 1 an AWS error or a job that did not complete, 2 bad "
             "input (nothing was sent), 130/143 stopped by SIGINT/SIGTERM.", "",
             "## `smjobs`", "", " ".join((root.help or "").split()), "",
             "| option | type | default | description |", "|---|---|---|---|"]
    lines += [_param_row(p) for p in root.params]
    lines.append("")
    for name, command, is_group in _commands(root, "smjobs"):
        lines += [f"## `{name}`", "", " ".join((command.help or "").strip().split("\n\n")[0].split()), ""]
        if is_group:
            continue
        args = "".join(f" {p.name.upper()}" for p in command.params if p.param_type_name == "argument")
        lines += [f"`{name} [OPTIONS]{args}`", ""]
        options = [p for p in command.params if p.name != "help"]
        if options:
            lines += ["| option | type | default | description |", "|---|---|---|---|"]
            lines += [_param_row(p) for p in options]
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    print({"spec": spec_markdown, "cli": cli_markdown}[sys.argv[1]]())
