"""Planning time per scenario, and a picture of what the planner weighs.

Imports happen first (they are not counted); then every scenario (model size x strategy x limits) is planned
``--repeats`` times and the median wall time per scenario is printed next to the target (20 ms), with how
many configurations the branch and bound evaluated against how many a brute-force search would. The 7B
FSDP scenario's candidates (all of them, searched without pruning) are drawn as estimated job cost against
step time.

    python benchmarks/plan.py [--repeats 5] [--png figures/plan-7b-fsdp.png]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from smjobs import catalog  # noqa: E402
from smjobs.planner.cost import Workload  # noqa: E402
from smjobs.planner.layouts import StrategyRequest, layouts_for  # noqa: E402
from smjobs.planner.memory import TransformerShape  # noqa: E402
from smjobs.planner.plan import Constraints, plan  # noqa: E402
from smjobs.planner.plot import plot  # noqa: E402

TARGET_MS = 20
MODELS = {
    "1B": TransformerShape(layers=24, hidden=2048, heads=16, seq_len=2048, vocab=50304, micro_batch=4),
    "7B": TransformerShape(layers=32, hidden=4096, heads=32, seq_len=4096, vocab=32000, micro_batch=1),
    "70B": TransformerShape(layers=80, hidden=8192, heads=64, seq_len=4096, vocab=32000, micro_batch=1),
}
SCENARIOS = [(model, kind, limits) for model in MODELS
             for kind in ("ddp", "fsdp", "pipeline", "smp_v2")
             for limits in (Constraints(max_instances=8), Constraints(max_instances=16, max_usd_per_hour=200))]


def brute_force_size(workload: Workload, kind: str, limits: Constraints) -> int:
    return sum(len(layouts_for(StrategyRequest(kind), instance, count, workload))
               for instance in catalog.instances().types.values() for count in range(1, limits.max_instances + 1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--png", type=Path, default=Path("figures/plan-7b-fsdp.png"))
    args = parser.parse_args()
    plan(Workload(MODELS["1B"], 256, 100))  # warm the catalog caches: loading JSON is an import-time cost
    print(f"{'scenario':44} {'median ms':>9} {'evaluated':>9} {'brute force':>11}  choice")
    times = []
    for model, kind, limits in SCENARIOS:
        workload = Workload(MODELS[model], global_batch=512, steps=2000)
        runs = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            found = plan(workload, StrategyRequest(kind), limits)
            runs.append((time.perf_counter() - start) * 1000)
        median = statistics.median(runs)
        times.append(median)
        c = found.choice
        choice = f"{c.instance_count} x {c.instance_type}, ${c.job_usd:,.0f}" if c else "nothing fits"
        name = f"{model} {kind} max {limits.max_instances} inst" + (f", <= ${limits.max_usd_per_hour:g}/h" if limits.max_usd_per_hour else "")
        print(f"{name:44} {median:9.1f} {found.evaluated:9d} {brute_force_size(workload, kind, limits):11d}  {choice}")
    print(f"\n{len(SCENARIOS)} scenarios: median {statistics.median(times):.1f} ms, worst {max(times):.1f} ms "
          f"per scenario (target <= {TARGET_MS} ms): {'met' if max(times) <= TARGET_MS else 'NOT met'}")
    # no pruning for the picture: every configuration that fits
    found = plan(Workload(MODELS["7B"], 512, 2000), StrategyRequest("fsdp"), Constraints(max_instances=16), keep=10**6)
    print(f"picture: {plot(found, args.png, '7B, FSDP, up to 16 instances: time to train vs job cost')}"
          f" ({len(found.scatter)} configurations)")


if __name__ == "__main__":
    main()
