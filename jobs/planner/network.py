"""How long collectives take, and how much of the data-parallel traffic the compute around it hides.

- Collectives are hierarchical rings, as NCCL runs them: inside an instance over NVLink or PCIe, across instances
  over the instance's network (EFA where it has it) shared by its GPUs, each at the share of its rate NCCL reaches
  (``catalog/utilisation.json``: about 80% of NVLink, about half of EFA's rate on p4d). An all-reduce of B bytes
  over g GPUs per instance on c instances takes 2(g-1)/g x B / link + 2(c-1)/c x B / network; an all-gather or a
  reduce-scatter half.
- Exposed data-parallel time: a collective overlaps compute only up to the compute there is to hide it.
  DDP all-reduces gradient buckets while the last micro-batch's backward runs (the scripts skip the sync on the
  others); the last bucket waits for the end of backward. FSDP gathers one unit (a transformer block) ahead:
  unit i+1's all-gather runs during unit i's forward, and in backward the gather of the next unit and the
  reduce-scatter of the last one run during a unit's backward; the first gathers (the root's embeddings and
  output layer, the first block) and the last reduce-scatters are exposed.
Pure functions of catalog data; no torch, no AWS.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache

from smjobs.catalog import InstanceType, instances
from smjobs.catalog.utilisation import utilisation
from smjobs.planner.memory import Layout, Precision

DDP_BUCKET_BYTES = 25 * 2**20
"""DistributedDataParallel's default bucket_cap_mb (25 MiB): the last bucket's all-reduce cannot overlap."""


@cache  # the planner asks for every configuration it costs; the catalogs do not change while it runs
def bandwidths(instance: InstanceType) -> tuple[float, float]:
    """(inside one instance per GPU and direction, the whole instance's network) in bytes/s, at the share of the
    links' rates that NCCL's rings reach."""
    gpu = instances().gpu(instance.name)
    shares = utilisation()
    network = instance.network_gbps * 1e9 / 8 * shares.network_efficiency
    inside = gpu.intra_node_gbytes_per_s * 1e9 * shares.link_efficiency(gpu.interconnect) if instance.gpu_count > 1 else network
    return inside, network


def grad_bytes(precision: Precision) -> int:
    return 4 if precision in ("fp32", "tf32") else 2


def ring_s(passes: int, nbytes: float, per_instance: int, instance_count: int, instance: InstanceType) -> float:
    """Seconds of a hierarchical ring collective over ``per_instance`` GPUs on each of ``instance_count`` instances:
    ``passes`` is 2 for an all-reduce, 1 for an all-gather or a reduce-scatter. Inside an instance each GPU moves
    (g-1)/g of the buffer per pass over its link; across instances each GPU carries 1/g of it over its share of the
    instance's network (every GPU of the instance communicates at once), (c-1)/c per pass."""
    inside, network = bandwidths(instance)
    g, c = per_instance, instance_count
    seconds = passes * (g - 1) / g * nbytes / inside if g > 1 else 0.0
    if c > 1:
        seconds += passes * (c - 1) / c * (nbytes / g) / (network / instance.gpu_count)
    return seconds


def group_shape(group: int, stride: int, gpus: int) -> tuple[int, int]:
    """(members per instance, instances spanned) of a group of ``group`` ranks ``stride`` apart (ranks fill
    instances in order)."""
    per_instance = max(1, min(group, gpus // stride)) if stride <= gpus else 1
    return per_instance, -(-group // per_instance)


@dataclass(frozen=True)
class Units:
    """What FSDP gathers one at a time on one GPU: ``count`` blocks of ``block_parameters`` each, and the root's
    parameters (embeddings, final norm, output layer), gathered first in forward and reduced last in backward."""

    count: int
    block_parameters: float
    root_parameters: float


def fsdp_units(shape, layout: Layout) -> Units:
    """A described transformer's blocks (of this pipeline stage, split by tensor parallelism); a traced model's
    largest wrapping unit, as many times as fills its parameters."""
    tp = layout.tp_degree
    if hasattr(shape, "layer_parameters"):
        layers = -(-shape.layers // layout.pp_degree)
        root = max(0.0, shape.parameter_count - shape.layers * shape.layer_parameters) / (tp * layout.pp_degree)
        return Units(layers, shape.layer_parameters / tp, root)
    unit = max(1, shape.largest_unit_parameters)
    count = max(1, math.floor(shape.parameter_count / unit))
    return Units(count, shape.parameter_count / count, 0.0)


@dataclass(frozen=True)
class Traffic:
    """Data-parallel communication of one step: all of it, and what compute does not hide."""

    total_s: float
    exposed_s: float


def _pipelined(units: int, comm_s: float, compute_s: float) -> float:
    """Exposed seconds of ``units`` collectives of ``comm_s`` each, unit i+1's running during unit i's compute of
    ``compute_s``: the first one waits in full, each later one by what its unit's compute leaves uncovered."""
    return comm_s + (units - 1) * max(0.0, comm_s - compute_s) if units else 0.0


def data_parallel_traffic(shape, precision: Precision, instance: InstanceType, layout: Layout, micro_batches: float,
                          forward_s: float, backward_s: float) -> Traffic:
    """Gradient and parameter traffic of one step and its exposed part, given one micro-batch's forward and
    backward compute seconds (backward including what it recomputes)."""
    n = layout.dp_degree
    if n == 1:
        return Traffic(0.0, 0.0)
    width = grad_bytes(precision)
    gpus = instance.gpu_count
    if layout.sharding == "none":
        replica = shape.parameter_count / (layout.tp_degree * layout.pp_degree) * width
        g, c = group_shape(n, layout.tp_degree, gpus)  # tensor parallel ranks are innermost
        total = ring_s(2, replica, g, c, instance)
        last_bucket = ring_s(2, min(DDP_BUCKET_BYTES, replica), g, c, instance)
        return Traffic(total, max(0.0, total - backward_s) + min(last_bucket, total))

    units = fsdp_units(shape, layout)
    group = min(layout.shard_degree or gpus, n) if layout.sharding == "hybrid_shard" else n
    kg, kc = group_shape(group, layout.tp_degree, gpus)
    rg, rc = group_shape(n // group, group * layout.tp_degree, gpus)

    def gather(parameters: float) -> float:
        return ring_s(1, parameters * width, kg, kc, instance)

    def reduce(parameters: float) -> float:  # reduce-scatter in the shard group, then all-reduce across replicas
        across = ring_s(2, parameters * width / group, rg, rc, instance) if n // group > 1 else 0.0
        return ring_s(1, parameters * width, kg, kc, instance) + across

    block, root = units.block_parameters, units.root_parameters
    f_unit, b_unit = forward_s / units.count, backward_s / units.count
    regather = layout.sharding != "shard_grad_op"  # full and hybrid sharding free the blocks after forward
    forward = gather(root) + _pipelined(units.count, gather(block), f_unit)
    backward_comm = (gather(block) if regather else 0.0) + reduce(block)
    # the last block's backward waits for its gather; each later gather and the previous reduce-scatter run during
    # a block's backward; the first block's and the root's reduce-scatters come after the last compute
    backward = ((gather(block) if regather else 0.0) + (units.count - 1) * max(0.0, backward_comm - b_unit)
                + reduce(block) + reduce(root))
    reduce_only = (units.count - 1) * max(0.0, reduce(block) - b_unit) + reduce(block) + reduce(root)
    per_micro_total = gather(root) + units.count * (gather(block) + backward_comm) + reduce(root)
    if layout.unsharded_microbatches:  # gathered in the first micro-batch's forward, reduced after the last's backward
        return Traffic(gather(root) + units.count * (gather(block) + reduce(block)) + reduce(root), forward + reduce_only)
    return Traffic(micro_batches * per_micro_total, micro_batches * (forward + backward))
