"""Step time and cost of one training configuration: compute, communication, pipeline bubble, price.

The model, per optimizer step (documented with its assumptions in the README, "Choosing an instance"):
- compute: the FLOPs the GPUs execute (6 x parameters + 12 x layers x hidden x seq_len per token, plus the
  recomputed forward) over the peak of the precision used (bf16/fp16 tensor cores, TF32, or plain fp32) times an
  assumed utilisation of the executed FLOPs (default 40%; it equals MFU when nothing is recomputed);
- collectives are hierarchical rings, as NCCL runs them: inside an instance over NVLink or PCIe, across instances
  over the instance's network (EFA where it has it) shared by its GPUs. An all-reduce of B bytes over g GPUs per
  instance on c instances takes 2(g-1)/g x B / link + 2(c-1)/c x B / network; an all-gather or reduce-scatter half;
- data parallel: DDP all-reduces the gradients once per step; FSDP gathers the parameters (twice under
  full_shard: forward and backward) and reduce-scatters the gradients for every micro-batch, unless the layout
  keeps them unsharded between micro-batches (then once per step); hybrid sharding adds an all-reduce of 1/k of
  them across replicas. Overlap with the backward pass (DDP) or the whole step (FSDP) hides part of it;
- tensor parallel: 4 all-reduces (or all-gather + reduce-scatter pairs under SP) of a micro-batch's activations
  per layer, 6 with full recomputation, inside one instance, not overlapped;
- pipeline: activation and gradient sends per micro-batch, and the schedule's bubble
  (``smjobs.schedules.model.theoretical_bubble``) stretching the busy time; layers that do not split evenly over
  the stages make the fullest stage set the pace (ceil(L/p) x p / L of the even split's compute).
Cost: the instances' hourly price (spot: an assumed fraction of it) over the steps plus a fixed start-up.
Pure functions of catalog data; no torch, no AWS.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from smjobs.catalog import InstanceType, instances
from smjobs.planner.factory import ModelProfile
from smjobs.planner.memory import Layout, Loss, Precision, Recompute, TransformerShape
from smjobs.schedules.model import theoretical_bubble


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
    loss: Loss = "eager"
    """The loss kernel over the vocabulary (``plan.loss``): what the logits cost in memory."""
    recompute_modes: tuple[Recompute, ...] = ("full", "none", "selective", "selective_op")
    """What the planner may choose from when ``recompute`` is None: what the script can do (the bundled train.py
    does none and full), full first."""

    def step_flops(self, recompute: Recompute = "none") -> float:
        """FLOPs the GPUs execute per step (recomputation included)."""
        return self.shape.training_flops(self.global_batch, recompute)

    def model_step_flops(self) -> float:
        """FLOPs per step as MFU counts them (no recomputation)."""
        return self.shape.model_flops(self.global_batch)


@dataclass(frozen=True)
class Assumptions:
    """Numbers the estimate rests on that no catalog gives; the planner's output repeats them."""

    mfu: float = 0.40
    """Share of the GPUs' peak FLOPs (of the precision used) that the executed FLOPs reach. It is the model FLOPs
    utilisation (MFU) of a run without recomputation; recomputation executes more FLOPs at the same rate, so its
    MFU is lower (``achieved_mfu``). A figure measured on a run with recomputation converts with
    ``from_measured``."""
    startup_s: float = 300.0
    """Billed time before the first step (image pull, data download, process start)."""
    spot_price_fraction: float = 0.40
    """Managed spot price as a share of on-demand (AWS quotes savings of up to 90%; varies by type and time)."""
    spot_interruptions_per_hour: float = 1 / 24
    """Assumed rate at which spot capacity is reclaimed (AWS publishes no rate for SageMaker; GPU capacity is
    among the most reclaimed): what a spot job without checkpoints loses by restarting from the beginning."""


def expected_billed_hours(hours: float, interruptions_per_hour: float) -> float:
    """Billed hours of a job of ``hours`` that restarts from the beginning at every interruption (a Poisson
    process): (e^(rate x hours) - 1) / rate."""
    return math.expm1(interruptions_per_hour * hours) / interruptions_per_hour


def from_measured(mfu: float, recompute: Recompute, workload: Workload) -> Assumptions:
    """Assumptions whose utilisation reproduces an MFU measured on a run of ``workload`` with ``recompute``."""
    return Assumptions(mfu=mfu * workload.step_flops(recompute) / workload.model_step_flops())


def achieved_mfu(workload: Workload, recompute: Recompute, assumptions: Assumptions) -> float:
    """The MFU a plan reaches: model FLOPs over executed FLOPs times the assumed utilisation."""
    return assumptions.mfu * workload.model_step_flops() / workload.step_flops(recompute)


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
    """(inside one instance per GPU and direction, the whole instance's network) in bytes/s."""
    gpu = instances().gpu(instance.name)
    network = instance.network_gbps * 1e9 / 8
    inside = gpu.intra_node_gbytes_per_s * 1e9 if instance.gpu_count > 1 else network
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


