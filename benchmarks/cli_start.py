"""How long the command line takes to answer, measured side by side in one run.

Whole-process wall time of ``smjobs --help`` and ``smjobs validate <example>`` (target: <= 0.30 s), beside two
references measured in the same rounds: the interpreter alone (``python -c pass``) and, where the SDK is installed,
``python -c "import sagemaker.pytorch"`` (SDK v2; ``sagemaker.train`` for v3). Commands alternate round by round after one discarded warm-up round, so
that machine noise hits all alike; each figure is the median, with the spread (lowest to highest).

    python benchmarks/cli_start.py [--example ddp_mlp] [--repeats 15]
    python -X importtime -m smjobs validate ddp_mlp 2> imports.txt   # what a command imports, module by module
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

BIN = Path(sys.executable).parent
TARGET_S = 0.30


def timed(cmd: list[str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "COLUMNS": "120"})
    elapsed = time.perf_counter() - start
    if done.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return elapsed


def sdk_module() -> str | None:
    """What a user's notebook imports to train with the installed SDK: v2's estimators, v3's ModelTrainer."""
    if importlib.util.find_spec("sagemaker") is None:
        return None
    return "sagemaker.pytorch" if importlib.util.find_spec("sagemaker.pytorch") else "sagemaker.train"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--example", default="ddp_mlp")
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    commands = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "smjobs --help": [str(BIN / "smjobs"), "--help"],
        f"smjobs validate {args.example}": [str(BIN / "smjobs"), "validate", args.example],
    }
    sdk = sdk_module()
    if sdk:
        commands[f"import {sdk}"] = [sys.executable, "-c", f"import {sdk}"]
    times: dict[str, list[float]] = {name: [] for name in commands}
    for round_ in range(args.repeats + 1):
        for name, cmd in commands.items():
            elapsed = timed(cmd)
            if round_:  # round 0 warms the page cache and the smjobs cache folder
                times[name].append(elapsed)
    print(f"{'command':<34}{'median s':>10}{'spread s':>16}{'target':>10}")
    for name, values in times.items():
        target = f"<= {TARGET_S:.2f}" if name.startswith("smjobs") else ""
        print(f"{name:<34}{statistics.median(values):>10.3f}{f'{min(values):.3f}-{max(values):.3f}':>16}{target:>10}")
    validate = statistics.median(times[f"smjobs validate {args.example}"])
    if sdk:
        print(f"\nvalidate / import {sdk}: {validate / statistics.median(times[f'import {sdk}']):.2f}")
    print(f"validate {'meets' if validate <= TARGET_S else 'MISSES'} its target")


if __name__ == "__main__":
    main()
