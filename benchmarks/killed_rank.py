"""How fast a local run ends after one of its ranks is killed with SIGKILL (target: within 3 s on an idle 2-core
machine).

A 2-process DDP run of the bundled train.py (a tiny MLP, one log line per step) is started through smjobs' local
runner, as ``smjobs run`` starts it; at step 3 rank 1 is killed with ``kill -9``. Each figure is the time from the
kill to: the surviving rank's exit (torchrun's failure report), the container toolkit's own report, and the runner's
return with every process of the run gone. A warm-up run is discarded; the medians of the rest are printed.

    python benchmarks/killed_rank.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from smjobs.checks.validate import validate_spec  # noqa: E402
from smjobs.local import runner  # noqa: E402
from smjobs.local.stop import rank_pid  # noqa: E402
from smjobs.request.training import build_request  # noqa: E402

SPEC = {"name": "killed-rank", "entry_point": "train.py", "compute": {"instance_type": "ml.g5.12xlarge"},
        "hyperparameters": {"model": "mlp", "hidden_sizes": [16, 16], "global_batch_size": 8, "steps": 100000,
                            "log_every": 1}}
TORCHRUN_REPORT = "Root Cause (first observed failure)"
TOOLKIT_REPORT = "Reporting training FAILURE"


def one_run(work_dir: Path) -> dict[str, float]:
    """Seconds from the kill to each stage of the run's end."""
    shutil.rmtree(work_dir, ignore_errors=True)
    request = build_request(validate_spec(SPEC), job_name="killed-rank")
    state: dict = {}

    def on_line(line: str) -> None:
        now = time.monotonic()
        if "killed_at" not in state and line.startswith("[default0]:step=3 "):
            pid = rank_pid(state["proc"].pid, 1)
            if pid is not None:
                state["killed_at"] = time.monotonic()
                os.kill(pid, 9)
        elif "killed_at" in state:
            if TORCHRUN_REPORT in line:
                state.setdefault("torchrun", now - state["killed_at"])
            elif TOOLKIT_REPORT in line:
                state.setdefault("toolkit", now - state["killed_at"])

    result = runner.launch(request, runner.prepare(request, work_dir, 2), on_line=on_line,
                           on_start=lambda proc: state.update(proc=proc))
    ended = time.monotonic() - state["killed_at"]
    if result.root_cause is None or result.root_cause.signal_name != "SIGKILL":
        raise SystemExit("the run did not end with the killed rank as its root cause:\n" + "\n".join(result.lines[-20:]))
    return {"torchrun": state.get("torchrun", float("nan")), "toolkit": state.get("toolkit", float("nan")), "ended": ended}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        one_run(Path(tmp) / "warm-up")
        runs = [one_run(Path(tmp) / f"run-{i}") for i in range(args.repeats)]
    print(f"rank 1 killed with SIGKILL at step 3 of a 2-process DDP run; {args.repeats} runs after a warm-up")
    for key, what in (("torchrun", "torchrun reports the root cause"), ("toolkit", "the container toolkit reports"),
                      ("ended", "the run has ended (every process gone)")):
        values = [run[key] for run in runs]
        print(f"  {what:<42} median {statistics.median(values):5.2f} s   (min {min(values):.2f}, max {max(values):.2f})")
    median = statistics.median(run["ended"] for run in runs)
    print(f"target: the run ends within 3 s -> {'met' if median <= 3 else 'NOT met'} ({median:.2f} s)")


if __name__ == "__main__":
    main()
