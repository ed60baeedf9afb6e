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
from dataclasses import dataclass, field, replace

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
from smjobs.planner.memory import GIB, Layout, MemoryEstimate
from smjobs.spec.degrees import divisors

KINDS = ("ddp", "smddp", "fsdp", "pipeline", "naive_mp", "smp_v2", "smp_v1")
LIBRARY = {"smddp": "smddp", "smp_v2": "smp_v2", "smp_v1": "smp_v1"}
LIBRARY_NAMES = {"smddp": "SMDDP", "smp_v2": "SageMaker model parallelism v2", "smp_v1": "SageMaker model parallelism v1"}


@dataclass(frozen=True)
class StrategyRequest:
    """The distribution strategy, and the degrees the user fixed (None: the planner chooses)."""

    kind: str = "fsdp"
    pp_degree: int | None = None
    tp_degree: int | None = None
    sharding: str | None = None
    """FSDP sharding: full_shard, shard_grad_op or hybrid_shard."""
    shard_degree: int | None = None
    schedule: str = "1F1B"
    virtual_stages: int = 1
    microbatches: int | None = None
    accumulation: int | None = None
    """Pipeline schedule steps per optimizer step, when the spec fixes them."""


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


# ----- layouts ---------------------------------------------------------------------------------------
def _kv_heads(shape) -> int:
    """Key/value heads tensor parallelism splits (a traced model has none to split)."""
    return getattr(shape, "kv_heads", None) or shape.heads


def _micro_batch(workload: Workload, dp: int, at_most: int | None = None) -> int | None:
    """The micro-batch of each of ``dp`` data-parallel groups: the largest divisor of its share of the global batch
    up to the model's micro-batch (and ``at_most``); None when ``dp`` does not divide the global batch, which the
    scripts (and SageMaker's libraries) refuse at start-up."""
    if dp < 1 or workload.global_batch % dp:
        return None
    local = workload.global_batch // dp
    limit = min(workload.shape.micro_batch, local, at_most if at_most is not None else local)
    return next((m for m in range(limit, 0, -1) if local % m == 0), None)


def _with_recompute(layout: Layout, recompute: str) -> Layout:
    """``layout`` with another recomputation: a copy of its fields, without dataclasses.replace's re-validation of
    every field (this runs thousands of times per plan; Layout has no __post_init__ to skip)."""
    copy = object.__new__(Layout)
    copy.__dict__.update(layout.__dict__, recompute=recompute)
    return copy


