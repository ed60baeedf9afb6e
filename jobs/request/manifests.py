"""Manifest files: a channel's data named file by file instead of by prefix (SageMaker's ``ManifestFile`` type).

A manifest is a JSON array whose first element is ``{"prefix": P}`` and whose other elements are keys under P:
``[{"prefix": "s3://bucket/scores/"}, "2026/11/a.jsonl", "2026/11/b.jsonl"]``. SageMaker copies each object to
``/opt/ml/input/data/<channel>/<key>``. In S3 a manifest is handed to SageMaker as it is. A local manifest names
local files (its prefix is a folder, relative to the manifest file): a local run lays the same files out under the
channel folder, and ``submit`` uploads them as an ordinary prefix, so the job sees the same tree either way.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from smjobs.errors import Problem

SUFFIX = ".manifest"


class ManifestError(ValueError):
    """A manifest that cannot be read, or names files that are not there."""


def is_manifest(uri: str) -> bool:
    return uri.endswith(SUFFIX)


def _read(path: Path) -> tuple[Path, list[str]]:
    """(the prefix folder, the keys) of a local manifest."""
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ManifestError(f"{path} cannot be read as JSON: {exc}") from None
    if not (isinstance(data, list) and data and isinstance(data[0], dict) and isinstance(data[0].get("prefix"), str)
            and all(isinstance(k, str) for k in data[1:])):
        raise ManifestError(f"{path} is not a manifest: expected [{{\"prefix\": folder}}, \"key\", ...]")
    prefix = data[0]["prefix"]
    if "://" in prefix:
        raise ManifestError(f"{path} is a local manifest, but its prefix {prefix!r} is remote: put it in S3 and "
                            "give its s3:// URI, or make the prefix a local folder")
    return (path.parent / prefix).resolve(), data[1:]


def prefix_folder(path: str | Path) -> Path:
    """The folder a local manifest's keys are under."""
    return _read(Path(path))[0]


def local_entries(path: str | Path) -> list[tuple[str, Path]]:
    """(key, local file) of every entry of a local manifest, in its order."""
    path = Path(path)
    folder, keys = _read(path)
    entries, missing, seen = [], [], set()
    for key in keys:
        if key.startswith("/") or ".." in Path(key).parts:
            raise ManifestError(f"{path}: key {key!r} must be a path under the prefix")
        if key in seen:
            raise ManifestError(f"{path}: key {key!r} is listed twice (its records would be read twice)")
        seen.add(key)
        if not (folder / key).is_file():
            missing.append(key)
        entries.append((key, folder / key))
    if missing:
        raise ManifestError(f"{path}: {len(missing)} listed file(s) do not exist under {folder}: "
                            f"{', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''}")
    if not entries:
        raise ManifestError(f"{path} lists no files")
    return entries


def problems(field: str, uri: str) -> list[Problem]:
    """What is wrong with a local manifest (an S3 one is only read by SageMaker)."""
    if "://" in uri or not is_manifest(uri):
        return []
    if not Path(uri).is_file():
        return [Problem(field, f"manifest {uri!r} does not exist.", "fix the path (relative to the spec file).")]
    try:
        local_entries(uri)
    except ManifestError as exc:
        return [Problem(field, f"{exc}.", "fix the manifest: SageMaker's format is [{\"prefix\": P}, \"key\", ...].")]
    return []


def materialize(path: str | Path, destination: Path, *, link: bool = True) -> Path:
    """The manifest's files laid out under ``destination`` by key (symbolic links, or copies with ``link=False``)."""
    destination = Path(destination)
    destination.mkdir(parents=True, exist_ok=True)
    for key, origin in local_entries(path):
        target = destination / key
        target.parent.mkdir(parents=True, exist_ok=True)
        if link:
            target.symlink_to(origin)
        else:
            shutil.copyfile(origin, target)
    return destination
