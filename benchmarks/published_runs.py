"""Print the planner's estimates against published training runs (tests/data/published_runs.yaml), run by run.

    python benchmarks/published_runs.py
"""

from __future__ import annotations

from pathlib import Path

from smjobs.planner import calibration

RUNS = Path(__file__).parents[1] / "tests" / "data" / "published_runs.yaml"


def main() -> None:
    summary = calibration.summarise(RUNS)
    print(f"{'run':34} {'memory est/pub':>15} {'tok/s est/pub (40% MFU)':>24} {'at stated MFU':>14}")
    for c in summary.checks:
        memory = f"{c.memory_ratio:.3f}" if c.memory_ratio is not None else "-"
        stated = f"{c.tps_ratio_stated_mfu:.3f}" if c.tps_ratio_stated_mfu is not None else "-"
        print(f"{c.id:34} {memory:>15} {c.tps_ratio:>24.3f} {stated:>14}")
    worst = max(abs(r - 1) for ratios in summary.korthikanti.values() for r in ratios.values())
    print(f"Korthikanti et al. Table 2 on {len(summary.korthikanti)} models x 5 techniques: worst relative difference {worst:.1e}")
    for name, value in summary.figures().items():
        print(f"{name}: {value:.3f}" if isinstance(value, float) else f"{name}: {value}")
    print(f"not expressible ({len(summary.not_expressible)}):")
    for run_id, reason in summary.not_expressible.items():
        print(f"  {run_id}: {reason}")


if __name__ == "__main__":
    main()
