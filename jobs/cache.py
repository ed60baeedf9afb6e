"""smjobs' cache folder: what is kept between commands so that the next one starts sooner (isolated environments of
local runs, the service-model shapes validation reads). Everything here can be deleted at any time; it is rebuilt.

``$SMJOBS_CACHE_DIR``, else ``$XDG_CACHE_HOME/smjobs``, else ``~/.cache/smjobs``.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path


def cache_dir() -> Path:
    configured = os.environ.get("SMJOBS_CACHE_DIR")
    if configured:
        return Path(configured)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "smjobs"


def read_json(path: Path, key: str) -> object | None:
    """The value stored at ``path`` under ``key``, or None when the file is missing, unreadable or of another key."""
    try:
        stored = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return stored.get("value") if isinstance(stored, dict) and stored.get("key") == key else None


def write_json(path: Path, key: str, value: object) -> None:
    """Store ``value`` at ``path`` under ``key``, atomically (a reader sees the old file or the new one); a cache that
    cannot be written (a read-only home) is skipped."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=path.parent, suffix=".tmp", delete=False) as out:
            json.dump({"key": key, "value": value}, out)
        os.replace(out.name, path)
    except OSError:
        pass
