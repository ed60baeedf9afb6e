"""Why an instance type has no plan: what the planner saw of it, worded so that every clause is true of that type.

For each type it keeps the facts the search met: the counts over the price cap, the counts the cost bound skipped
(never evaluated), the configuration closest to fitting in memory, the fastest one over the time limit, and the
counts no layout divides. ``TypeOutcomes.explain`` turns them into one rejection: "needs 101.0 GiB per GPU at best
(...); 1-2 x cost at least $X (compute alone), more than the 10 cheapest plans; 3 or more x cost $75.75/h, over
max_usd_per_hour 70".
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from smjobs.catalog import InstanceType
from smjobs.planner.memory import GIB, Layout, MemoryEstimate
from smjobs.tables import usd_text


def describe_layout(lay: Layout) -> str:
    """"dp 4, tp 2, full_shard, full recompute": the degrees and options that differ from plain data parallelism."""
    parts = [f"dp {lay.dp_degree}"]
    if lay.tp_degree > 1:
        parts.append(f"tp {lay.tp_degree}" + (" with sequence parallel" if lay.sequence_parallel else ""))
    if lay.pp_degree > 1:
        steps = f" x {lay.accumulation} schedule steps" if lay.accumulation > 1 else ""
        parts.append(f"pp {lay.pp_degree} ({lay.schedule}, {lay.microbatches} micro-batches{steps})")
    if lay.sharding != "none":
        parts.append(lay.sharding + (f" over {lay.shard_degree}" if lay.sharding == "hybrid_shard" else ""))
    if lay.unsharded_microbatches:
        parts.append("unsharded between micro-batches")
    if lay.recompute != "none":
        parts.append(f"{lay.recompute} recompute")
    return ", ".join(parts)


@dataclass(frozen=True)
class Rejection:
    instance_type: str
    reason: str
    kind: str
    """library, family, region, unpriced, degrees, memory, time, price or bound."""
    distance: float = math.inf
    """How far from acceptable (needed / available): what ``nearest`` sorts by."""
    instance_count: int | None = None
    raise_limit: str = ""
    """The limit that, raised, would admit this type's closest configuration (the time limit, the price cap), or
    what else it needs (more memory per GPU)."""
    only_bound_usd: float | None = None
    """The type was never evaluated, only skipped by the cost bound: its cheapest job's lower bound in USD (such
    types are listed together in one line)."""


def _counts(counts: list[int]) -> str:
    counts = sorted(counts)
    if len(counts) > 1 and counts == list(range(counts[0], counts[-1] + 1)):
        return f"{counts[0]}-{counts[-1]}"
    return ", ".join(map(str, counts))


@dataclass
class TypeOutcomes:
    """What the search met, per instance type (mutable while the search runs)."""

    over_cap: dict[str, tuple[int, float]] = field(default_factory=dict)
    """Smallest count over the price cap and its hourly rate."""
    bounded: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    """Counts skipped by the cost bound, each with its lower bound in USD."""
    fit_but_bounded: set[str] = field(default_factory=set)
    """Types with a configuration that fits in memory but was not costed (its compute and bubble cost too much)."""
    closest: dict[str, tuple[float, int, Layout, MemoryEstimate]] = field(default_factory=dict)
    """The configuration needing the least memory per GPU, of those that did not fit."""
    too_slow: dict[str, object] = field(default_factory=dict)
    """The fastest configuration that fitted but would not finish in time (a Candidate)."""
    no_layout: dict[str, int] = field(default_factory=dict)
    closest_micro: dict[str, int] = field(default_factory=dict)
    """The micro-batch of each type's closest configuration (what its time estimate needs)."""

    def memory(self, name: str, memory: MemoryEstimate, count: int, layout: Layout, micro: int = 1) -> None:
        if name not in self.closest or memory.total < self.closest[name][0]:
            self.closest[name] = (memory.total, count, layout, memory)
            self.closest_micro[name] = micro

    def slow(self, candidate) -> None:
        name = candidate.instance_type
        if name not in self.too_slow or candidate.hours < self.too_slow[name].hours:
            self.too_slow[name] = candidate

    def explain(self, instance: InstanceType, constraints, workload, strategy, keep: int, usable: float,
                hours_of=None) -> Rejection | None:
        """One rejection for a type with no plan, or None when the search never reached it. ``hours_of(count,
        layout, micro)``: the job's hours on ``instance`` (so that a type too small in memory is also as far from
        feasible as its time makes it)."""
        name = instance.name
        clauses: list[str] = []
        kind, distance, count, raise_limit = "", math.inf, None, ""
        if name in self.too_slow:
            c = self.too_slow[name]
            clauses.append(f"{c.instance_count} x {name} fits ({describe_layout(c.layout)}) but takes {c.hours:,.1f} h, over the "
                           f"time limit of {constraints.max_hours:,.1f} h")
            kind, distance, count = "time", c.hours / constraints.max_hours, c.instance_count
            raise_limit = f"a time limit of {c.hours:,.1f} h (compute.max_run_s {math.ceil(c.hours * 3600)})"
        if name in self.closest and name not in self.too_slow and name not in self.fit_but_bounded:
            # (something fitted: "needs at best" would be false)
            total, at, layout, memory = self.closest[name]
            clauses.append(f"needs {total / GIB:.1f} GiB per GPU at best ({at} x {name}, {describe_layout(layout)}: "
                           f"{memory.describe()}); {name} has {instance.gpu_memory_gib:.1f} GiB per GPU as the driver "
                           f"reports it ({usable / GIB:.1f} usable with a {constraints.memory_margin:.0%} margin)")
            if not kind:
                kind, distance, count = "memory", total / usable, at
                raise_limit = f"{total / GIB:.1f} GiB per GPU: more sharding, a smaller micro-batch or a larger GPU"
                hours = hours_of(at, layout, self.closest_micro.get(name, 1)) if hours_of else None
                if hours is not None and constraints.max_hours and hours > constraints.max_hours:
                    # fitting would not be enough: it would also take too long
                    distance = max(distance, hours / constraints.max_hours)
                    clauses.append(f"and would take {hours:,.1f} h, over the time limit of {constraints.max_hours:,.1f} h")
                    raise_limit += f", and a time limit of {hours:,.1f} h"
        if name in self.bounded:
            skipped = self.bounded[name]
            cheapest = min(b for _, b in skipped)
            counts = sorted({n for n, _ in skipped})
            alone = "compute and pipeline bubble alone" if name in self.fit_but_bounded else "compute alone"
            clauses.append(f"{_counts(counts)} x {name} cost at least ${usd_text(cheapest)} for the job ({alone}), "
                           f"more than the {keep} cheapest plans found")
            kind = kind or "bound"
        if name in self.over_cap:
            at, rate = self.over_cap[name]
            more = " or more" if constraints.instance_count is None and at < constraints.max_instances else ""
            clauses.append(f"{at}{more} x {name} cost ${rate:,.2f}/h, over max_usd_per_hour {constraints.max_usd_per_hour:g}")
            if not kind:
                kind, distance, count = "price", rate / constraints.max_usd_per_hour, at
                raise_limit = f"plan.max_usd_per_hour {math.ceil(rate * 100) / 100:g}"
        if name in self.no_layout and not clauses:
            return Rejection(name, f"no {strategy.kind} layout fits {self.no_layout[name]} x {name}: the degrees, layers "
                             f"({workload.shape.layers}) or global batch ({workload.global_batch}) do not divide", "degrees")
        if not clauses:
            return None
        only_bound = min(b for _, b in self.bounded[name]) if kind == "bound" and len(clauses) == 1 else None
        return Rejection(name, "; ".join(clauses), kind, distance, count, raise_limit, only_bound)

    def explain_all(self, types, found, constraints, workload, strategy, keep: int, usable, hours_of=None) -> list[Rejection]:
        """A rejection for every type in ``types`` (pairs of type and price) without a configuration in ``found``;
        ``usable(instance, constraints)`` gives a GPU's usable bytes, ``hours_of(instance, count, layout, micro)``
        a configuration's hours."""
        fitting = {c.instance_type for c in found}
        out = []
        for instance, _ in types:
            if instance.name not in fitting:
                bound = (lambda count, layout, micro, instance=instance: hours_of(instance, count, layout, micro)) \
                    if hours_of else None
                rejection = self.explain(instance, constraints, workload, strategy, keep, usable(instance, constraints),
                                         bound)
                if rejection is not None:
                    out.append(rejection)
        return out