def pipeline_accumulations(microbatches: int, pp: int, schedule: str) -> list[int]:
    """Schedule steps per optimizer step worth costing for ``microbatches`` micro-batches per replica: all in one
    step (the smallest bubble), as few per step as the schedule runs well (whole rounds of ``pp``: the least
    memory under GPipe, the fewest receive buffers), and about four rounds per step in between."""
    rounds = pp * (2 if schedule in ("ZBVZeroBubble", "DualPipeV") else 1)
    out = [1]
    for per_step in (rounds, 4 * rounds):
        if per_step < microbatches and microbatches % per_step == 0 and microbatches // per_step not in out:
            out.append(microbatches // per_step)
    return out


def layouts_for(strategy: StrategyRequest, instance: InstanceType, count: int, workload: Workload) -> list[tuple[Layout, int]]:
    """Every layout of ``strategy`` on ``count`` x ``instance`` that the degrees allow, with its micro-batch."""
    gpus, world = instance.gpu_count, instance.gpu_count * count
    shape = workload.shape
    wide = workload.precision in ("fp32", "tf32")
    base = {"precision": workload.precision, "flash_attention": workload.flash_attention, "loss": workload.loss,
            "activation_bytes": 4 if wide else 2,
            "softmax_fp32": workload.precision == "mixed" and not workload.flash_attention}
    out: list[tuple[Layout, int]] = []
    # full first: when it does not fit, no other recomputation of that layout does (plan() skips them)
    recomputes = [workload.recompute] if workload.recompute else list(workload.recompute_modes)
    if workload.flash_attention and "selective" in recomputes and len(recomputes) > 1:
        recomputes.remove("selective")  # with fused attention, selective recomputation saves nothing more

    def add(layout: Layout, micro: int | None) -> None:
        if micro is None or micro < 1:
            return
        if layout.pp_degree == 1 and workload.global_batch == micro * layout.dp_degree:
            layout = replace(layout, single_microbatch=True)
        variants = [layout]
        if strategy.kind == "fsdp" and workload.global_batch // layout.dp_degree > micro:
            # several micro-batches per step: FSDP2 can keep parameters and gradients unsharded between them
            variants.append(replace(layout, unsharded_microbatches=True))
        if layout.tp_degree > 1 and workload.sequence_parallel is not False:
            # sequence parallelism splits what tensor parallelism keeps whole, at the same traffic: when the script
            # may do it, it is the only tensor-parallel variant worth costing
            variants = [replace(v, sequence_parallel=True) for v in variants]
        out.extend((_with_recompute(v, r), micro) for v in variants for r in recomputes)

    kind = strategy.kind
    # tensor parallelism talks at every layer: only inside an NVLink domain, unless the spec fixes the degree
    nvlink = instances().gpu(instance.name).interconnect.startswith("NVLink")
    tp_choices = [strategy.tp_degree] if strategy.tp_degree else divisors(gpus) if nvlink else [1]
    if kind in ("ddp", "smddp"):
        add(Layout(dp_degree=world, **base), _micro_batch(workload, world))
    elif kind == "fsdp":
        shardings = [strategy.sharding] if strategy.sharding else ["full_shard", "shard_grad_op", "hybrid_shard"]
        for sharding in shardings:
            degree = strategy.shard_degree or gpus
            if sharding == "hybrid_shard" and (count == 1 or world % degree or degree == world):
                continue  # hybrid sharding is full sharding inside one shard group
            add(Layout(dp_degree=world, sharding=sharding, shard_degree=degree if sharding == "hybrid_shard" else None, **base),
                _micro_batch(workload, world))
    elif kind == "smp_v2":
        for tp in tp_choices:
            if gpus % tp or shape.heads % tp or _kv_heads(shape) % tp:
                continue
            dp = world // tp
            add(Layout(dp_degree=dp, tp_degree=tp, sharding="full_shard", **base), _micro_batch(workload, dp))
    elif kind in ("pipeline", "smp_v1", "naive_mp"):
        pps = [world] if kind == "naive_mp" else ([strategy.pp_degree] if strategy.pp_degree else divisors(world))
        tps = [1] if kind == "naive_mp" else tp_choices
        for pp in pps:
            if pp < 2 or pp > shape.layers or world % pp:
                continue
            for tp in tps:
                if gpus % tp or shape.heads % tp or _kv_heads(shape) % tp or world % (pp * tp):
                    continue
                dp = world // (pp * tp)
                if workload.global_batch % dp:
                    continue  # the data-parallel groups would get unequal shares of the batch
                local = workload.global_batch // dp
                if kind == "naive_mp":
                    add(Layout(pp_degree=pp, schedule="naive", microbatches=1, **base), local if local >= 1 else None)
                    continue
                k_fixed = strategy.accumulation or 1
                micro = _micro_batch(workload, dp, at_most=local // pp) if local >= pp else None
                if strategy.microbatches:
                    per_step = strategy.microbatches * k_fixed
                    micro = local // per_step if local % per_step == 0 else None
                if micro is None or micro < 1 or (local // micro) % k_fixed:
                    continue
                schedule = strategy.schedule if kind == "pipeline" else "1F1B"
                accumulations = [k_fixed]
                if kind == "pipeline" and workload.pipeline_accumulation and not (strategy.microbatches or strategy.accumulation):
                    accumulations = pipeline_accumulations(local // micro, pp, schedule)
                for k in accumulations:
                    add(Layout(dp_degree=dp, tp_degree=tp, pp_degree=pp, schedule=schedule, microbatches=local // micro // k,
                               accumulation=k, virtual_stages=strategy.virtual_stages, **base), micro)
    else:
        raise ValueError(f"unknown strategy {kind!r}; choose one of {', '.join(KINDS)}")
    return out


# ----- evaluation ------------------------------------------------------------------------------------
def usable_bytes(instance: InstanceType, constraints: Constraints) -> float:
    """What a GPU of ``instance`` holds for training: the memory the driver reports, less the margin."""
    return instance.gpu_memory_gib * GIB * (1 - constraints.memory_margin)


def evaluate(workload: Workload, instance: InstanceType, count: int, layout: Layout, micro: int, price: float,
             constraints: Constraints, assumptions: Assumptions,
             memo: dict | None = None) -> tuple[Candidate | None, MemoryEstimate]:
    """The candidate when it fits in memory (else None), and its memory estimate. ``memo`` keeps the estimates of
    one plan: memory depends on the layout alone, and types with as many GPUs share their layouts."""
    shape = workload.shape
    memory = memo.get((layout, micro)) if memo is not None else None
    if memory is None:
        memory = shape.memory(layout, micro)
        if memo is not None:
            memo[(layout, micro)] = memory
    if memory.total > usable_bytes(instance, constraints):
        return None, memory
    step = step_time(workload, instance, count, layout, micro, assumptions)
    rate = hourly_usd(price, count, constraints.spot, assumptions)
    return Candidate(instance.name, count, layout, micro, memory, step, rate,
                     job_hours(step.total_s, workload.steps, assumptions)), memory


def _fits(workload: Workload, instance: InstanceType, layout: Layout, micro: int, constraints: Constraints,
          memo: dict) -> bool:
    memory = memo.get((layout, micro))
    if memory is None:
        memory = memo[(layout, micro)] = workload.shape.memory(layout, micro)
    return memory.total <= usable_bytes(instance, constraints)


def lower_bound_usd(workload: Workload, instance: InstanceType, count: int, price: float,
                    constraints: Constraints, assumptions: Assumptions) -> float:
    """No configuration of ``count`` x ``instance`` costs less: compute alone, no communication, no bubble."""
    peak = instances().gpu(instance.name).peak_for(workload.precision) * 1e12
    compute = workload.step_flops("none") / (instance.gpu_count * count * peak * assumptions.mfu_for(instance.name))
    return hourly_usd(price, count, constraints.spot, assumptions) * job_hours(compute, workload.steps, assumptions)


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


def plan(workload: Workload, strategy: StrategyRequest = StrategyRequest(), constraints: Constraints = Constraints(),
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
        for count in counts:
            rate = hourly_usd(price, count, constraints.spot, assumptions)
            if constraints.max_usd_per_hour is not None and rate > constraints.max_usd_per_hour:
                seen.over_cap.setdefault(instance.name, (count, rate))
                continue
            pairs.append((lower_bound_usd(workload, instance, count, price, constraints, assumptions), instance, count, price))
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
        shape_key = (instance.gpu_count, instances().gpu(instance.name).interconnect.startswith("NVLink"), count)
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
            if layout.pp_degree > 1 and len(best) >= keep and _fits(workload, instance, layout, micro, constraints, memory_memo):
                # a pipeline that fits, but whose compute and bubble alone cost more than the ``keep`` cheapest
                compute_key = (instance.name, count, layout.tp_degree, layout.pp_degree, layout.recompute)
                seconds = compute_memo.get(compute_key)
                if seconds is None:
                    seconds = compute_memo[compute_key] = compute_s(workload, instance, count, layout, assumptions)
                floor_s = seconds / (1 - pipeline_bubble(layout))
                floor = hourly_usd(price, count, constraints.spot, assumptions) * job_hours(floor_s, workload.steps, assumptions)
                if floor > -best[0] * (1 + TIE_SHARE):
                    seen.bounded.setdefault(instance.name, []).append((count, floor))
                    seen.fitted.add(instance.name)
                    fitted.add((*base, layout.recompute))
                    continue
            candidate, memory = evaluate(workload, instance, count, layout, micro, price, constraints, assumptions, memory_memo)
            if candidate is not None:
                fitted.add((*base, layout.recompute))
            if candidate is None:
                seen.memory(instance.name, memory, count, layout, micro)
                if layout.recompute == "full":
                    too_big.add(key)
            elif limit_h is not None and candidate.hours > limit_h:
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
