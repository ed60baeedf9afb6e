"""What a local run costs over bare torchrun, measured side by side in one run.

A: ``smjobs run <example> --processes N --quiet`` (the ``/opt/ml`` tree, the config files, SageMaker's container
toolkit starting torchrun with the ``SM_*`` environment); B: bare ``torchrun --nproc_per_node N`` of the same
script with the same arguments, taken from the toolkit's own mapping of the job's hyperparameters, in a copy of
the same code folder. Runs alternate (A, B, A, B, ...) after one discarded warm-up pair, so that machine noise hits
both alike; each figure is a whole-process median. Target: A / B <= 1.25x.

    python benchmarks/local_overhead.py [--example ddp_mlp] [--processes 2] [--steps 20] [--repeats 5]
    python benchmarks/local_overhead.py --stages   # one smjobs run, where its time goes, by the log's timestamps
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
TARGET = 1.25

# the stages of a local run, each ending at the first log line that matches (in order)
STAGES = [
    ("smjobs: start-up, validation, the /opt/ml tree", "local run of "),
    ("toolkit: start-up and imports", "Imported framework"),
    ("toolkit: environment, until it starts torchrun", "Invoking script with the following command"),
    ("torchrun: start-up until the first rank's line", "[rank 0]"),
    ("training, until the model is saved", "saved model"),
    ("ranks' and torchrun's exit, toolkit's report", "Reporting training SUCCESS"),
    ("smjobs: summary and exit", None),
]


def smjobs_cmd(example: str, processes: int, steps: int, work: Path) -> list[str]:
    return [str(BIN / "smjobs"), "run", example, "--processes", str(processes), "--set", f"steps={steps}",
            "--work-dir", str(work), "--quiet"]


def bare_cmd(work: Path, processes: int) -> list[str]:
    """torchrun of the job's script with the arguments the toolkit passes (its own mapping of the hyperparameters
    the smjobs run wrote into the work dir)."""
    from sagemaker_training import mapping

    raw = json.loads((work / "input" / "config" / "hyperparameters.json").read_text())
    entry = json.loads(raw["sagemaker_program"])
    hyperparameters = {k: json.loads(v) for k, v in raw.items() if not k.startswith("sagemaker_")}
    return [str(BIN / "torchrun"), "--nnodes", "1", "--nproc_per_node", str(processes), entry,
            *mapping.to_cmd_args(hyperparameters)]


def timed(cmd: list[str], cwd: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return elapsed


def stages(example: str, processes: int, steps: int) -> None:
    """One run, its log timestamped as it arrives, cut into STAGES."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = smjobs_cmd(example, processes, steps, Path(tmp) / "work")[:-1]  # not quiet: the log marks the stages
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
        marks, index = [], 0
        for line in proc.stdout:
            while index < len(STAGES) - 1 and STAGES[index][1] in line:
                marks.append(time.perf_counter() - start)
                index += 1
        proc.wait()
        marks.append(time.perf_counter() - start)
    if len(marks) != len(STAGES):
        raise RuntimeError(f"the log did not show every stage (reached {STAGES[len(marks) - 1][0]!r})")
    print(f"{'stage':<52}{'s':>7}")
    previous = 0.0
    for (name, _), mark in zip(STAGES, marks, strict=True):
        print(f"{name:<52}{mark - previous:>7.2f}")
        previous = mark
    print(f"{'total':<52}{marks[-1]:>7.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--example", default="ddp_mlp")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--stages", action="store_true", help="one run's time per stage instead of the comparison")
    args = parser.parse_args()
    if args.stages:
        stages(args.example, args.processes, args.steps)
        return

    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    ours, bare = [], []
    with tempfile.TemporaryDirectory() as tmp:
        work, copy = Path(tmp) / "work", Path(tmp) / "bare"
        for round_ in range(args.repeats + 1):  # round 0 warms the page cache for both and is dropped
            a = timed(smjobs_cmd(args.example, args.processes, args.steps, work) + ["--fresh"], ROOT, env)
            if round_ == 0:
                shutil.copytree(work / "code", copy)  # the files the toolkit ran, as the bare run's folder
                cmd = bare_cmd(work, args.processes)
                print("bare:", " ".join(cmd[:6]), "...", flush=True)
            # the bare run's paths (smjobs_runtime's defaults without SM_*) stay inside its copy
            b = timed(cmd, copy, {**env, "SAGEMAKER_BASE_DIR": str(copy / "opt_ml")})
            if round_:
                ours.append(a)
                bare.append(b)
                print(f"round {round_}: smjobs {a:.2f} s, torchrun {b:.2f} s, ratio {a / b:.2f}x", flush=True)
    m_ours, m_bare = statistics.median(ours), statistics.median(bare)
    ratio = m_ours / m_bare
    ratios = sorted(a / b for a, b in zip(ours, bare, strict=True))
    print()
    print(f"{'measure':<46}{'value':>10}{'target':>10}")
    print(f"{'smjobs run, whole process (median s)':<46}{m_ours:>10.2f}")
    print(f"{'bare torchrun, whole process (median s)':<46}{m_bare:>10.2f}")
    print(f"{'ratio of medians':<46}{ratio:>9.2f}x{f'<= {TARGET:.2f}x':>10}")
    print(f"{'per-round ratios, lowest to highest':<46}{', '.join(f'{r:.2f}' for r in ratios):>10}")
    print(f"\nthe ratio {'meets' if ratio <= TARGET else 'MISSES'} its target")


if __name__ == "__main__":
    main()