def _group_shape(group: int, stride: int, gpus: int) -> tuple[int, int]:
    """(members per instance, instances spanned) of a group of ``group`` ranks ``stride`` apart (ranks fill
    instances in order)."""
    per_instance = max(1, min(group, gpus // stride)) if stride <= gpus else 1
    return per_instance, -(-group // per_instance)


def data_parallel_s(workload: Workload, instance: InstanceType, layout: Layout, micro_batches: float) -> float:
    """Gradient and parameter traffic of one step, before overlap."""
    n = layout.dp_degree
    if n == 1:
        return 0.0
    replica = workload.shape.parameter_count / (layout.tp_degree * layout.pp_degree) * grad_bytes(workload.precision)
    g, c = _group_shape(n, layout.tp_degree, instance.gpu_count)  # tensor parallel ranks are innermost
    if layout.sharding == "none":
        return ring_s(2, replica, g, c, instance)
    repeats = 1 if layout.unsharded_microbatches else micro_batches
    gathers = 2 if layout.sharding == "full_shard" and not layout.unsharded_microbatches else 1
    if layout.sharding == "hybrid_shard":
        k = min(layout.shard_degree or g, n)
        kg, kc = _group_shape(k, layout.tp_degree, instance.gpu_count)
        rg, rc = _group_shape(n // k, k * layout.tp_degree, instance.gpu_count)
        inside = (gathers + 1) * ring_s(1, replica, kg, kc, instance)
        across = ring_s(2, replica / k, rg, rc, instance) if n // k > 1 else 0.0
        return repeats * (inside + across)
    return repeats * (gathers + 1) * ring_s(1, replica, g, c, instance)


def step_time(workload: Workload, instance: InstanceType, count: int, layout: Layout, micro_batch: int,
              assumptions: Assumptions = Assumptions()) -> StepTime:
    """Seconds per optimizer step of ``workload`` on ``count`` x ``instance`` laid out as ``layout``."""
    shape = workload.shape
    gpus = instance.gpu_count
    world = gpus * count
    peak = instances().gpu(instance.name).peak_for(workload.precision) * 1e12
    compute = workload.step_flops(layout.recompute) / (world * peak * assumptions.mfu)
    if layout.pp_degree > 1:  # described transformers only: a traced model has no pipeline layouts
        # layers that do not divide evenly: the stage with the most sets the pace, the others wait for it
        compute *= -(-shape.layers // layout.pp_degree) * layout.pp_degree / shape.layers
    inside, network = bandwidths(instance)
    bytes_per_value = grad_bytes(workload.precision)

    local = workload.global_batch / layout.dp_degree
    micro_batches = max(1.0, local / micro_batch)
    dp_time = data_parallel_s(workload, instance, layout, micro_batches)
    if dp_time:
        overlap = 2 / 3 * compute if layout.sharding == "none" else compute  # DDP: the backward pass; FSDP: all of it
        dp_time = max(0.0, dp_time - overlap)

    tp_time = 0.0
    if layout.tp_degree > 1 or layout.pp_degree > 1:  # described transformers only: a traced model has neither
        activation_bytes = shape.seq_len * micro_batch * shape.hidden * bytes_per_value
    if layout.tp_degree > 1:
        t = layout.tp_degree
        stage_layers = -(-shape.layers // layout.pp_degree)
        per_layer = 6 if layout.recompute == "full" else 4
        tp_time = stage_layers * micro_batches * per_layer * 2 * (t - 1) / t * activation_bytes / inside
    pp_time, bubble = 0.0, 0.0
    if layout.pp_degree > 1:
        pp_spans_instances = count > 1 and layout.tp_degree * layout.pp_degree > gpus
        link = network / gpus if pp_spans_instances else inside
        pp_time = micro_batches * 2 * activation_bytes / link
        bubble = theoretical_bubble(layout.schedule, layout.pp_degree, layout.microbatches, layout.virtual_stages)
        if layout.schedule == "naive":
            bubble = (layout.pp_degree - 1) / layout.pp_degree
    return StepTime(compute, dp_time, tp_time, pp_time, bubble)


def hourly_usd(price_per_instance: float, count: int, spot: bool, assumptions: Assumptions = Assumptions()) -> float:
    return price_per_instance * count * (assumptions.spot_price_fraction if spot else 1.0)


def job_hours(step_s: float, steps: int, assumptions: Assumptions = Assumptions()) -> float:
    return (step_s * steps + assumptions.startup_s) / 3600
