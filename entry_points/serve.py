"""Batch Transform's model server handlers for smjobs' models (``smjobs infer --backend batch-transform``).

SageMaker's PyTorch inference container imports this file from the model's ``code/`` folder and calls
``model_fn`` once per worker, then ``input_fn`` -> ``predict_fn`` -> ``output_fn`` per request. With
SplitType=Line and BatchStrategy=MultiRecord a request body holds several records, one per line; the response
has exactly one line per record, in order, so that SageMaker can join each to its input (JoinSource=Input).

It loads the same files and writes the same output for a record as ``infer.py`` (``common/predict.py``):
train.py's ``model.pt``, or the weights of a model factory named by ``SMJOBS_MODEL_FACTORY``. A record that cannot
be read or that the model refuses gets ``{"error": ...}`` in its line instead of failing the whole request.
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402

from common import records  # noqa: E402
from common.predict import Predictor, load  # noqa: E402

JSON_LINES = ("application/jsonlines", "application/jsonl", "application/x-jsonlines")
CSV = "text/csv"
FACTORY_ENV = "SMJOBS_MODEL_FACTORY"
MODEL_FILE_ENV = "SMJOBS_MODEL_FILE"
INPUT_FIELD_ENV = "SMJOBS_INPUT_FIELD"


def model_fn(model_dir: str, context=None) -> Predictor:
    """The model in ``model_dir`` (where SageMaker unpacked model.tar.gz), on the worker's GPU when there is one."""
    folder = Path(model_dir)
    name = os.environ.get(MODEL_FILE_ENV, "model.pt")
    if not (folder / name).is_file():
        found = sorted(p.name for p in folder.glob("*.pt"))
        raise FileNotFoundError(f"{folder / name} does not exist (.pt files there: {found or 'none'})")
    device = "cpu"
    if torch.cuda.is_available():
        gpu = int(context.system_properties.get("gpu_id", 0)) if context is not None else 0
        device = f"cuda:{gpu}"
    return load(folder / name, device, os.environ.get(FACTORY_ENV, ""))


def input_fn(body, content_type: str) -> list[tuple[object, str]]:
    """Each line of the body as (input, error): JSON Lines (the input is the ``inputs`` field, or
    ``SMJOBS_INPUT_FIELD``) or headerless CSV of numbers."""
    text = body.decode() if isinstance(body, bytes | bytearray) else str(body)
    kind = content_type.split(";")[0].strip().lower()
    if kind not in (*JSON_LINES, CSV):
        raise ValueError(f"content type {content_type!r}: this model takes {JSON_LINES[0]} or {CSV}")
    field = os.environ.get(INPUT_FIELD_ENV, "inputs")
    out = []
    for line in text.splitlines():
        if not line.strip():
            continue
        if kind == CSV:
            out.append(records.numbers(next(csv.reader(io.StringIO(line)))))
        else:
            _, value, error = records.parse_json(line, "", field, "")
            out.append((value, error))
    return out


def predict_fn(data: list[tuple[object, str]], predictor: Predictor) -> list[dict]:
    """One result per record, in order: the model's output, or the record's error."""
    results: list[dict | None] = []
    tensors, where = [], []
    for i, (value, error) in enumerate(data):
        if not error:
            try:
                tensors.append(predictor.tensor(value))
                where.append(i)
                results.append(None)
                continue
            except ValueError as exc:
                error = str(exc)
        results.append({"error": error})
    for i, result in zip(where, predictor.predict(tensors), strict=True):
        results[i] = {"error": result} if isinstance(result, str) else result
    return results


def output_fn(results: list[dict], accept: str):
    """JSON Lines, one line per record."""
    return "".join(json.dumps(r) + "\n" for r in results), JSON_LINES[0]
