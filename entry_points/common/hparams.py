"""Argument types that read hyperparameters back exactly as the job spec gave them.

smjobs sends lists and dicts as JSON text (the container toolkit would otherwise flatten them) and bools
and numbers as they are, which the toolkit prints as ``True``/``False`` and Python numbers. These types
undo that, so ``--hidden_sizes '[256,256]'`` is ``[256, 256]`` under torchrun, under SageMaker and
from a shell alike.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

_TRUE = {"true", "1", "yes", "y", "on"}
_FALSE = {"false", "0", "no", "n", "off"}


def boolean(text: str) -> bool:
    """``True``/``true``/``1``/``yes`` and their opposites."""
    value = str(text).strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def json_value(text: str) -> Any:
    """A JSON value (list, dict, number, string, bool)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"expected JSON, got {text!r} ({exc.msg})") from None


def json_list(text: str) -> list:
    value = json_value(text)
    if not isinstance(value, list):
        raise argparse.ArgumentTypeError(f"expected a JSON list, got {text!r}")
    return value


def json_dict(text: str) -> dict:
    value = json_value(text)
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {text!r}")
    return value


def _scalar(text: str):
    for parse in (json.loads, boolean):
        try:
            return parse(text)
        except (json.JSONDecodeError, argparse.ArgumentTypeError):
            continue
    return text


def toolkit_mapping(text: str) -> dict:
    """A flat mapping the SDK sent as a JSON object, such as ``mp_parameters``: the container toolkit passes
    it as ``k=v,k2=v2`` (Python str() of each value), which this reads back; JSON text works too."""
    text = text.strip()
    if text.startswith("{"):
        return json_dict(text)
    out = {}
    for item in filter(None, text.split(",")):
        key, sep, value = item.partition("=")
        if not sep:
            raise argparse.ArgumentTypeError(f"expected k=v,k2=v2 or a JSON object, got {text!r}")
        out[key] = _scalar(value)
    return out
