"""The ``smjobs`` console script and ``python -m smjobs``: the command line, with its stop handled from the first
instruction.

Importing the command line (typer, rich, every command) takes most of a second, and a command may then wait on AWS
or on a local run's start-up. SIGINT and SIGTERM are turned into ``errors.Stopped`` before anything else is imported,
so a stop at any moment ends the command with one line saying what was stopped and the shell's code for the signal
(130, 143), never a silent death or a traceback. A local run installs its own handlers while its processes live
(``smjobs.local.stop``), which stop the run's ranks first.
"""

from __future__ import annotations

import signal
import sys


def _stop(signum: int, _frame) -> None:
    from smjobs.errors import Stopped

    raise Stopped(signum)


def main() -> None:
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _stop)
    from smjobs.errors import Stopped

    command = next((arg for arg in sys.argv[1:] if not arg.startswith("-")), "")
    try:
        from smjobs.cli import main as cli_main

        cli_main()
    except Stopped as stop:
        # a second signal while this line is written is ignored: it must not end in a traceback
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print(f"smjobs{' ' + command if command else ''}: stopped by {stop.signal_name} before it finished",
              file=sys.stderr, flush=True)
        sys.exit(stop.exit_code)


if __name__ == "__main__":
    main()
