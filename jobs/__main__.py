"""The ``smjobs`` console script and ``python -m smjobs``: the command line, with its stop handled from the first
instruction.

A command may wait on AWS or on a local run's start-up. SIGINT and SIGTERM are turned into ``errors.Stopped`` before anything else is imported,
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
    try:
        _command()
    except SystemExit as done:
        _exit(done.code)
    _exit(0)


def _exit(code: object) -> None:
    """End the command without the interpreter's teardown. Freeing every module of a command (pydantic's schemas,
    rich, the service model's shapes) takes a tenth of a second after the last line is printed, for nothing: the
    process ends anyway. The exit handlers still run (logging's flush, temporary folders' clean-up), the output is
    flushed, and a command that leaves a thread of its own running ends the ordinary way, which waits for it."""
    import os
    import threading

    if code is None:
        code = 0
    elif not isinstance(code, int):  # sys.exit("message"), as the interpreter reports it
        print(code, file=sys.stderr)
        code = 1
    if any(t.is_alive() and not t.daemon for t in threading.enumerate() if t is not threading.main_thread()):
        sys.exit(code)
    import atexit

    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a reader that went away (`smjobs list | head`): nothing left to tell it
            pass
    os._exit(code)


def _command() -> None:
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
