"""The layouts the planner may choose from: for a strategy on some instances, every combination of data, tensor
and pipeline parallel degrees (and FSDP sharding, recomputation, sequence parallelism, pipeline accumulation) that
divides the GPUs, the layers, the heads and the global batch, each with its micro-batch.

Only what the degrees allow is decided here; what fits and what it costs is ``smjobs.planner.plan``'s.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from smjobs.catalog import InstanceType
from smjobs.planner.cost import Workload
from smjobs.planner.memory import Layout, for_batch
from smjobs.spec.degrees import divisors

KINDS = ("ddp", "smddp", "fsdp", "pipeline", "naive_mp", "smp_v2", "smp_v1")


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
        layout = for_batch(layout, workload.global_batch, micro)
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
    tp_choices = [strategy.tp_degree] if strategy.tp_degree else divisors(gpus) if instance.nvlink else [1]
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
