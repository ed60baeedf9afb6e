"""Step time and cost of one training configuration: compute, communication, pipeline bubble, price.

The model, per optimizer step (documented with its assumptions in the README, "Choosing an instance"):
- compute: 6 x parameters x tokens FLOPs (8 x with full recomputation) over the GPUs' dense bf16 peak times an
  assumed utilisation (MFU, default 40%);
- data-parallel gradient traffic: ring all-reduce 2(N-1)/N x gradient bytes (DDP, SMDDP); FSDP all-gathers the
  parameters twice and reduce-scatters the gradients, 3(N-1)/N x bytes (hybrid sharding: within the instance,
  plus an all-reduce of 1/k of them across instances). It overlaps with the backward pass (DDP) or with the
  whole step (FSDP's prefetch); only what is left over is added;
- tensor parallel: 4 all-reduces of a micro-batch's activations per layer (2 forward, 2 backward), inside one
  instance, not overlapped;
- pipeline: activation and gradient sends per micro-batch, and the schedule's bubble
  (``smjobs.schedule_model.theoretical_bubble``) stretching the busy time;
- bandwidth: NVLink or PCIe inside an instance (per GPU and direction); across instances each GPU gets its share
  of the instance's network (EFA where the instance has it).
Cost: the instances' hourly price (spot: an assumed fraction of it) over the steps plus a fixed start-up.
Pure functions of catalog data; no torch, no AWS.
"""

from __future__ import annotations

from dataclasses import dataclass

from smjobs.catalog import InstanceType, instances
from smjobs.planner.factory import ModelProfile
from smjobs.planner.memory import Layout, Precision, Recompute, TransformerShape
from smjobs.schedule_model import theoretical_bubble


@dataclass(frozen=True)
class Workload:
    """What is trained: the model, how many sequences per step, and for how many steps."""

    shape: TransformerShape | ModelProfile
    """The model, described or traced; ``shape.micro_batch`` is the largest micro-batch one GPU runs at once."""
    global_batch: int
    """Sequences per optimizer step, over all data-parallel replicas."""
    steps: int
    precision: Precision = "mixed"
    recompute: Recompute | None = None
    """Activation checkpointing; None lets the planner choose (none, selective or full)."""
    flash_attention: bool = True
    """Attention runs in a fused kernel that stores no score matrix (PyTorch SDPA does on these GPUs)."""

    def step_flops(self, recompute: Recompute = "none") -> float:
        return self.shape.training_flops(self.global_batch, recompute)


@dataclass(frozen=True)
class Assumptions:
    """Numbers the estimate rests on that no catalog gives; the planner's output repeats them."""

    mfu: float = 0.40
    """Share of the GPUs' peak dense FLOPs the training reaches (model FLOPs utilisation)."""
    startup_s: float = 300.0
    """Billed time before the first step (image pull, data download, process start)."""
    spot_price_fraction: float = 0.40
    """Managed spot price as a share of on-demand (AWS quotes savings of up to 90%; varies by type and time)."""


@dataclass(frozen=True)
class StepTime:
    compute_s: float
    data_parallel_s: float
    """Gradient or parameter traffic left over after overlap."""
    tensor_parallel_s: float
    pipeline_send_s: float
    bubble: float
    """Share of the step the pipeline's busiest rank idles."""

    @property
    def total_s(self) -> float:
        busy = self.compute_s + self.tensor_parallel_s + self.pipeline_send_s
        return busy / (1 - self.bubble) + self.data_parallel_s


def bandwidths(instance: InstanceType) -> tuple[float, float]:
    """(inside one instance, across instances) bytes/s per GPU and direction."""
    gpu = instances().gpu(instance.name)
    across = instance.network_gbps * 1e9 / 8 / instance.gpu_count
    inside = gpu.intra_node_gbytes_per_s * 1e9 if instance.gpu_count > 1 else across
    return inside, across


def grad_bytes(precision: Precision) -> int:
    return 4 if precision in ("fp32", "tf32") else 2


def step_time(workload: Workload, instance: InstanceType, count: int, layout: Layout, micro_batch: int,
              assumptions: Assumptions = Assumptions()) -> StepTime:
    """Seconds per optimizer step of ``workload`` on ``count`` x ``instance`` laid out as ``layout``."""
    shape = workload.shape
    gpus = instance.gpu_count
    world = gpus * count
    peak = instances().gpu(instance.name).peak_tflops * 1e12
    compute = workload.step_flops(layout.recompute) / (world * peak * assumptions.mfu)
    inside, across = bandwidths(instance)
    bytes_per_value = grad_bytes(workload.precision)

    # data parallel: one replica's parameters (split by tp and pp) are synchronised across dp_degree GPUs
    n = layout.dp_degree
    replica_bytes = shape.parameter_count / (layout.tp_degree * layout.pp_degree) * bytes_per_value
    model_parallel = layout.tp_degree * layout.pp_degree
    dp_spans_instances = count > 1 and n * layout.tp_degree > gpus  # tp stays inside an instance
    dp_time = 0.0
    if n > 1:
        if layout.sharding == "none":
            dp_time = 2 * (n - 1) / n * replica_bytes / (across if dp_spans_instances else inside)
            overlap = 2 / 3 * compute  # gradients are reduced while the backward pass (2/3 of compute) runs
        elif layout.sharding == "hybrid_shard":
            k = min(layout.shard_degree or gpus, n)
            r = n // k
            dp_time = 3 * (k - 1) / k * replica_bytes / inside
            if r > 1:
                dp_time += 2 * (r - 1) / r * replica_bytes / k / across
            overlap = compute
        else:
            # full_shard gathers the parameters in forward and again in backward; shard_grad_op keeps them from
            # forward to backward and gathers once; both reduce-scatter the gradients once
            factor = 3 if layout.sharding == "full_shard" else 2
            dp_time = factor * (n - 1) / n * replica_bytes / (across if dp_spans_instances else inside)
            overlap = compute
        dp_time = max(0.0, dp_time - overlap)

    local = workload.global_batch / n
    micro_batches = max(1.0, local / micro_batch)
    tp_time = 0.0
    if layout.tp_degree > 1 or layout.pp_degree > 1:  # described transformers only: a traced model has neither
        activation_bytes = shape.seq_len * micro_batch * shape.hidden * bytes_per_value
    if layout.tp_degree > 1:
        t = layout.tp_degree
        layers = shape.layers / layout.pp_degree
        tp_time = layers * micro_batches * 4 * 2 * (t - 1) / t * activation_bytes / inside
    pp_time, bubble = 0.0, 0.0
    if layout.pp_degree > 1:
        pp_spans_instances = count > 1 and model_parallel > gpus
        pp_time = micro_batches * 2 * activation_bytes / (across if pp_spans_instances else inside)
        bubble = theoretical_bubble(layout.schedule, layout.pp_degree, layout.microbatches, layout.virtual_stages)
        if layout.schedule == "naive":
            bubble = (layout.pp_degree - 1) / layout.pp_degree
    return StepTime(compute, dp_time, tp_time, pp_time, bubble)


def hourly_usd(price_per_instance: float, count: int, spot: bool, assumptions: Assumptions = Assumptions()) -> float:
    return price_per_instance * count * (assumptions.spot_price_fraction if spot else 1.0)


def job_hours(step_s: float, steps: int, assumptions: Assumptions = Assumptions()) -> float:
    return (step_s * steps + assumptions.startup_s) / 3600
