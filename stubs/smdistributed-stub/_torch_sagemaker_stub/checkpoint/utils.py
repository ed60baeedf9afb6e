"""``limit_num_subdirs``: keep the newest checkpoint directories, as AWS's example scripts do after each save."""

from __future__ import annotations

import re
import shutil
from pathlib import Path


def _last_int(path: Path) -> int:
    numbers = re.findall(r"\d+", path.name)
    return int(numbers[-1]) if numbers else -1


SORT_BY_LAST_INT = _last_int
"""Sort key: the last integer in a directory's name (``gpt-100steps`` -> 100)."""


def limit_num_subdirs(path, num_kept: int, sort_fn=None, regex=None, log: bool = True) -> list[str]:
    """Delete all but the ``num_kept`` last subdirectories of ``path`` (by ``sort_fn``, else by name) whose names
    match ``regex``; return the deleted ones. A ``num_kept`` below 1 keeps everything."""
    root = Path(path)
    if num_kept < 1 or not root.is_dir():
        return []
    pattern = re.compile(regex) if regex else None
    subdirs = [p for p in root.iterdir() if p.is_dir() and (pattern is None or pattern.search(p.name))]
    subdirs.sort(key=sort_fn or (lambda p: p.name))
    removed = subdirs[:-num_kept]
    for old in removed:
        shutil.rmtree(old, ignore_errors=True)
        if log:
            print(f"tsm checkpoint: removed {old}", flush=True)
    return [str(p) for p in removed]
