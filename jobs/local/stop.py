"""Stopping a local run's processes: a stop at any moment, and nothing left behind.

A local run is a tree of processes: the container toolkit, then (seconds later, after any ``pip install``) torchrun,
then the ranks, which torchrun starts in sessions of their own (so neither the toolkit's process group nor a signal
to it reaches them). A stop (Ctrl-C, SIGTERM to the runner, a timeout) sends SIGTERM to every descendant of the
toolkit but the launchers, as a spot interruption or StopTrainingJob does, so the ranks save a checkpoint and exit;
the toolkit and torchrun are spared to relay the ranks' last words and end with them. Processes that start after the
stop (the ranks, when it came during start-up) get it as soon as they appear; after a grace period whatever is left
is killed. ``RunProcesses`` remembers every process the run ever had, so that ranks orphaned by a dead torchrun are
still found at the end.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from pathlib import Path

STOP_GRACE_S = 30.0  # like `docker stop`: SIGTERM, then SIGKILL after a grace period
WATCH_INTERVAL_S = 0.1
"""How often a stopping run is checked for new processes."""
SCAN_INTERVAL_S = 0.5
"""How often a running run's processes are listed (each listing reads /proc)."""

_runs: dict[int, RunProcesses] = {}
"""Runs being watched, by the toolkit's PID."""


def _stat(pid: int) -> tuple[int, int] | None:
    """(parent PID, start time in clock ticks) of a live process, or None."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(fields[1]), int(fields[19])  # fields 4 and 22 of /proc/PID/stat


def _tree(root: int) -> dict[int, tuple[int, int]]:
    """Every live descendant of ``root``: PID -> (parent PID, start time; which tells a PID reused later apart)."""
    children: dict[int, list[tuple[int, int]]] = {}
    for entry in Path("/proc").glob("[0-9]*"):
        stat = _stat(int(entry.name))
        if stat is not None:
            children.setdefault(stat[0], []).append((int(entry.name), stat[1]))
    found, todo = {}, [root]
    while todo:
        parent = todo.pop()
        for pid, started in children.get(parent, []):
            found[pid] = (parent, started)
            todo.append(pid)
    return found


def descendants(root: int) -> dict[int, int]:
    """Every live descendant of ``root``: PID -> start time."""
    return {pid: started for pid, (_parent, started) in _tree(root).items()}


def rank_pid(root: int, rank: int) -> int | None:
    """The PID of training rank ``rank`` below ``root`` (the launcher sets RANK and LOCAL_RANK in its environment)."""
    for pid in descendants(root):
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"RANK={rank}".encode() in environ and f"LOCAL_RANK={rank}".encode() in environ:
            return pid
    return None


LAUNCHERS = (b"torchrun", b"torch.distributed.run", b"mpirun", b"orted")


def _is_launcher(pid: int) -> bool:
    """torchrun (or mpirun): spared, as the toolkit is. Its ranks stop on their own SIGTERM, and torchrun then ends
    with them; signalled itself, torchrun would turn the stop into a failure of its own."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return any(name in cmdline for name in LAUNCHERS)


def _ranks(tree: dict[int, tuple[int, int]]) -> list[int]:
    """The processes a launcher started (the ranks and what they start): the ones that can save a checkpoint."""
    launchers = {pid for pid in tree if _is_launcher(pid)}
    ranks = []
    for pid in tree:
        parent = tree[pid][0]
        while parent in tree and parent not in launchers:
            parent = tree[parent][0]
        if parent in launchers and pid not in launchers:
            ranks.append(pid)
    return ranks


