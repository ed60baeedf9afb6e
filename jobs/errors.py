"""The one error type validation raises (every problem found in a spec, each with its field path and fix), and the
stop that Ctrl-C or SIGTERM raises in the command line."""

from __future__ import annotations

import signal
from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a spec."""

    path: str
    """Dotted field path inside the spec, e.g. ``compute.instance_type`` or ``inputs.train.uri``."""
    message: str
    """What is wrong, with the offending value."""
    fix: str = ""
    """What to change; rendered after "To fix:"."""

    def render(self) -> str:
        text = f"{self.path or '<spec>'}: {self.message}"
        return f"{text} To fix: {self.fix}" if self.fix else text


class SpecError(ValueError):
    """A spec (or the request built from it) has one or more problems. Nothing was sent to AWS."""

    def __init__(self, problems: list[Problem]):
        self.problems = list(problems)
        count = len(self.problems)
        lines = [f"{count} problem{'s' if count != 1 else ''} in the job spec:"]
        lines += [f"  - {p.render()}" for p in self.problems]
        super().__init__("\n".join(lines))

    def paths(self) -> list[str]:
        return [p.path for p in self.problems]


class Stopped(BaseException):
    """SIGINT (Ctrl-C) or SIGTERM reached the command line outside a run that handles it: raised by the handler
    ``smjobs.__main__`` installs as its first instruction. A BaseException, as KeyboardInterrupt is, so that no
    ``except Exception`` swallows it; click's own Ctrl-C handling ("Aborted!", exit 1) never sees it."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum

    @property
    def signal_name(self) -> str:
        return signal.Signals(self.signum).name

    @property
    def exit_code(self) -> int:
        """128 + the signal, as a shell reports a process the signal ended: 130 for SIGINT, 143 for SIGTERM."""
        return 128 + self.signum


class UsageError(ValueError):
    """Input that is not a spec problem: a missing file, a malformed ``--set``."""
