"""The planner against published training runs: memory and throughput, run by run.

The runs are data (``tests/data/published_runs.yaml`` in the repository): each gives its source, its configuration
in smjobs' terms and the published peak memory and tokens per second per GPU. Runs smjobs cannot express exactly
are listed with the reason and not compared. Throughput is compared twice: at the planner's stated assumption
(``Assumptions().mfu``), which is what a plan would have predicted, and at the run's own published MFU, which
isolates the rest of the step-time model (FLOP count, communication, overlap). Korthikanti et al.'s per-layer
activation formulas are checked term by term against the generalised count.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, replace
from pathlib import Path

import yaml

from smjobs.catalog import instances
from smjobs.catalog.utilisation import utilisation
from smjobs.planner.cost import Assumptions, Workload, from_measured, step_time
from smjobs.planner.memory import (
    GIB,
    Layout,
    TransformerShape,
    activation_bytes_per_layer,
    estimate,
    for_batch,
)

DEFAULT = Assumptions()
TORCH_EAGER = {"flash_attention": True, "precision": "mixed", "activation_bytes": 2}
"""How the published PyTorch runs ran: SDPA's fused attention, bf16 autocast or FSDP2 bf16 parameters."""


@dataclass(frozen=True)
class RunCheck:
    id: str
    memory_ratio: float | None
    """Estimated / published peak memory per GPU."""
    tps_ratio: float | None
    """Predicted / published tokens per second per GPU, at the planner's stated utilisation."""
    tps_ratio_stated_mfu: float | None
    """The same at the run's published MFU."""
    estimate_gib: float | None = None
    predicted_tps: float | None = None
    predicted_fit: bool | None = None
    """The estimate fits in the memory of the GPU the run ran on."""
    ran: bool | None = None
    """The run ran (False: it was published as out of memory)."""


def load(path: Path) -> dict:
    return yaml.safe_load(Path(path).read_text())


def _shape(data: dict, run: dict, micro_batch: int = 1) -> TransformerShape:
    return TransformerShape(**data["models"][run["model"]], micro_batch=micro_batch)


def published_tokens_per_s(run: dict, world: int, seq_len: int) -> float | None:
    """Tokens per second per GPU as published, or from the published seconds per iteration."""
    published = run["published"]
    if "tokens_per_s_per_gpu" in published:
        return published["tokens_per_s_per_gpu"]
    if "step_s" in published:
        return run["global_batch"] * seq_len / published["step_s"] / world
    return None  # an out-of-memory outcome: nothing ran to time


def device_memory_gib(run: dict) -> float:
    """Memory of the GPU the run ran on: the run's own when its GPU differs from the catalog type's."""
    return run.get("device_memory_gib") or instances().types[run["instance_type"]].gpu_memory_gib


def check_run(data: dict, run: dict, assumptions: Assumptions = DEFAULT) -> RunCheck:
    """Estimated memory and throughput of one expressible measured run against what was published."""
    shape = _shape(data, run, run["micro_batch"])
    layout = for_batch(Layout(**{**TORCH_EAGER, **run["layout"]}), run["global_batch"], run["micro_batch"])
    instance = instances().types[run["instance_type"]]
    if "network_gbps" in run:  # the run's own network between hosts, where it is published and differs
        instance = replace(instance, network_gbps=run["network_gbps"])
    count = run["instance_count"]
    world = instance.gpu_count * count
    published = run["published"]
    work = Workload(shape, run["global_batch"], steps=1, recompute=layout.recompute)
    measured = published_tokens_per_s(run, world, shape.seq_len)

    def tokens_per_s(a: Assumptions) -> float:
        return run["global_batch"] * shape.seq_len / step_time(work, instance, count, layout, run["micro_batch"], a).total_s / world

    memory = estimate(shape, layout).total / GIB
    predicted = tokens_per_s(assumptions)
    stated = None
    if "mfu" in published:
        stated = tokens_per_s(from_measured(published["mfu"], layout.recompute, work)) / measured
    return RunCheck(run["id"], memory / published["memory_gib"] if "memory_gib" in published else None,
                    predicted / measured if measured else None, stated, memory, predicted, memory <= device_memory_gib(run),
                    not published.get("out_of_memory", False))


