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

# The service's patterns are Java regular expressions. Where Python's `re` reads the same text differently, the
# translation spells out Java's meaning: \d, \s and \w are ASCII in Java and Unicode in Python; Java's `.` stops
# at every line terminator (\n, \r, \u0085, \u2028, \u2029), Python's only at \n; and `re` has no \p{..}.
_UNICODE_CLASSES = {  # emitted as they are: here \d and \w mean Python's Unicode classes on purpose
    "L": r"[^\W\d_]",
    "N": r"\d",
    "Z": r"[^\S\t\n\r\f\v\x1c-\x1f\x85]",  # Java's separators: Python's whitespace less its control characters
    "Alnum": r"[A-Za-z0-9]",
}
_ASCII_CLASSES = {"d": "0-9", "s": " \\t\\n\\x0b\\f\\r", "w": "a-zA-Z0-9_"}
_NOT_LINE_TERMINATOR = "[^\\n\\r\\x85\\u2028\\u2029]"
# a class (not negated) holding \p{..} or a negated escape (\S, \D, \W): Python's classes cannot nest, so it
# becomes an alternation of its parts
_CLASS_TO_SPLIT = re.compile(r"\[(?!\^)((?:\\.|[^\]\\])*(?:\\p\{\w+\}|\\[SDW])(?:\\.|[^\]\\])*)\]")
_SPLIT_PART = re.compile(r"\\p\{(\w+)\}|\\([SDW])")
_P_ESCAPE = re.compile(r"\\p\{(\w+)\}")

JAVA_INTEGER_RANGE = {"integer": (-(2**31), 2**31 - 1), "long": (-(2**63), 2**63 - 1)}
"""The service reads integers as Java int and long."""


def java_to_python_regex(pattern: str) -> str:
    r"""Java pattern -> Python pattern with the same meaning (for the constructs the service's patterns use)."""
    out: list[str] = []
    i, in_class = 0, False
    while i < len(pattern):
        char = pattern[i]
        split = _CLASS_TO_SPLIT.match(pattern, i) if char == "[" and not in_class else None
        if split:  # [\p{L}\p{N}_.-], [\S\s]
            parts = [_UNICODE_CLASSES[name] if name else f"[^{_ASCII_CLASSES[negated.lower()]}]"
                     for name, negated in _SPLIT_PART.findall(split.group(1))]
            rest = _SPLIT_PART.sub("", split.group(1))
            parts += [java_to_python_regex(f"[{rest}]")] if rest else []
            out.append("(?:" + "|".join(parts) + ")")
            i = split.end()
            continue
        if char == "\\" and i + 1 < len(pattern):
            nxt = pattern[i + 1]
            p_class = _P_ESCAPE.match(pattern, i)
            if p_class:
                out.append(_UNICODE_CLASSES[p_class.group(1)])
                i = p_class.end()
                continue
            if nxt in _ASCII_CLASSES:
                out.append(_ASCII_CLASSES[nxt] if in_class else f"[{_ASCII_CLASSES[nxt]}]")
            elif nxt in "DSW" and not in_class:
                out.append(f"[^{_ASCII_CLASSES[nxt.lower()]}]")
            else:
                out.append(char + nxt)
            i += 2
            continue
        if char == "[" and not in_class:
            in_class = True
        elif char == "]" and in_class and out and out[-1] not in ("[", "[^"):
            in_class = False
        elif char == "." and not in_class:
            out.append(_NOT_LINE_TERMINATOR)
            i += 1
            continue
        out.append(char)
        i += 1
    return "".join(out)


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
        if kind in JAVA_INTEGER_RANGE and not JAVA_INTEGER_RANGE[kind][0] <= value <= JAVA_INTEGER_RANGE[kind][1]:
            low, high = JAVA_INTEGER_RANGE[kind]
            problems.append(Problem(path, f"{value} does not fit the service's {kind} ({low} to {high})"))
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
