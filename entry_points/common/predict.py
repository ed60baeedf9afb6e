"""A model loaded for inference, and records turned into batches and outputs (standard library and torch only).

Shared by ``infer.py`` (data-parallel inference under torchrun) and ``serve.py`` (Batch Transform's model server),
so that both backends load the same files and write the same output for a record:
- a ``model.pt`` written by ``train.py`` (``{"args", "model"}``): the zoo model is rebuilt from its arguments, and
  records are checked against the shape and dtype of its input;
- a model factory (``module:function`` importable from the code folder) plus weights: a ``{"model": state_dict}``
  file or a bare state dict. Records are checked by the model itself: a batch that fails is retried record by
  record, so one bad record is reported alone and the others are still predicted.
Files are loaded with ``weights_only=True``: loading runs no code from the file.
"""

from __future__ import annotations

import argparse
import importlib
import pickle
from dataclasses import dataclass
from pathlib import Path

import torch

from common.models import build_model, synthetic_batch


def _factory(spec: str):
    module, _, name = spec.partition(":")
    if not module or not name:
        raise ValueError(f"model factory {spec!r}: expected module:function")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"model factory {spec!r}: {exc} (the module must be in the job's code folder)") from exc


def _state_dict(saved) -> dict:
    if isinstance(saved, dict) and isinstance(saved.get("model"), dict):
        return saved["model"]
    if isinstance(saved, dict) and all(isinstance(v, torch.Tensor) for v in saved.values()):
        return saved
    raise ValueError("the weights file holds neither a state dict nor {'model': state_dict}")


@dataclass
class Predictor:
    model: torch.nn.Module
    device: torch.device
    shape: tuple[int, ...] | None = None
    """A record's input shape, when the model is known (a zoo model); None lets the model judge."""
    dtype: torch.dtype | None = None

    def tensor(self, value) -> torch.Tensor:
        """A record's input as a tensor; ValueError says why it is not one the model takes."""
        try:
            x = torch.as_tensor(value, dtype=self.dtype)
        except (TypeError, ValueError, RuntimeError) as exc:
            raise ValueError(f"not a tensor of numbers: {exc}") from None
        if self.shape is not None and tuple(x.shape) != self.shape:
            raise ValueError(f"shape {list(x.shape)}, the model takes {list(self.shape)}")
        return x

    def _forward(self, xs: list[torch.Tensor]) -> list[dict]:
        with torch.no_grad():
            result = self.model(torch.stack(xs).to(self.device)).float().cpu()
        if len(result) != len(xs):
            raise ValueError(f"the model returned {len(result)} rows for {len(xs)} records")
        return [output_line(row) for row in result]

    def predict(self, xs: list[torch.Tensor]) -> list[dict | str]:
        """One output per input, in order: a result line, or the error of a record the model refused. A failing
        batch is retried record by record, so only the records that fail alone are errors."""
        if not xs:
            return []
        try:
            return list(self._forward(xs))
        except (RuntimeError, ValueError, IndexError, TypeError) as exc:
            if len(xs) == 1:
                return [f"the model failed on it: {str(exc).splitlines()[0][:300]}"]
        return [self.predict([x])[0] for x in xs]


def output_line(row: torch.Tensor) -> dict:
    line = {"output": row.flatten().tolist()}
    if row.ndim == 1 and row.numel() > 1:
        line["prediction"] = int(row.argmax())
    return line


def load(path: Path, device, factory: str = "") -> Predictor:
    """The model in ``path`` on ``device``, in eval mode: train.py's model.pt, or ``factory``'s model with the
    file's weights."""
    try:  # tensors and plain values only: no code from the file runs
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as exc:
        # torch's own message would suggest weights_only=False, which runs whatever code the file holds
        raise ValueError(f"{path} is not a file torch.save wrote with tensors and plain values only (a state dict, "
                         f"or train.py's model.pt): {str(exc).splitlines()[0][:200]}") from None
    if factory:
        model = _factory(factory)()
        if not isinstance(model, torch.nn.Module):
            raise ValueError(f"model factory {factory!r} returned {type(model).__name__}, not a torch.nn.Module")
        model.load_state_dict(_state_dict(saved))
        return Predictor(model.to(device).eval(), torch.device(device))
    if not (isinstance(saved, dict) and "args" in saved and "model" in saved):
        raise ValueError(f"{path} is not a model.pt written by train.py ({{'args', 'model'}}); for your own model "
                         "give a model factory (inference.model_factory) and this file as its weights")
    margs = argparse.Namespace(**saved["args"])
    model = build_model(margs)
    model.load_state_dict(saved["model"])
    example = synthetic_batch(margs, 0, 1)[0]
    return Predictor(model.to(device).eval(), torch.device(device), tuple(example.shape[1:]), example.dtype)