KORTHIKANTI_ROWS = {
    # technique: (Layout settings, the paper's bytes per layer / (s*b*h) as a function of (a, s, h, t))
    "tensor parallel": ({}, lambda a, s, h, t: 10 + 24 / t + 5 * a * s / (h * t)),
    "tensor + sequence parallel": ({"sequence_parallel": True}, lambda a, s, h, t: (34 + 5 * a * s / h) / t),
    "tensor parallel + selective recompute": ({"recompute": "selective"}, lambda a, s, h, t: 10 + 24 / t),
    "tensor + sequence parallel + selective recompute": ({"recompute": "selective", "sequence_parallel": True},
                                                         lambda a, s, h, t: 34 / t),
    "full recompute": ({"recompute": "full"}, lambda a, s, h, t: 2),
}


def korthikanti_ratios(data: dict, run: dict) -> dict[str, float]:
    """Per technique: smjobs' per-layer activation bytes over the paper's formula (micro-batch 1)."""
    shape = _shape(data, run)
    t, a, s, h = run["tp_degree"], shape.heads, shape.seq_len, shape.hidden
    out = {}
    for name, (settings, formula) in KORTHIKANTI_ROWS.items():
        ours = activation_bytes_per_layer(shape, Layout(tp_degree=t, **settings))
        out[name] = ours / (formula(a, s, h, t) * s * h)
    return out


@dataclass(frozen=True)
class Summary:
    checks: tuple[RunCheck, ...]
    korthikanti: dict[str, dict[str, float]]
    not_expressible: dict[str, str]

    def _errors(self, values) -> list[float]:
        return [abs(v - 1) for v in values if v is not None]

    def figures(self) -> dict[str, float]:
        memory = self._errors(c.memory_ratio for c in self.checks)
        tps = self._errors(c.tps_ratio for c in self.checks)
        stated = self._errors(c.tps_ratio_stated_mfu for c in self.checks)
        return {"memory_median": statistics.median(memory), "memory_worst": max(memory),
                "step_median": statistics.median(tps), "step_worst": max(tps),
                "step_median_stated_mfu": statistics.median(stated), "step_worst_stated_mfu": max(stated),
                "memory_runs": len(memory), "step_runs": len(tps), "stated_mfu_runs": len(stated)}


def summarise(path: Path, assumptions: Assumptions = DEFAULT) -> Summary:
    data = load(path)
    checks, kort, skipped = [], {}, {}
    for run in data["runs"]:
        if not run["expressible"]:
            skipped[run["id"]] = run["reason"]
        elif run["source"] == "korthikanti":
            kort[run["id"]] = korthikanti_ratios(data, run)
        else:
            checks.append(check_run(data, run, assumptions))
    return Summary(tuple(checks), kort, skipped)


def gpu_of(run: dict) -> str:
    return instances().types[run["instance_type"]].gpu_model


def fit_mfu(path: Path, gpu_model: str) -> tuple[float, list[str]]:
    """The default utilisation for ``gpu_model`` the published runs on it support: the value (to 0.005) with the
    smallest median error of their step time (at the catalog's ``half_width``), and the runs it rests on. This is how ``catalog/utilisation.json`` was filled
    (``benchmarks/published_runs.py --fit``)."""
    data = load(path)
    runs = [r for r in data["runs"] if r["expressible"] and r["source"] != "korthikanti" and gpu_of(r) == gpu_model
            and not r["published"].get("out_of_memory")]
    if not runs:
        raise ValueError(f"no published run on {gpu_model}")

    catalogued = utilisation().mfu(gpu_model)

    def errors(mfu: float) -> tuple[float, float]:
        trial = Assumptions(defaults=((gpu_model, replace(catalogued, mfu=mfu)),))
        ratios = [check_run(data, r, trial).tps_ratio for r in runs]
        return statistics.median(abs(x - 1) for x in ratios), max(abs(math.log(x)) for x in ratios)

    best = min((0.005 * k for k in range(40, 181)), key=errors)
    return round(best, 3), [r["id"] for r in runs]
