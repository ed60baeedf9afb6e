"""Check a request against botocore's SageMaker service model in full.

botocore's own client-side validation checks types, required members and minimums; it skips enums,
maxima and patterns, which the service then rejects after the SDK has already uploaded code. This module
walks the operation's input shape and reports every violation, as a net under smjobs' own rules.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any

from smjobs.errors import Problem

# Java regex classes used by SageMaker patterns, translated for Python's `re`.
_UNICODE_CLASSES = {
    "L": r"[^\W\d_]",
    "N": r"\d",
    "Z": r"[^\S\t\n\r\f\v]",
    "Alnum": r"[A-Za-z0-9]",
}
_CLASS_WITH_P = re.compile(r"\[((?:\\.|[^\]\\])*)\]")
_P_ESCAPE = re.compile(r"\\p\{(\w+)\}")


def java_to_python_regex(pattern: str) -> str:
    r"""Rewrite ``\p{..}`` classes (which ``re`` lacks) into alternations Python understands."""

    def rewrite_class(match: re.Match) -> str:
        body = match.group(1)
        names = _P_ESCAPE.findall(body)
        if not names:
            return match.group(0)
        rest = _P_ESCAPE.sub("", body)
        parts = [_UNICODE_CLASSES[n] for n in names]
        if rest:
            parts.append(f"[{rest}]")
        return "(?:" + "|".join(parts) + ")"

    pattern = _CLASS_WITH_P.sub(rewrite_class, pattern)
    return _P_ESCAPE.sub(lambda m: _UNICODE_CLASSES[m.group(1)], pattern)


@cache
def _compiled(pattern: str) -> re.Pattern:
    return re.compile(java_to_python_regex(pattern))


@cache
def _operation_input(service: str, operation: str):
    import botocore.session

    model = botocore.session.get_session().get_service_model(service)
    return model.operation_model(operation).input_shape


def check(params: dict, operation: str = "CreateTrainingJob", service: str = "sagemaker") -> list[Problem]:
    """Every way ``params`` breaks the operation's input shape (enums, lengths, ranges, patterns, members)."""
    problems: list[Problem] = []
    _walk(_operation_input(service, operation), params, operation, problems)
    return problems


def _walk(shape, value: Any, path: str, problems: list[Problem]) -> None:
    meta = shape.metadata
    kind = shape.type_name
    if kind == "structure":
        if not isinstance(value, dict):
            problems.append(Problem(path, f"expected a structure, got {type(value).__name__}"))
            return
        for name in shape.required_members:
            if name not in value:
                problems.append(Problem(f"{path}.{name}", "is required by the service"))
        for name, member_value in value.items():
            if name not in shape.members:
                problems.append(Problem(f"{path}.{name}", f"is not a member of {shape.name}"))
                continue
            _walk(shape.members[name], member_value, f"{path}.{name}", problems)
        return
    if kind == "list":
        if not isinstance(value, list | tuple):
            problems.append(Problem(path, f"expected a list, got {type(value).__name__}"))
            return
        _check_size(meta, len(value), path, "entries", problems)
        for i, item in enumerate(value):
            _walk(shape.member, item, f"{path}[{i}]", problems)
        return
    if kind == "map":
        if not isinstance(value, dict):
            problems.append(Problem(path, f"expected a map, got {type(value).__name__}"))
            return
        _check_size(meta, len(value), path, "entries", problems)
        for key, item in value.items():
            _walk(shape.key, key, f"{path}{{key {key!r}}}", problems)
            _walk(shape.value, item, f"{path}[{key!r}]", problems)
        return
    if kind == "string":
        if not isinstance(value, str):
            problems.append(Problem(path, f"expected a string, got {type(value).__name__}"))
            return
        _check_size(meta, len(value), path, "characters", problems)
        enum = shape.enum
        if enum and value not in enum:
            problems.append(Problem(path, f"{value!r} is not one of the {len(enum)} values the service accepts"))
        pattern = meta.get("pattern")
        if pattern and not _compiled(pattern).fullmatch(value):
            problems.append(Problem(path, f"{_short(value)} does not match the service pattern {pattern}"))
        return
    if kind in ("integer", "long", "float", "double"):
        if isinstance(value, bool) or not isinstance(value, int | float):
            problems.append(Problem(path, f"expected a number, got {type(value).__name__}"))
            return
        if "min" in meta and value < meta["min"]:
            problems.append(Problem(path, f"{value} is below the service minimum {meta['min']}"))
        if "max" in meta and value > meta["max"]:
            problems.append(Problem(path, f"{value} is above the service maximum {meta['max']}"))
        return
    if kind == "boolean" and not isinstance(value, bool):
        problems.append(Problem(path, f"expected true or false, got {value!r}"))


def _check_size(meta: dict, size: int, path: str, unit: str, problems: list[Problem]) -> None:
    if "min" in meta and size < meta["min"]:
        problems.append(Problem(path, f"has {size} {unit}; the service needs at least {meta['min']}"))
    if "max" in meta and size > meta["max"]:
        problems.append(Problem(path, f"has {size} {unit}; the service allows at most {meta['max']}"))


def _short(value: str) -> str:
    return repr(value if len(value) <= 60 else value[:57] + "...")
