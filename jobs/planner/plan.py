"""The planner: the cheapest instance type, count and parallel layout that fits, and why the others do not.

SkyPilot's shape: filter the catalog (constraints, library support, a known price), then search
instance type x count x layout in order of a cost lower bound (compute alone at the assumed utilisation),
stopping once no unexplored configuration can beat the ``keep`` cheapest found (branch and bound). Every
configuration is checked against the per-GPU memory model with a safety margin and priced with the step-time
model (``smjobs.planner.cost``). The result keeps the ranked candidates and, for every instance type that has
none, the reason, worded with numbers ("needs 47.2 GiB per GPU; ml.g5.12xlarge has 24 GiB").
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

from smjobs.catalog import InstanceType, instances, prices, supported_libraries
from smjobs.planner.cost import (
    Assumptions,
    StepTime,
    Workload,
    compute_s,
    expected_billed_hours,
    hourly_usd,
    job_hours,
    pipeline_bubble,
    step_time,
)
from smjobs.planner.explain import Rejection, TypeOutcomes, describe_layout
from smjobs.planner.layouts import StrategyRequest, layouts_for
from smjobs.planner.memory import GIB, Layout, MemoryEstimate

LIBRARY = {"smddp": "smddp", "smp_v2": "smp_v2", "smp_v1": "smp_v1"}
LIBRARY_NAMES = {"smddp": "SMDDP", "smp_v2": "SageMaker model parallelism v2", "smp_v1": "SageMaker model parallelism v1"}


@dataclass(frozen=True)
class Constraints:
    """Limits on what the planner may choose."""

    region: str | None = None
    """Region whose prices apply (default: the price catalog's)."""
    max_usd_per_hour: float | None = None
    """For all instances together (spot-adjusted when spot is on)."""
    max_instances: int = 8
    families: tuple[str, ...] = ()
    """Allowed instance families (``p4d``, ``g5``, ...); empty allows all."""
    instance_types: tuple[str, ...] = ()
    """Only these instance types; empty allows all."""
    instance_count: int | None = None
    """A fixed instance count; None lets the planner choose 1..max_instances."""
    spot: bool = False
    memory_margin: float = 0.10
    """Share of each GPU's memory kept free (allocator fragmentation, estimate error)."""
    max_hours: float | None = None
    """Longest the job may take, start-up included (the spec's compute.max_run_s, or plan.max_hours)."""
    checkpoints: bool = True
    """The job checkpoints, so a spot interruption loses only the work since the last checkpoint."""


@dataclass(frozen=True)
class Candidate:
    instance_type: str
    instance_count: int
    layout: Layout
    micro_batch: int
    memory: MemoryEstimate
    step: StepTime
    usd_per_hour: float
    hours: float

    @property
    def job_usd(self) -> float:
        return self.usd_per_hour * self.hours

    @property
    def gpus(self) -> int:
        return self.instance_count * instances().types[self.instance_type].gpu_count

    def describe_layout(self) -> str:
        return describe_layout(self.layout)


@dataclass(frozen=True)
class Plan:
    workload: Workload
    strategy: StrategyRequest
    constraints: Constraints
    assumptions: Assumptions
    ranked: tuple[Candidate, ...]
    """Configurations that fit, cheapest job first (the ``keep`` cheapest are exact)."""
    rejections: tuple[Rejection, ...]
    evaluated: int
    """Configurations whose memory and step time were computed."""
    region: str = ""
    """The region whose prices were used (the default region's when the asked one has no price table)."""
    scatter: tuple[Candidate, ...] = field(default=(), repr=False)
    """Every fitting configuration evaluated, for plotting cost against step time."""
    warnings: tuple[str, ...] = ()

    @property
    def choice(self) -> Candidate | None:
        return self.ranked[0] if self.ranked else None

    def nearest(self, count: int = 3) -> list[Rejection]:
        """The rejected configurations closest to acceptable (memory, price or time)."""
        close = [r for r in self.rejections if r.kind in ("memory", "price", "time")]
        return sorted(close, key=lambda r: (r.distance, r.instance_type))[:count]

    def why_nothing(self) -> str:
        if self.choice is not None:
            return ""
        lines = ["no configuration fits."]
        near = self.nearest()
        if near:
            lines.append("Nearest, closest to feasible first: " + "; ".join(
                f"{r.instance_type}: {r.reason}" + (f" (needs {r.raise_limit})" if r.raise_limit else "") for r in near))
        return " ".join(lines)


# ----- evaluation ------------------------------------------------------------------------------------
def usable_bytes(instance: InstanceType, constraints: Constraints) -> float:
    """What a GPU of ``instance`` holds for training: the memory the driver reports, less the margin."""
    return instance.gpu_memory_gib * GIB * (1 - constraints.memory_margin)


def evaluate(workload: Workload, instance: InstanceType, count: int, layout: Layout, micro: int, price: float,
             constraints: Constraints, assumptions: Assumptions,
             memo: dict | None = None) -> tuple[Candidate | None, MemoryEstimate]:
    """The candidate when it fits in memory (else None), and its memory estimate. ``memo`` keeps the estimates of
    one plan: memory depends on the layout alone, and types with as many GPUs share their layouts."""
    memory = _memory(workload, layout, micro, memo)
    if memory.total > usable_bytes(instance, constraints):
        return None, memory
    step = step_time(workload, instance, count, layout, micro, assumptions)
    rate = hourly_usd(price, count, constraints.spot, assumptions)
    return Candidate(instance.name, count, layout, micro, memory, step, rate,
                     job_hours(step.total_s, workload.steps, assumptions)), memory


def _memory(workload: Workload, layout: Layout, micro: int, memo: dict | None) -> MemoryEstimate:
    memory = memo.get((layout, micro)) if memo is not None else None
    if memory is None:
        memory = workload.shape.memory(layout, micro)
        if memo is not None:
            memo[(layout, micro)] = memory
    return memory


def compute_floor_s(workload: Workload, instance: InstanceType, assumptions: Assumptions) -> float:
    """A step's compute alone on one ``instance`` (no communication, no bubble, no recomputation); n of them take 1/n."""
    peak = instances().gpu(instance.name).peak_for(workload.precision) * 1e12
    return workload.step_flops("none") / (instance.gpu_count * peak * assumptions.mfu_for(instance.name))


def lower_bound_usd(workload: Workload, instance: InstanceType, count: int, price: float,
                    constraints: Constraints, assumptions: Assumptions, floor_s: float | None = None) -> float:
    """No configuration of ``count`` x ``instance`` costs less: compute alone, no communication, no bubble.
    ``floor_s``: ``compute_floor_s`` of the type, when the caller has it."""
    one = compute_floor_s(workload, instance, assumptions) if floor_s is None else floor_s
    return hourly_usd(price, count, constraints.spot, assumptions) * job_hours(one / count, workload.steps, assumptions)


def filter_types(strategy: StrategyRequest, constraints: Constraints, region: str) -> tuple[list[tuple[InstanceType, float]], list[Rejection]]:
    kept, rejected = [], []
    library = LIBRARY.get(strategy.kind)
    for instance in instances().types.values():
        name = instance.name
        if constraints.instance_types and name not in constraints.instance_types:
            continue  # not asked about: no rejection to explain
        if constraints.families and instance.family not in constraints.families:
            rejected.append(Rejection(name, f"family {instance.family} is not among the allowed families ({', '.join(constraints.families)})", "family"))
            continue
        if library and library not in supported_libraries(name):
            rejected.append(Rejection(name, f"{LIBRARY_NAMES[strategy.kind]} does not run on {name}", "library"))
            continue
        offered = prices().not_offered(name, region)
        if offered is not None:
            rejected.append(Rejection(name, f"{name} is not offered for training in {region} (Price List SKUs read {offered.retrieved})", "region"))
            continue
        price = prices().price(name, region)
        if price is None:
            rejected.append(Rejection(name, f"no on-demand price for {name} in {region} in the catalog; run `smjobs prices refresh --region {region}`", "unpriced"))
            continue
        kept.append((instance, price.usd_per_hour))
    return kept, rejected


DEFAULT_ASSUMPTIONS = Assumptions()
TIE_SHARE = 0.02
"""Job costs within this share of each other are a tie, which the faster plan wins."""


def rank(found: list[Candidate], keep: int) -> list[Candidate]:
    """The ``keep`` best: repeatedly, of the configurations within TIE_SHARE of the cheapest left, the fastest."""
    remaining = sorted(found, key=lambda c: (c.job_usd, c.hours, c.instance_type, c.instance_count))
    ranked = []
    while remaining and len(ranked) < keep:
        ceiling = remaining[0].job_usd * (1 + TIE_SHARE)
        tied = [i for i, c in enumerate(remaining) if c.job_usd <= ceiling]
        ranked.append(remaining.pop(min(tied, key=lambda i: (remaining[i].hours, remaining[i].job_usd))))
    return ranked


DEFAULT_STRATEGY = StrategyRequest()


def plan(workload: Workload, strategy: StrategyRequest = DEFAULT_STRATEGY, constraints: Constraints = Constraints(),
         assumptions: Assumptions = DEFAULT_ASSUMPTIONS, keep: int = 10) -> Plan:
    """Rank the configurations that fit; explain every instance type that has none."""
    region = constraints.region or prices().default_region
    if region not in prices().regions:  # no price table for it yet: rank with the default region's, and say so
        region = prices().default_region
    types, rejections = filter_types(strategy, constraints, region)
    counts = [constraints.instance_count] if constraints.instance_count else list(range(1, constraints.max_instances + 1))
    seen = TypeOutcomes()
    # (type, count) pairs within the price cap, cheapest lower bound first
    pairs = []
    for instance, price in types:
        floor_s = compute_floor_s(workload, instance, assumptions)
        for count in counts:
            rate = hourly_usd(price, count, constraints.spot, assumptions)
            if constraints.max_usd_per_hour is not None and rate > constraints.max_usd_per_hour:
                seen.over_cap.setdefault(instance.name, (count, rate))
                continue
            pairs.append((lower_bound_usd(workload, instance, count, price, constraints, assumptions, floor_s),
                          instance, count, price))
    pairs.sort(key=lambda p: (p[0], p[1].name, p[2]))

    found: list[Candidate] = []
    evaluated = 0
    layout_memo: dict[tuple[int, bool, int], list[tuple[Layout, int]]] = {}
    memory_memo: dict[tuple[Layout, int], MemoryEstimate] = {}
    compute_memo: dict[tuple, float] = {}
    best: list[float] = []  # negated job costs of the ``keep`` cheapest so far (a max-heap)
    limit_h = constraints.max_hours
    for bound, instance, count, price in pairs:
        if len(best) >= keep and bound > -best[0] * (1 + TIE_SHARE):  # nothing here can be among them, ties included
            seen.bounded.setdefault(instance.name, []).append((count, bound))
            continue
        # the layouts depend on the type only through its GPUs per instance and whether NVLink joins them
        shape_key = (instance.gpu_count, instance.nvlink, count)
        options = layout_memo.get(shape_key)
        if options is None:
            options = layout_memo[shape_key] = layouts_for(strategy, instance, count, workload)
        if not options:
            seen.no_layout.setdefault(instance.name, count)
        too_big = set()  # layouts (but for recomputation) that do not fit even with full recomputation
        fitted = set()  # layouts (but for pipeline accumulation) that fit: accumulating more is only slower
        for layout, micro in options:
            # what varies within one plan, but recomputation and accumulation over schedule steps
            base = (micro, layout.dp_degree, layout.tp_degree, layout.pp_degree, layout.sharding, layout.shard_degree,
                    layout.unsharded_microbatches, layout.sequence_parallel)
            key = (*base, layout.microbatches, layout.accumulation)
            if key in too_big:
                continue  # less recomputation only needs more memory
            if layout.accumulation > 1 and (*base, layout.recompute) in fitted:
                continue  # more schedule steps, more bubbles: a layout with fewer that fits is faster at the same price
            evaluated += 1
            if (layout.pp_degree > 1 and len(best) >= keep
                    and _memory(workload, layout, micro, memory_memo).total <= usable_bytes(instance, constraints)):
                # a pipeline that fits, but whose compute and bubble alone cost more than the ``keep`` cheapest
                compute_key = (instance.name, count, layout.tp_degree, layout.pp_degree, layout.recompute)
                seconds = compute_memo.get(compute_key)
                if seconds is None:
                    seconds = compute_memo[compute_key] = compute_s(workload, instance, count, layout, assumptions)
                floor_s = seconds / (1 - pipeline_bubble(layout))
                floor = hourly_usd(price, count, constraints.spot, assumptions) * job_hours(floor_s, workload.steps, assumptions)
                if floor > -best[0] * (1 + TIE_SHARE):
                    seen.bounded.setdefault(instance.name, []).append((count, floor))
                    seen.fit_but_bounded.add(instance.name)
                    fitted.add((*base, layout.recompute))
                    continue
            candidate, memory = evaluate(workload, instance, count, layout, micro, price, constraints, assumptions, memory_memo)
            if candidate is None:
                seen.memory(instance.name, memory, count, layout, micro)
                if layout.recompute == "full":
                    too_big.add(key)
                continue
            fitted.add((*base, layout.recompute))
            if limit_h is not None and candidate.hours > limit_h:
                seen.slow(candidate)
            else:
                found.append(candidate)
                heapq.heappush(best, -candidate.job_usd)
                if len(best) > keep:
                    heapq.heappop(best)

    def hours_of(instance: InstanceType, count: int, layout: Layout, micro: int) -> float:
        return job_hours(step_time(workload, instance, count, layout, micro, assumptions).total_s, workload.steps, assumptions)

    rejections += seen.explain_all(types, found, constraints, workload, strategy, keep, usable_bytes, hours_of)
    ranked = rank(found, keep)
    warnings = []
    if constraints.spot and not constraints.checkpoints and ranked:
        c, rate = ranked[0], assumptions.spot_interruptions_per_hour
        billed = expected_billed_hours(c.hours, rate)
        warnings.append(f"spot without checkpoints: every interruption restarts the job from the beginning; at an assumed "
                        f"{rate * 24:g} interruption(s) per day the {c.hours:,.1f} h job is billed about {billed:,.1f} h "
                        f"(${c.usd_per_hour * billed:,.0f}, not ${c.job_usd:,.0f}). Checkpoint (checkpoint_s3_uri and a "
                        "script that resumes) to lose only the work since the last checkpoint.")
    return Plan(workload, strategy, constraints, assumptions, tuple(ranked), tuple(rejections), evaluated, region,
                tuple(found), tuple(warnings))
