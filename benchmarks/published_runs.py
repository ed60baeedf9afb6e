"""Print the planner's estimates against published training runs (tests/data/published_runs.yaml), run by run.

Each row: memory estimated / published, tokens per second predicted / published at the planner's default
assumption (the GPU model's fitted MFU, catalog/utilisation.json) and at the run's own published MFU, and whether
the estimate fits the GPU the run ran on. ``--fit`` prints the defaults the runs support (how the catalog was filled).

    python benchmarks/published_runs.py [--fit]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from smjobs.planner import calibration

RUNS = Path(__file__).parents[1] / "tests" / "data" / "published_runs.yaml"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--fit", action="store_true", help="print the fitted MFU default per GPU model")
    args = parser.parse_args()
    summary = calibration.summarise(RUNS)
    print("| run | memory est/pub | tok/s est/pub (default) | at stated MFU | fits as it ran |")
    print("|---|---|---|---|---|")
    for c in summary.checks:
        memory = f"{c.memory_ratio:.3f}" if c.memory_ratio is not None else "-"
        stated = f"{c.tps_ratio_stated_mfu:.3f}" if c.tps_ratio_stated_mfu is not None else "-"
        tps = f"{c.tps_ratio:.3f}" if c.tps_ratio is not None else "- (out of memory)"
        print(f"| {c.id} | {memory} | {tps} | {stated} | {'yes' if c.predicted_fit == c.ran else 'NO'} |")
    worst = max(abs(r - 1) for ratios in summary.korthikanti.values() for r in ratios.values())
    print(f"Korthikanti et al. Table 2 on {len(summary.korthikanti)} models x 5 techniques: worst relative difference {worst:.1e}")
    for name, value in summary.figures().items():
        print(f"{name}: {value:.3f}" if isinstance(value, float) else f"{name}: {value}")
    print(f"not expressible ({len(summary.not_expressible)}):")
    for run_id, reason in summary.not_expressible.items():
        print(f"  {run_id}: {reason}")
    if args.fit:
        for gpu in ("NVIDIA A100", "NVIDIA H100"):
            mfu, runs = calibration.fit_mfu(RUNS, gpu)
            print(f"fitted default for {gpu}: {mfu:.3f} MFU over {len(runs)} runs")


if __name__ == "__main__":
    main()
