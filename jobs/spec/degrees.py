"""Parallel-degree arithmetic: pure checks that the degrees of a job multiply and divide as they must.

One function per strategy family, each returning every problem (never raising), with every factor
named in the message: "dp(2) x pp(4) x tp(2) = 16 != 2 instances x 4 processes = 8".
"""

from __future__ import annotations

from dataclasses import dataclass

from smjobs.errors import Problem
from smjobs.spec.strategies import (
    MULTI_STAGE_SCHEDULES,
    V_SHAPED_SCHEDULES,
    ModelParallelV1,
    ModelParallelV2,
    NaiveModelParallel,
    PipelineParallel,
)


@dataclass(frozen=True)
class Cluster:
    """What the degrees must fill."""

    instance_count: int
    processes_per_host: int
    gpus_per_instance: int | None = None

    @property
    def world_size(self) -> int:
        return self.instance_count * self.processes_per_host

    def describe(self) -> str:
        return f"{self.instance_count} instance{'s' if self.instance_count != 1 else ''} x {self.processes_per_host} processes = {self.world_size}"


def divisors(n: int) -> list[int]:
    return [k for k in range(1, n + 1) if n % k == 0]


def check_pipeline(s: PipelineParallel, cluster: Cluster, global_batch_size: int | None, num_layers: int | None) -> list[Problem]:
    out = []
    product = s.dp_degree * s.pp_degree * s.tp_degree
    if product != cluster.world_size:
        world, model = cluster.world_size, s.pp_degree * s.tp_degree
        fix = (f"set dp_degree to {world // model} (dp({world // model}) x pp({s.pp_degree}) x tp({s.tp_degree}) = {world}), "
               "or change instance_count or processes_per_host." if world % model == 0 else
               f"pp_degree x tp_degree must divide {world}: e.g. pp_degree from {divisors(world)} with tp_degree 1.")
        out.append(Problem(
            "distribution",
            f"dp({s.dp_degree}) x pp({s.pp_degree}) x tp({s.tp_degree}) = {product} != {cluster.describe()}.",
            fix,
        ))
    if s.tp_degree > 1 and cluster.processes_per_host % s.tp_degree:
        out.append(Problem("distribution.tp_degree", f"tp({s.tp_degree}) does not divide the {cluster.processes_per_host} processes per host; "
                           "tensor parallelism must stay within an instance (its all-reduces run every layer).",
                           f"use a tp_degree from {divisors(cluster.processes_per_host)}."))
    v, p, m = s.virtual_stages, s.pp_degree, s.microbatches
    if s.schedule in ("GPipe", "1F1B") and v != 1:
        out.append(Problem("distribution.virtual_stages", f"{s.schedule} runs one stage per rank, not {v}.",
                           "set virtual_stages: 1, or use Interleaved1F1B for several stages per rank."))
    if s.schedule in MULTI_STAGE_SCHEDULES and s.schedule not in V_SHAPED_SCHEDULES and v < 2:
        out.append(Problem("distribution.virtual_stages", f"{s.schedule} interleaves several stages per rank; virtual_stages is {v}.",
                           "set virtual_stages to 2 or more, or use 1F1B."))
    if s.schedule in V_SHAPED_SCHEDULES and v != 2:
        out.append(Problem("distribution.virtual_stages", f"{s.schedule} places exactly 2 stages on each rank (a V); virtual_stages is {v}.",
                           "set virtual_stages: 2."))
    if s.schedule == "1F1B" and m < p:
        out.append(Problem("distribution.microbatches", f"1F1B needs at least as many micro-batches as stages: {m} < pp({p}).",
                           f"set microbatches to {p} or more (more micro-batches, smaller bubble: (p-1)/(m+p-1))."))
    if s.schedule in ("Interleaved1F1B", "InterleavedZeroBubble"):
        rounds = max(1, m // p)
        if m % rounds:
            out.append(Problem("distribution.microbatches", f"{s.schedule} runs micro-batches in rounds of pp({p}); {m} is not a multiple of its {rounds} rounds.",
                               f"use a multiple of {p}, e.g. {p * rounds} or {p * (rounds + 1)}."))
    if s.schedule == "DualPipeV" and m < p * v:
        out.append(Problem("distribution.microbatches", f"DualPipeV needs at least as many micro-batches as stages: {m} < {p * v}.",
                           f"set microbatches to {p * v} or more."))
    if global_batch_size is not None:
        if global_batch_size % s.dp_degree:
            out.append(Problem("hyperparameters.global_batch_size", f"{global_batch_size} does not split over dp({s.dp_degree}) replicas.",
                               f"use a multiple of {s.dp_degree}."))
        elif (global_batch_size // s.dp_degree) % (m * s.accumulation_steps):
            per_replica, k = global_batch_size // s.dp_degree, s.accumulation_steps
            steps = f" x {k} accumulation steps" if k > 1 else ""
            out.append(Problem("distribution.microbatches", f"{m} micro-batches{steps} do not divide the per-replica batch of {per_replica} "
                               f"(global_batch_size {global_batch_size} / dp({s.dp_degree})).",
                               f"use microbatches from {[d for d in divisors(per_replica // k if per_replica % k == 0 else per_replica) if d <= 64]}"
                               + (" (or fewer accumulation_steps)." if k > 1 else ".")))
    layers = s.num_layers or num_layers
    if layers is not None and layers < p * v:
        out.append(Problem("distribution.pp_degree", f"{layers} layers cannot fill pp({p}) x virtual_stages({v}) = {p * v} stages.",
                           f"use at most {layers} stages in all, or a deeper model."))
    return out


def check_naive(s: NaiveModelParallel, cluster: Cluster, num_layers: int | None) -> list[Problem]:
    layers = s.num_layers or num_layers
    if layers is not None and layers < cluster.world_size:
        return [Problem("distribution", f"{layers} layers cannot be split over {cluster.describe()} processes.",
                        f"use at most {layers} processes, or a deeper model.")]
    return []


def check_smp_v2(s: ModelParallelV2, cluster: Cluster) -> list[Problem]:
    out = []
    world, tp, cp, hsd, ep = cluster.world_size, s.tensor_parallel_degree, s.context_parallel_degree, s.hybrid_shard_degree, s.expert_parallel_degree
    if world % (tp * cp):
        out.append(Problem("distribution", f"tp({tp}) x cp({cp}) = {tp * cp} does not divide {cluster.describe()}.",
                           f"choose tensor and context parallel degrees whose product divides {world}."))
    elif hsd and (world // tp) % hsd:
        out.append(Problem("distribution.hybrid_shard_degree", f"hybrid_shard_degree {hsd} does not divide the {world // tp} data-parallel "
                           f"processes ({world} / tp({tp})).", f"use one of {divisors(world // tp)}, or 0 to shard across all of them."))
    if hsd and cp > hsd:
        out.append(Problem("distribution.context_parallel_degree", f"context_parallel_degree {cp} > hybrid_shard_degree {hsd}; SMP v2 shards context within a shard group.",
                           f"use a context_parallel_degree of at most {hsd}."))
    if tp > cluster.processes_per_host:
        out.append(Problem("distribution.tensor_parallel_degree", f"tp({tp}) spans more than one instance ({cluster.processes_per_host} processes each).",
                           f"use at most {cluster.processes_per_host}."))
    if ep > 1 and (world // tp) % ep:
        out.append(Problem("distribution.expert_parallel_degree", f"expert_parallel_degree {ep} does not divide the {world // tp} data-parallel processes.",
                           f"use one of {divisors(world // tp)}."))
    return out


def check_smp_v1(s: ModelParallelV1, cluster: Cluster) -> list[Problem]:
    out = []
    model_parallel = s.partitions * s.tensor_parallel_degree
    if cluster.world_size % model_parallel:
        out.append(Problem("distribution", f"partitions({s.partitions}) x tp({s.tensor_parallel_degree}) = {model_parallel} does not divide {cluster.describe()}.",
                           f"choose partitions and tensor_parallel_degree whose product divides {cluster.world_size}."))
    if s.tensor_parallel_degree > 1 and not s.ddp:
        out.append(Problem("distribution.ddp", f"SMP v1 needs ddp: true with tensor_parallel_degree {s.tensor_parallel_degree} > 1.",
                           "set ddp: true."))
    if s.pipeline == "interleaved" and s.microbatches < s.partitions:
        out.append(Problem("distribution.microbatches", f"{s.microbatches} micro-batches < {s.partitions} partitions leave partitions idle.",
                           f"use at least {s.partitions} micro-batches."))
    return out
