"""Where each submitted job went (region, endpoint), so that ``status``, ``logs``, ``stop`` and ``cost`` of that job
need no flags again.

One small JSON file per job under ``$SMJOBS_STATE_DIR`` (default ``$XDG_STATE_HOME/smjobs/jobs``, i.e.
``~/.local/state/smjobs/jobs``). It holds no credentials. An explicit ``--region`` or ``--endpoint-url`` wins.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True)
class JobRecord:
    name: str
    kind: str
    """"training", "transform" or "tuning"."""
    region: str
    endpoint_url: str | None = None
    submitted: str = ""
    estimated_usd: float | None = None


def state_dir() -> Path:
    if os.environ.get("SMJOBS_STATE_DIR"):
        return Path(os.environ["SMJOBS_STATE_DIR"])
    base = os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state"
    return Path(base) / "smjobs" / "jobs"


def _path(name: str) -> Path:
    return state_dir() / f"{re.sub(r'[^A-Za-z0-9-]', '_', name)}.json"


def remember(name: str, kind: str, region: str, endpoint_url: str | None, estimated_usd: float | None = None) -> JobRecord:
    record = JobRecord(name, kind, region, endpoint_url,
                       _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), estimated_usd)
    try:
        path = _path(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(record), indent=2))
    except OSError:  # a read-only home must not fail a submission that already happened
        pass
    return record


def recall(name: str) -> JobRecord | None:
    try:
        return JobRecord(**json.loads(_path(name).read_text()))
    except (OSError, ValueError, TypeError):
        return None


def where(name: str, region: str | None, endpoint_url: str | None) -> tuple[str | None, str | None]:
    """(region, endpoint) for a command on job ``name``: the flags when given, else what submit used."""
    record = recall(name)
    if record is None:
        return region, endpoint_url
    return region or record.region, endpoint_url or record.endpoint_url
