"""Local data-parallel throughput, measured side by side in one run.

1. Scaling: samples/s of 2 processes vs 1 process (torchrun, gloo, one thread per process) on a
   compute-bound MLP. Target: >= 1.9x.
2. Overhead: smjobs' training loop (``train()`` of entry_points/train.py) vs a bare PyTorch loop on the same
   model, data and optimizer, alternating in one single-threaded process after a discarded warm-up round.
   Target: <= 2%.

Runs alternate (A, B, A, B, ...) so that machine noise hits both sides alike; each figure is the median of
the steady-state windows (the first logged window, with start-up, is dropped), then of the rounds.

    python benchmarks/ddp_local.py [--repeats 3] [--steps 12] [--log_every 3]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from smjobs.local.runner import free_port  # noqa: E402

TRAIN = ROOT / "entry_points" / "train.py"
BATCH = 8192  # large enough that compute, not the gradient all-reduce, sets the pace
MODEL = ["--model", "mlp", "--in_features", "512", "--hidden_sizes", "[1024,1024,1024]",
         "--global_batch_size", str(BATCH), "--lr", "0.0001", "--optimizer", '{"name":"adamw"}']
RATE = re.compile(r"samples_per_s=([0-9.]+)")


def single_thread_env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def steady_rate(output: str) -> float:
    rates = [float(r) for r in RATE.findall(output)]
    if len(rates) < 2:
        raise RuntimeError(f"too few measurements in:\n{output[-2000:]}")
    return statistics.median(rates[1:])


def run_train(processes: int, steps: int, log_every: int) -> float:
    """train.py under torchrun with ``processes`` single-threaded processes; steady samples/s."""
    torchrun = Path(sys.executable).parent / "torchrun"
    with tempfile.TemporaryDirectory() as work:
        cmd = [str(torchrun), "--master_addr", "127.0.0.1", "--master_port", str(free_port()), "--nproc_per_node", str(processes), str(TRAIN), *MODEL, "--steps", str(steps),
               "--log_every", str(log_every), "--parallel", "ddp" if processes > 1 else "none"]
        done = subprocess.run(cmd, capture_output=True, text=True, cwd=work,
                              env={**single_thread_env(), "SAGEMAKER_BASE_DIR": work})
    if done.returncode:
        raise RuntimeError(done.stderr[-3000:])
    return steady_rate(done.stdout)


def run_overhead(repeats: int, steps: int, log_every: int) -> tuple[list[float], list[float]]:
    done = subprocess.run([sys.executable, __file__, "--overhead", "--repeats", str(repeats), "--steps", str(steps),
                           "--log_every", str(log_every)], capture_output=True, text=True, env=single_thread_env())
    if done.returncode:
        raise RuntimeError(done.stderr[-3000:])
    ours = [float(v) for v in re.findall(r"^ours ([0-9.]+)$", done.stdout, re.MULTILINE)]
    bare = [float(v) for v in re.findall(r"^bare ([0-9.]+)$", done.stdout, re.MULTILINE)]
    return ours, bare


def overhead_rounds(repeats: int, steps: int, log_every: int) -> None:
    """In this process: train.py's train() and a bare loop, alternately; prints one rate per run."""
    sys.path.insert(0, str(ROOT / "entry_points"))
    import torch

    import smjobs_runtime as smr
    import train as smjobs_train
    from common.models import MLP, synthetic_batch

    torch.set_num_threads(1)
    data_args = argparse.Namespace(model="mlp", in_features=512, seed=0)
    with tempfile.TemporaryDirectory() as work:
        os.environ["SAGEMAKER_BASE_DIR"] = work
        for round_ in range(repeats + 1):
            label = "warm-up" if round_ == 0 else ""  # the first round pays for first-touch allocations
            args = smjobs_train.parse_args([*MODEL, "--steps", str(steps), "--log_every", str(log_every), "--parallel", "none"])
            captured = io.StringIO()
            with contextlib.redirect_stdout(captured):
                smjobs_train.train(args, smr.environment())
            print(f"{label or 'ours'} {steady_rate(captured.getvalue()):.1f}", flush=True)

            torch.manual_seed(0)
            model = MLP(512, (1024, 1024, 1024))
            optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
            rates, t0, seen = [], time.perf_counter(), 0
            for step in range(steps):  # the same work with nothing around it: data, forward, backward, step
                x, y = synthetic_batch(data_args, step, BATCH)
                optimizer.zero_grad(set_to_none=True)
                MLP.loss(model(x), y).backward()
                optimizer.step()
                seen += BATCH
                if (step + 1) % log_every == 0:
                    now = time.perf_counter()
                    rates.append(seen / (now - t0))
                    t0, seen = now, 0
            print(f"{label or 'bare'} {statistics.median(rates[1:]):.1f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--log_every", type=int, default=3)
    parser.add_argument("--overhead", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.overhead:
        overhead_rounds(args.repeats, args.steps, args.log_every)
        return

    one, two = [], []
    for i in range(args.repeats):
        one.append(run_train(1, args.steps, args.log_every))
        two.append(run_train(2, args.steps, args.log_every))
        print(f"round {i + 1}: 1 process {one[-1]:.0f}/s, 2 processes {two[-1]:.0f}/s", flush=True)
    ours, bare = run_overhead(2 * args.repeats, args.steps, args.log_every)
    print(f"train.py loop: {', '.join(f'{v:.0f}' for v in ours)} samples/s")
    print(f"bare loop:     {', '.join(f'{v:.0f}' for v in bare)} samples/s")
    m_one, m_two, m_ours, m_bare = (statistics.median(v) for v in (one, two, ours, bare))
    speedup = m_two / m_one
    overhead = 1 - m_ours / m_bare
    print()
    print(f"{'measure':<44}{'value':>12}{'target':>12}")
    print(f"{'samples/s, 1 process (train.py, torchrun)':<44}{m_one:>12.0f}")
    print(f"{'samples/s, 2 processes DDP (train.py)':<44}{m_two:>12.0f}")
    print(f"{'speedup 2 vs 1 process':<44}{speedup:>11.2f}x{'>= 1.90x':>12}")
    print(f"{'samples/s, train.py loop (in process)':<44}{m_ours:>12.0f}")
    print(f"{'samples/s, bare PyTorch loop (in process)':<44}{m_bare:>12.0f}")
    print(f"{'train.py loop overhead vs bare loop':<44}{overhead:>11.1%} {'<= 2%':>11}")
    print(f"\nspeedup {'meets' if speedup >= 1.9 else 'MISSES'} its target; "
          f"overhead {'meets' if overhead <= 0.02 else 'MISSES'} its target")


if __name__ == "__main__":
    main()