class RunProcesses:
    """The processes of one run (the toolkit ``proc`` and everything below it): stop them, and end them all."""

    def __init__(self, proc: subprocess.Popen):
        self.proc = proc
        self.seen: dict[int, int] = {}
        """Every descendant ever seen: PID -> start time."""
        self.signaled: set[int] = set()
        self.ranks_started = False
        """A launcher has started the ranks (seen by the watch, or at the stop)."""
        self.whole_tree = False
        """The stop came before the ranks started: every process of the run is stopped, launchers included."""
        self.stop_requested_at: float | None = None
        self._lock = threading.Lock()

    def refresh(self) -> dict[int, tuple[int, int]]:
        """The run's live processes (PID -> parent, start time), remembered in ``seen``."""
        with self._lock:
            now = _tree(self.proc.pid)
            self.seen.update({pid: started for pid, (_parent, started) in now.items()})
            return now

    def interrupt(self) -> None:
        """SIGTERM to every descendant but the launchers, now; the watch repeats it for processes that start later.
        Before any rank exists (the toolkit starting, a pip install, torchrun's rendezvous) nothing can save a
        checkpoint: then the whole tree, toolkit and launchers too, is stopped at once, not after the ranks' start-up."""
        tree = self.refresh()
        if self.stop_requested_at is None:
            self.stop_requested_at = time.monotonic()
            self.ranks_started = self.ranks_started or bool(_ranks(tree))
            self.whole_tree = not self.ranks_started
        for pid in [self.proc.pid, *tree] if self.whole_tree else tree:
            if pid not in self.signaled and (self.whole_tree or not _is_launcher(pid)):
                self.signaled.add(pid)
                _kill(pid, signal.SIGTERM)

    def alive(self) -> list[int]:
        """Processes of the run still alive (the same processes: a reused PID has another start time)."""
        pids = [self.proc.pid] if self.proc.poll() is None else []
        return pids + [pid for pid, started in list(self.seen.items()) if (_stat(pid) or (0, None))[1] == started]

    def end(self, grace_s: float = STOP_GRACE_S) -> None:
        """Make sure no process of the run is left: SIGTERM to all, then SIGKILL after ``grace_s``."""
        self.refresh()
        left = self.alive()
        for pid in left:
            _kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        while left and time.monotonic() < deadline:
            time.sleep(0.05)
            left = self.alive()
        for pid in left:
            _kill(pid, signal.SIGKILL)


def interrupt(toolkit: subprocess.Popen) -> None:
    """Stop the watched run whose toolkit is ``toolkit`` as a spot interruption does (see ``RunProcesses.interrupt``)."""
    _runs[toolkit.pid].interrupt()


def _kill(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


class StopWatch:
    """While a run lives: Ctrl-C and SIGTERM to this process stop it (installed before the run starts, so no moment
    is missed); a stopped run's late-starting processes are stopped too, and those that ignore the stop are killed
    after the grace period."""

    def __init__(self, grace_s: float = STOP_GRACE_S):
        self.run: RunProcesses | None = None
        self.signal: int | None = None
        self.grace_s = grace_s
        self._previous: dict[int, object] = {}
        self._done = threading.Event()
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.getsignal(sig)
                signal.signal(sig, self._on_signal)

    def _on_signal(self, signum, _frame) -> None:
        self.signal = signum
        if self.run is not None:
            self.run.interrupt()

    def attach(self, proc: subprocess.Popen) -> RunProcesses:
        """Watch ``proc`` (the toolkit) and what it starts."""
        self.run = _runs[proc.pid] = RunProcesses(proc)
        if self.signal is not None:
            self.run.interrupt()  # the signal came while the toolkit was being started
        threading.Thread(target=self._watch, name="smjobs-stop-watch", daemon=True).start()
        return self.run

    def _watch(self) -> None:
        run, last_scan = self.run, 0.0
        while not self._done.wait(WATCH_INTERVAL_S) and run is not None and run.proc.poll() is None:
            if run.stop_requested_at is None:
                if time.monotonic() - last_scan >= SCAN_INTERVAL_S:
                    # remember the ranks while torchrun lives: they are found even if it dies first
                    run.ranks_started = run.ranks_started or bool(_ranks(run.refresh()))
                    last_scan = time.monotonic()
                continue
            run.interrupt()
            if time.monotonic() - run.stop_requested_at > self.grace_s:  # something ignores SIGTERM
                for pid in run.alive():
                    _kill(pid, signal.SIGKILL)

    def close(self) -> None:
        self._done.set()
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        if self.run is not None:
            _runs.pop(self.run.proc.pid, None)
