"""Inference jobs: a spec with an ``inference`` section runs a trained model over a data set, data-parallel.

``expand`` turns the section into the job fields the rest of smjobs already checks, builds, runs locally and
submits, so an inference job is validated, dry-run, run and submitted exactly as a training job:
- the bundled ``infer.py`` as entry point (unless the spec names its own), under torchrun (``distribution: ddp``
  unless set): one process per GPU, every host;
- a ``data`` channel with the records and a ``model`` channel with the model (a model file's folder, with
  ``model_file`` naming it, or the S3 object itself);
- the section's settings as the script's hyperparameters;
- ``output_path`` as ``checkpoint_s3_uri``: the finished parts are the job's checkpoints, so an interrupted or spot
  job resumes where it stopped, and predictions.jsonl and errors.jsonl land beside them.
A field the section would set that the spec also sets to something else is a problem, named with both paths.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from smjobs.errors import Problem
from smjobs.request import manifests

SCRIPT = "infer.py"
SETTINGS = ("batch_size", "part_records", "max_bad_records", "input_field", "id_field", "model_factory")
MODEL_FILES = (".pt", ".tar.gz")


def _model_channel(uri: str) -> tuple[str, str | None]:
    """(the model channel's URI, the model file's name in it, when the URI names a file). A file is a channel of
    that one file (an S3Prefix of one object, or a local file), so nothing beside it travels."""
    if uri.endswith(MODEL_FILES):
        return uri, uri.rsplit("/", 1)[-1]
    return uri, None


def expand(data: dict[str, Any]) -> tuple[dict[str, Any], list[Problem]]:
    """Spec data with its ``inference`` section turned into entry point, channels, hyperparameters and checkpoint
    location; unchanged without one. Idempotent: expanding expanded data changes nothing."""
    section = data.get("inference")
    if not isinstance(section, dict):
        return data, []
    out, problems = dict(data), []
    out.setdefault("entry_point", SCRIPT)
    out.setdefault("distribution", {"type": "ddp"})
    inputs = dict(out["inputs"]) if isinstance(out.get("inputs"), dict) else {}
    hyperparameters = dict(out["hyperparameters"]) if isinstance(out.get("hyperparameters"), dict) else {}
    channels = {}
    if isinstance(section.get("input"), str):
        channels["data"] = (section["input"], "inference.input")
        if manifests.is_manifest(section["input"]) and isinstance(inputs.get("data", {}), dict):
            inputs["data"] = {**inputs.get("data", {}), "s3_data_type": "ManifestFile"}
    if isinstance(section.get("model"), str):
        model_uri, model_file = _model_channel(section["model"])
        channels["model"] = (model_uri, "inference.model")
        if model_file:
            hyperparameters.setdefault("model_file", model_file)
    for name, (uri, origin) in channels.items():
        existing = inputs.get(name)
        if isinstance(existing, dict) and existing.get("uri") not in (None, uri):
            problems.append(Problem(f"inputs.{name}", f"is {existing.get('uri')!r}, but {origin} makes this channel {uri!r}.",
                                    f"remove inputs.{name}: an inference job's {name} channel comes from {origin}."))
            continue
        inputs[name] = {**(existing or {}), "uri": uri}
    out["inputs"] = inputs
    for key in SETTINGS:
        if section.get(key) is None:  # unset, or null as a dumped section has it
            continue
        if key in hyperparameters and hyperparameters[key] != section[key]:
            problems.append(Problem(f"hyperparameters.{key}", f"is {hyperparameters[key]!r}, but inference.{key} is "
                                    f"{section[key]!r}.", f"set it once, as inference.{key}."))
        hyperparameters[key] = section[key]
    out["hyperparameters"] = hyperparameters
    output = section.get("output_path")
    if isinstance(output, str):
        if out.get("checkpoint_s3_uri") not in (None, output):
            problems.append(Problem("checkpoint_s3_uri", f"is {out['checkpoint_s3_uri']!r}, but an inference job keeps its "
                                    f"parts and predictions at inference.output_path ({output!r}).",
                                    "remove checkpoint_s3_uri."))
        else:
            out["checkpoint_s3_uri"] = output
            if not output.startswith("s3://"):
                problems.append(Problem("inference.output_path", f"is {output!r}; predictions go to S3.",
                                        "give an s3://bucket/prefix (a local run writes them to its work dir)."))
    return out, problems


def count_local_records(folder: str) -> int | None:
    """Records in a local input folder (non-empty lines of JSON Lines files, lines after the header of CSV files),
    or None when it is not a local folder or holds other files (``.pt``) that only loading would count."""
    root = Path(folder)
    if "://" in folder or not root.is_dir():
        return None
    total = 0
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        if path.suffix == ".pt":
            return None
        if path.suffix in (".jsonl", ".csv"):
            with path.open("rb") as f:
                lines = sum(1 for line in f if line.strip())
            total += lines - 1 if path.suffix == ".csv" and lines else lines
    return total



def check(spec) -> list[Problem]:
    """The inference section's own rules: a model factory's module is in the code folder, and its weights are a
    file."""
    section = spec.inference
    if section is None or not section.model_factory or not spec.source_dir:
        return []
    out = []
    module = section.model_factory.split(":", 1)[0]
    root = Path(spec.source_dir)
    relative = Path(*module.split("."))
    if not (root / relative.with_suffix(".py")).is_file() and not (root / relative / "__init__.py").is_file():
        out.append(Problem("inference.model_factory", f"module {module!r} is not in {root} (the code folder).",
                           f"put {relative.with_suffix('.py')} there, or set source_dir to the folder that holds it."))
    if not section.model.endswith(MODEL_FILES):
        out.append(Problem("inference.model", f"is {section.model!r}; with model_factory it is the weights file.",
                           "name the .pt file (a state dict, or {'model': state_dict}) or a model.tar.gz."))
    return out
