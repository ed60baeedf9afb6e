"""Pipelined schedules vs the naive vertical split, measured side by side in one run.

Two local processes (torchrun, gloo, one thread each) train the same compute-bound MLP with large
micro-batches: first split naively (train_naive_mp.py: one rank computes while the other waits), then with
every torch.distributed.pipelining schedule (train_pipeline.py). For each schedule it prints samples/s, the
speedup over naive and the share of the ideal speedup p x (1 - the timeline model's bubble) reached (p*m/(m+p-1)
for GPipe and 1F1B), and the measured bubble
1 - (t_naive / p) / t_schedule (naive's step time over p is one rank's compute) next to the timeline
model's. Rounds alternate naive and the schedules; a run's rate is the median over its steps after the first, and
each figure the median over rounds, with the spread of the share of ideal: each round's schedule against the same
round's naive split. (On a 2-core VM one run's steps vary by up to a third, and a whole run by a fifth: two
compute processes and gloo's transport threads share two cores, so a single round decides nothing.)

    python benchmarks/pipeline_vs_naive.py [--repeats 3] [--steps 8] [--microbatches 4] [--microbatch_size 512]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from smjobs.local.runner import free_port  # noqa: E402
from smjobs.schedules.model import simulate, theoretical_bubble  # noqa: E402

P = 2
# Four equal 1536 x 1536 layers between a narrow input layer and the output layer: every split into 2 or 4 stages
# does equal work in training. (With a wide first layer, the first stage skips that layer's input gradient, so its
# ranks do 3 of the 7 large backward products and wait for the others: the equal-work ideal below is then out of
# reach for every schedule, whatever its bubble.)
MODEL = ["--model", "mlp", "--in_features", "32", "--hidden_sizes", "[1536,1536,1536,1536,1536]", "--optimizer",
         '{"name":"sgd"}', "--lr", "0.0001", "--log_every", "1"]
SCHEDULES = [("GPipe", 1), ("1F1B", 1), ("Interleaved1F1B", 2), ("LoopedBFS", 2), ("InterleavedZeroBubble", 2),
             ("ZBVZeroBubble", 2), ("DualPipeV", 2)]
RATE = re.compile(r"samples_per_s=([0-9.]+)")


def run(script: str, args: list[str]) -> float:
    torchrun = Path(sys.executable).parent / "torchrun"
    with tempfile.TemporaryDirectory() as work:
        env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "SAGEMAKER_BASE_DIR": work}
        done = subprocess.run([str(torchrun), "--master_addr", "127.0.0.1", "--master_port", str(free_port()), "--nproc_per_node", str(P), str(ROOT / "entry_points" / script), *args],
                              capture_output=True, text=True, env=env, cwd=work)
    if done.returncode:
        raise RuntimeError(done.stderr[-3000:])
    rates = [float(r) for r in RATE.findall(done.stdout)]
    return statistics.median(rates[1:])  # the first step pays for start-up


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--microbatches", type=int, default=4)
    parser.add_argument("--microbatch_size", type=int, default=512)
    args = parser.parse_args()
    m = args.microbatches
    common = [*MODEL, "--steps", str(args.steps), "--global_batch_size", str(m * args.microbatch_size)]
    naive, piped = [], {name: [] for name, _ in SCHEDULES}
    for i in range(args.repeats):
        naive.append(run("train_naive_mp.py", common))
        for name, v in SCHEDULES:
            piped[name].append(run("train_pipeline.py", [*common, "--pp_degree", str(P), "--pp_schedule", name,
                                                         "--pp_virtual_stages", str(v), "--pp_microbatches", str(m)]))
        print(f"round {i + 1}: naive {naive[-1]:.0f}/s, " + ", ".join(f"{k} {v[-1]:.0f}/s" for k, v in piped.items()), flush=True)

    t_naive = 1 / statistics.median(naive)  # seconds per sample
    print(f"\n{P} processes, {m} micro-batches of {args.microbatch_size} rows; naive split {1 / t_naive:.0f} samples/s")
    print(f"{'schedule':<22}{'samples/s':>10}{'vs naive':>10}{'ideal':>8}{'of ideal':>10}{'rounds':>11}{'bubble':>9}"
          f"{'theory':>8}{'model':>8}")
    for name, v in SCHEDULES:
        rate = statistics.median(piped[name])
        speedup = rate * t_naive
        vv = 2 if name in ("ZBVZeroBubble", "DualPipeV") else v
        theory = theoretical_bubble(name, P, m, vv)
        model = simulate(name, P, m, vv).bubble_fraction
        # speedup over naive if each rank were busy (1 - bubble) of the time, the bubble the timeline model's (which
        # counts the zero-bubble schedules' fill and drain that the closed form leaves out)
        ideal = P * (1 - model)
        measured_bubble = 1 - (t_naive / P) / (1 / rate)
        shares = [r / n / ideal for r, n in zip(piped[name], naive, strict=True)]
        spread = f"{min(shares):.0%}-{max(shares):.0%}"
        print(f"{name:<22}{rate:>10.0f}{speedup:>9.2f}x{ideal:>7.2f}x{speedup / ideal:>10.0%}{spread:>11}"
              f"{measured_bubble:>9.1%}{theory:>8.1%}{model:>8.1%}")
    print("\nideal = p x (1 - the timeline model's bubble): p*m/(m+p-1) for GPipe and 1F1B "
          f"({P * m / (m + P - 1):.2f}x here). Target: every schedule at >= 90% of its ideal.")


if __name__ == "__main__":
    main()
