"""How hyperparameters travel from a spec to the training script, and the rules they must meet.

The way there has three hops, each with its own encoding:
1. the SDK JSON-encodes every value into CreateTrainingJob's ``HyperParameters`` (a string map);
2. SageMaker writes that map to ``hyperparameters.json``; the container toolkit JSON-decodes each value
   into ``SM_HPS`` and turns it into ``--key value`` arguments with ``str(value)``;
3. the script parses its arguments.

``str()`` loses lists and dicts on hop 2: a list becomes a Python repr (``['a', 'b']`` is not JSON)
and a dict becomes ``k=v,k2=v2`` with nesting and types gone (SDK issue #613). smjobs therefore sends
every list and dict as its JSON text: argv and ``SM_HPS`` then carry the identical string, and
``json.loads`` restores it exactly (``entry_points/smjobs_runtime.py`` does that in the scripts).
Bools and numbers are sent as they are: ``str(True)`` and ``str(0.001)`` read back exactly.
"""

from __future__ import annotations

import json
import re
from typing import Any

# CreateTrainingJob limits (botocore's SageMaker model: HyperParameters max 100 entries,
# HyperParameterKey max 256, HyperParameterValue max 2500 characters).
MAX_HYPERPARAMETERS = 100
MAX_KEY_CHARS = 256
MAX_VALUE_CHARS = 2500

# The SDK adds these to every PyTorch job; strategies add their own on top.
SDK_BASE_KEYS = (
    "sagemaker_submit_directory",
    "sagemaker_program",
    "sagemaker_container_log_level",
    "sagemaker_job_name",
    "sagemaker_region",
)

# A key becomes `--key` for argparse: keep to characters argparse and shells take without quoting.
KEY_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]*")

# Hyperparameters and environment variables are shown in the console and DescribeTrainingJob.
SECRET_KEY_PATTERN = re.compile(
    r"(passw(or)?d|secret|token|api[_-]?key|access[_-]?key|private[_-]?key|credential|auth)", re.IGNORECASE
)
AWS_ACCESS_KEY_ID = re.compile(r"\b(AKIA|ASIA|ABIA|ACCA|A3T[A-Z0-9])[A-Z0-9]{16}\b")
AWS_SECRET_ACCESS_KEY = re.compile(r"(?<![A-Za-z0-9/+=])[A-Za-z0-9/+=]{40}(?![A-Za-z0-9/+=])")
PRIVATE_KEY_BLOCK = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")


def to_estimator_value(value: Any) -> Any:
    """The value handed to the SDK: lists and dicts as JSON text, everything else unchanged."""
    if isinstance(value, list | tuple | dict):
        return json.dumps(value, separators=(",", ":"))
    return value


def to_wire(value: Any) -> str:
    """What the SDK puts in CreateTrainingJob for an estimator hyperparameter value."""
    return json.dumps(value)


def looks_secret(key: str, value: Any) -> str | None:
    """Why a key/value pair looks like a credential, or None."""
    if SECRET_KEY_PATTERN.search(key):
        return f"the key {key!r} names a credential"
    text = value if isinstance(value, str) else json.dumps(value)
    if AWS_ACCESS_KEY_ID.search(text):
        return "the value contains an AWS access key ID"
    if PRIVATE_KEY_BLOCK.search(text):
        return "the value contains a private key"
    # A bare 40-character base64 string is the shape of an AWS secret access key; require a mix of
    # cases and digits so that ordinary words and hex digests do not trip it.
    for match in AWS_SECRET_ACCESS_KEY.finditer(text):
        token = match.group(0)
        if re.search(r"[a-z]", token) and re.search(r"[A-Z]", token) and re.search(r"[0-9]", token):
            return "the value looks like an AWS secret access key"
    return None
