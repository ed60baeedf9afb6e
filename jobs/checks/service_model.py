"""Check a request against botocore's SageMaker service model in full.

botocore's own client-side validation checks types, required members and minimums; it skips enums,
maxima and patterns, which the service then rejects after the SDK has already uploaded code. This module
walks the operation's input shape and reports every violation, as a net under smjobs' own rules.
"""

from __future__ import annotations

import re
from functools import cache, cached_property
from pathlib import Path
from typing import Any

from smjobs.cache import cache_dir, read_json, write_json
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


class Shape:
    """One shape of botocore's service model, read from the model's JSON: what the walk needs of botocore's
    ``Shape`` (``type_name``, ``metadata``, ``required_members``, ``members``, ``member``, ``key``, ``value``,
    ``enum``), without importing botocore's model classes (a tenth of a second at every command's start)."""

    def __init__(self, name: str, shapes: dict[str, dict]):
        self.name, self._shapes = name, shapes
        self.metadata: dict = shapes[name]
        self.type_name: str = self.metadata["type"]
        self.required_members: list[str] = self.metadata.get("required", [])
        self.enum: list[str] | None = self.metadata.get("enum")

    def _ref(self, ref: dict) -> Shape:
        return Shape(ref["shape"], self._shapes)

    @cached_property
    def members(self) -> dict[str, Shape]:
        return {name: self._ref(ref) for name, ref in self.metadata.get("members", {}).items()}

    @cached_property
    def member(self) -> Shape:
        return self._ref(self.metadata["member"])

    @cached_property
    def key(self) -> Shape:
        return self._ref(self.metadata["key"])

    @cached_property
    def value(self) -> Shape:
        return self._ref(self.metadata["value"])


def _reached(name: str, shapes: dict[str, dict]) -> dict[str, dict]:
    """The shapes ``name`` reaches through members, list members and map keys and values, itself included."""
    out: dict[str, dict] = {}
    todo = [name]
    while todo:
        current = todo.pop()
        if current in out:
            continue
        out[current] = shape = shapes[current]
        todo += [ref["shape"] for ref in shape.get("members", {}).values()]
        todo += [shape[part]["shape"] for part in ("member", "key", "value") if part in shape]
    return out


def _bundled_model_key(service: str) -> str | None:
    """What identifies the model botocore reads for ``service`` when that is the one it ships (the file's path,
    size and modification time), found without importing botocore; None when botocore would look elsewhere first
    (``AWS_DATA_PATH``, ``~/.aws/models``, a ``data_path`` in the profile), or the file is not where it ships it."""
    import importlib.util
    import os

    from smjobs.spec.region import RegionError, profile_config

    try:
        elsewhere = os.environ.get("AWS_DATA_PATH") or profile_config().get("data_path")
    except RegionError:
        return None
    if elsewhere or os.path.isdir(os.path.expanduser(f"~/.aws/models/{service}")):
        return None
    found = importlib.util.find_spec("botocore")
    if found is None or not found.submodule_search_locations:
        return None
    folder = Path(found.submodule_search_locations[0]) / "data" / service
    versions = sorted(p for p in folder.glob("*") if p.is_dir())  # botocore reads the newest API version
    files = [f for v in versions[-1:] for f in (v / "service-2.json.gz", v / "service-2.json") if f.is_file()]
    if not files:
        return None
    stat = files[0].stat()
    return f"{files[0]}:{stat.st_size}:{stat.st_mtime_ns}"


@cache
def _operation_input(service: str, operation: str) -> Shape:
    """The operation's input shape. Its shapes are kept in the cache folder, next to the key of the model file they
    came from: botocore's loader reads and decompresses all of a service's model (SageMaker's: 400 kB of gzip,
    ~0.15 s with its imports) only when that file changes."""
    key = _bundled_model_key(service)
    path = cache_dir() / "service-models" / f"{service}-{operation}.json"
    stored = read_json(path, key) if key else None
    if stored is None:
        import botocore.session

        model = botocore.session.get_session().get_component("data_loader").load_service_model(service, "service-2")
        name = model["operations"][operation]["input"]["shape"]
        stored = {"input": name, "shapes": _reached(name, model["shapes"])}
        if key:
            write_json(path, key, stored)
    return Shape(stored["input"], stored["shapes"])


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
