"""How long the command line takes to answer, measured side by side in one run.

Whole-process wall time of ``smjobs --help`` and ``smjobs validate <example>`` (target: <= 0.30 s), beside two
references measured in the same rounds: the interpreter alone (``python -c pass``); the floor that the libraries
every command stands on set (typer, which builds its options with pydantic, rich's console, pydantic, PyYAML and
pathspec, imported and nothing else); and, where the SDK is installed, what a notebook imports to train with it
(``from sagemaker.pytorch import PyTorch`` for v2, ``from sagemaker.train import ModelTrainer`` for v3: v3's
``import sagemaker.train`` alone loads nothing). Commands alternate round by round after one discarded warm-up
round, so that machine noise hits all alike; each figure is the median, with the spread (lowest to highest).

Byte-code is written as a user's installation writes it (a wheel's is compiled when pip installs it): the runs
here clear PYTHONDONTWRITEBYTECODE, so that the warm-up round leaves the ``__pycache__`` files every later round
reads instead of compiling smjobs' modules anew in each process.

    python benchmarks/cli_start.py [--example ddp_mlp] [--repeats 15]
    python benchmarks/cli_start.py --importtime [--top 12]   # python -X importtime of both: the top-level imports
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
    env = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
    done = subprocess.run(cmd, capture_output=True, text=True, env={**env, "COLUMNS": "120"})
    elapsed = time.perf_counter() - start
    if done.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return elapsed


# what the command line cannot do without: typer (whose option parsing imports pydantic), rich, PyYAML, pathspec
LIBRARIES = "import typer._adapters, rich.console, pydantic, yaml, pathspec"


def sdk_import() -> str | None:
    """What a user's notebook imports to train with the installed SDK: v2's estimator, v3's ModelTrainer."""
    if importlib.util.find_spec("sagemaker") is None:
        return None
    if importlib.util.find_spec("sagemaker.pytorch"):
        return "from sagemaker.pytorch import PyTorch"
    return "from sagemaker.train import ModelTrainer"


def importtime(args: list[str], top: int) -> list[tuple[str, float]]:
    """``python -X importtime -m smjobs <args>`` (after a run that writes the byte-code): the ``top`` top-level
    imports by cumulative time (ms), and the total of every module's own time under ``"all"``."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
    subprocess.run([str(BIN / "smjobs"), *args], capture_output=True, env=env)
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "smjobs", *args], capture_output=True, text=True,
                          env={**env, "COLUMNS": "120"})
    rows, total = [], 0.0
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        own, cumulative, name = line.removeprefix("import time:").split("|")
        total += int(own) / 1000
        if not name.startswith("  "):  # a top-level import: its time includes what it imports
            rows.append((name.strip(), int(cumulative) / 1000))
    return sorted(rows, key=lambda row: -row[1])[:top] + [("all", total)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--example", default="ddp_mlp")
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--importtime", action="store_true", help="Print python -X importtime's top-level imports of "
                        "--help and validate instead of timing.")
    parser.add_argument("--top", type=int, default=12)
    args = parser.parse_args()
    if args.importtime:
        for cmd in (["--help"], ["validate", args.example]):
            print(f"smjobs {' '.join(cmd)}: top-level imports, cumulative ms (python -X importtime)")
            for name, ms in importtime(cmd, args.top):
                print(f"  {name:<40}{ms:>8.1f}")
        return
    commands = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "smjobs --help": [str(BIN / "smjobs"), "--help"],
        f"smjobs validate {args.example}": [str(BIN / "smjobs"), "validate", args.example],
        "libraries' floor": [sys.executable, "-c", LIBRARIES],
    }
    sdk = sdk_import()
    if sdk:
        commands[sdk] = [sys.executable, "-c", sdk]
    times: dict[str, list[float]] = {name: [] for name in commands}
    for round_ in range(args.repeats + 1):
        for name, cmd in commands.items():
            elapsed = timed(cmd)
            if round_:  # round 0 warms the page cache and the smjobs cache folder
                times[name].append(elapsed)
    print(f"{'command':<42}{'median s':>10}{'spread s':>16}{'target':>10}")
    for name, values in times.items():
        target = f"<= {TARGET_S:.2f}" if name.startswith("smjobs") else ""
        print(f"{name:<42}{statistics.median(values):>10.3f}{f'{min(values):.3f}-{max(values):.3f}':>16}{target:>10}")
    validate = statistics.median(times[f"smjobs validate {args.example}"])
    floor = statistics.median(times["libraries' floor"])
    print(f"\nlibraries' floor: {LIBRARIES}")
    print(f"validate over the floor: {validate - floor:.3f} s (smjobs' own modules and the work)")
    if sdk:
        print(f"validate / {sdk}: {validate / statistics.median(times[sdk]):.2f}")
    print(f"validate {'meets' if validate <= TARGET_S else 'MISSES'} its target")


if __name__ == "__main__":
    main()
