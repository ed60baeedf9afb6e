"""Which rank failed first in a local run, and how: read from torchrun's own failure summary in the log.

When one rank dies, the others fail next (a peer's "Connection reset by peer"), and their tracebacks fill the
failure file; the cause is the first failure. torchrun records it in its "Root Cause (first observed failure)"
block: the rank, its exit code or signal and its PID. ``root_cause`` reads that block; ``describe`` words it with
the rank's last lines of output, which the local runner puts first in ``output/failure``.
"""

from __future__ import annotations

import re
import signal
from dataclasses import dataclass
from pathlib import Path

_FIELD = re.compile(r"^\s*(rank|exitcode)\s*:\s*(.*)$")
_RANK = re.compile(r"(\d+)")
_EXIT = re.compile(r"(-?\d+)(?:\s*\(pid:\s*(\d+)\))?")
_RANK_LINE = re.compile(r"^\[default(\d+)\]:(.*)$")


@dataclass(frozen=True)
class RootCause:
    rank: int
    exit_code: int
    """The process's exit code; negative: killed by that signal."""
    pid: int | None = None

    @property
    def signal_name(self) -> str | None:
        if self.exit_code >= 0:
            return None
        try:
            return signal.Signals(-self.exit_code).name
        except ValueError:
            return f"signal {-self.exit_code}"


def root_cause(lines: list[str]) -> RootCause | None:
    """torchrun's first observed failure, or None when the log has none."""
    start = next((i for i, line in enumerate(lines) if line.startswith("Root Cause (first observed failure)")), None)
    if start is None:
        return None
    fields: dict[str, str] = {}
    for line in lines[start + 1:start + 12]:
        match = _FIELD.match(line)
        if match:
            fields.setdefault(match.group(1), match.group(2))
    rank, code = _RANK.match(fields.get("rank", "")), _EXIT.match(fields.get("exitcode", ""))
    if not rank or not code:
        return None
    return RootCause(int(rank.group(1)), int(code.group(1)), int(code.group(2)) if code.group(2) else None)


OOM_COUNTERS = (
    (Path("/sys/fs/cgroup/memory.events"), "oom_kill"),  # cgroup v2: this container's
    (Path("/sys/fs/cgroup/memory/memory.oom_control"), "oom_kill"),  # cgroup v1
    (Path("/proc/vmstat"), "oom_kill"),  # the whole machine's (Linux 4.13+)
)


def oom_kills() -> dict[str, int]:
    """The kernel's counts of processes its out-of-memory killer ended, by where they were read (empty: unknown)."""
    counts = {}
    for path, key in OOM_COUNTERS:
        try:
            for line in path.read_text().splitlines():
                name, _, value = line.partition(" ")
                if name == key:
                    counts[str(path)] = int(value)
        except (OSError, ValueError):
            continue
    return counts


def oom_killed_since(before: dict[str, int]) -> bool | None:
    """Whether the out-of-memory killer ended a process since ``before`` (``oom_kills()``); None: cannot tell."""
    after = oom_kills()
    common = before.keys() & after.keys()
    if not common:
        return None
    return any(after[key] > before[key] for key in common)


def describe(cause: RootCause, lines: list[str], tail: int = 10, oom_killed: bool | None = None) -> str:
    """"rank 1 (pid 4242) was killed by SIGKILL ..." with that rank's last lines of output. ``oom_killed``: whether
    the kernel's out-of-memory killer ended a process during the run (None: unknown)."""
    who = f"rank {cause.rank}" + (f" (pid {cause.pid})" if cause.pid else "")
    if cause.signal_name == "SIGKILL" and oom_killed:
        how = ("was killed by the kernel's out-of-memory killer: this machine ran out of memory (fewer --processes or a "
               "smaller model with --set make room)")
    elif cause.signal_name == "SIGKILL" and oom_killed is False:
        how = "was killed by SIGKILL, not by the out-of-memory killer: by hand or by another program"
    elif cause.signal_name == "SIGKILL":
        how = ("was killed by SIGKILL: by hand, or by the kernel's out-of-memory killer when this machine ran out of "
               "memory (fewer --processes or a smaller model with --set make room)")
    elif cause.signal_name:
        how = f"was killed by {cause.signal_name}"
    else:
        how = f"exited with code {cause.exit_code}"
    own = [m.group(2) for m in map(_RANK_LINE.match, lines) if m and int(m.group(1)) == cause.rank]
    text = f"first failure: {who} {how}.\n"
    if own:
        text += f"last lines of rank {cause.rank}:\n" + "\n".join(f"  {line}" for line in own[-tail:]) + "\n"
    return text


_TOOLKIT_EXIT = re.compile(r"^ExitCode\s+(-?\d+)\s*$", re.M)


def launcher_ended(failure: str) -> str | None:
    """When no rank reported a failure but the container toolkit did ("ExecuteUserScriptError ... ExitCode -9"): how
    the launcher (torchrun or mpirun) itself ended, e.g. "the launcher was killed by SIGKILL"; None otherwise."""
    match = _TOOLKIT_EXIT.search(failure)
    if match is None:
        return None
    code = int(match.group(1))
    if code < 0:
        try:
            return f"the launcher (torchrun or mpirun) was killed by {signal.Signals(-code).name}; no rank reported a failure"
        except ValueError:
            pass
    return f"the launcher (torchrun or mpirun) exited with code {code}"
