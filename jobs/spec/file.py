"""Reading a spec file as plain data, safely: whatever the file holds, the answer is data or one ``SpecFileError``.

YAML as PyYAML reads it by default lets a spec file do things no job spec needs: a duplicate key silently replaces
the first (``instance_count: 2`` then ``instance_count: 64``), a kilobyte of nested aliases expands into billions
of elements, ``2024-05-01`` becomes a ``datetime.date`` that nothing downstream can encode, and a deep nesting
exhausts the recursion limit. Here a duplicate key is an error naming both lines; timestamps and binary stay the
text they were written as; and the data is walked once within limits on the file size, the nesting depth and
the number of elements (aliases counted as what they expand to) before anything else sees it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

MAX_FILE_BYTES = 1_000_000
MAX_DEPTH = 32
MAX_ELEMENTS = 100_000


class SpecFileError(ValueError):
    """The file is not a spec smjobs can read; the message says why and where."""


class _Loader(yaml.SafeLoader):
    """SafeLoader with duplicate keys refused and timestamps and binary kept as their text."""

    def construct_mapping(self, node, deep=False):
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # `<<: *defaults` merges; flatten_mapping resolves it
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if isinstance(key, list | dict):
                raise SpecFileError(f"line {line}: a mapping key must be a plain value")
            if key in seen:
                raise SpecFileError(f"line {line}: duplicate key {key!r} (first on line {seen[key]}); "
                                    "YAML would silently keep the last one")
            seen[key] = line
        return super().construct_mapping(node, deep=deep)

    def construct_text(self, node):
        return self.construct_scalar(node)


_Loader.add_constructor("tag:yaml.org,2002:timestamp", _Loader.construct_text)
_Loader.add_constructor("tag:yaml.org,2002:binary", _Loader.construct_text)


def _json_pairs(pairs: list[tuple[str, Any]]) -> dict:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise SpecFileError(f"duplicate key {key!r}; JSON would silently keep the last one")
        out[key] = value
    return out


def check_shape(data: Any, where: str = "the spec") -> None:
    """Refuse data nested deeper than MAX_DEPTH or holding more than MAX_ELEMENTS values (shared references, as YAML
    aliases make them, count each time they appear)."""
    budget = MAX_ELEMENTS
    stack = [(data, 1)]
    while stack:
        node, depth = stack.pop()
        budget -= 1
        if budget < 0:
            raise SpecFileError(f"{where} holds more than {MAX_ELEMENTS:,} values (counting what YAML aliases expand to)")
        if depth > MAX_DEPTH:
            raise SpecFileError(f"{where} is nested more than {MAX_DEPTH} levels deep")
        if isinstance(node, dict):
            stack.extend((v, depth + 1) for v in node.values())
        elif isinstance(node, list | tuple):
            stack.extend((v, depth + 1) for v in node)


def read_spec_data(path: str | Path) -> dict[str, Any]:
    """Read a YAML or JSON spec file into plain data (no validation of its fields)."""
    path = Path(path)
    if path.is_dir():
        raise SpecFileError(f"{path} is a folder; give the spec file inside it (YAML or JSON)")
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise SpecFileError(f"{path} has {size:,} bytes; a spec file has at most {MAX_FILE_BYTES:,}")
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise SpecFileError(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise SpecFileError(f"{path}: {exc.strerror or exc}") from None
    try:
        if path.suffix == ".json":
            data = json.loads(text, object_pairs_hook=_json_pairs)
        else:
            data = yaml.load(text, Loader=_Loader)  # a SafeLoader: no Python objects
    except SpecFileError as exc:
        raise SpecFileError(f"{path}: {exc}") from None
    except RecursionError:
        raise SpecFileError(f"{path} is nested too deeply to read") from None
    except (yaml.YAMLError, json.JSONDecodeError, ValueError) as exc:
        raise SpecFileError(f"{path}: not valid {'JSON' if path.suffix == '.json' else 'YAML'}: {exc}") from None
    if not isinstance(data, dict):
        raise SpecFileError(f"{path}: a job spec is a mapping of fields, got {type(data).__name__}")
    check_shape(data, str(path))
    return data
