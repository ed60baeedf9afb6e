"""Step time and cost of one training configuration: compute, exposed communication, pipeline bubble, price.

The model, per optimizer step (documented with its assumptions in docs/planner.md):
- compute: the FLOPs the GPUs execute (6 x parameters + 12 x layers x hidden x seq_len per token, plus the
  recomputed forward) over the peak of the precision used (bf16/fp16 tensor cores, TF32, or plain fp32) times a
  model-FLOPs utilisation: the GPU model's default (``catalog/utilisation.json``, fitted to published runs) or
  ``plan.mfu``. It is the MFU of a run without recomputation; recomputed FLOPs run at the same rate, so
  recomputation costs time once, through the FLOPs it adds, and lowers the MFU a plan reports (``achieved_mfu``);
- data-parallel traffic (``smjobs.planner.network``): DDP all-reduces the gradients once per step during the last
  micro-batch's backward; FSDP gathers the parameters (twice under full_shard: forward and backward) and
  reduce-scatters the gradients for every micro-batch, unless the layout keeps them unsharded between micro-batches
  (then once per step), one block ahead of the compute that hides it; hybrid sharding adds an all-reduce of 1/k
  of them across replicas. Only what compute does not hide counts;
- tensor parallel: 4 all-reduces (or all-gather + reduce-scatter pairs under SP) of a micro-batch's activations
  per layer, 6 with full recomputation, inside one instance, not overlapped;
- pipeline: activation and gradient sends per micro-batch, and the schedule's bubble
  (``smjobs.schedules.model.theoretical_bubble``) on top of the per-micro-batch compute, once per schedule step
  (``Layout.accumulation`` steps per optimizer step); layers that do not split evenly over the stages make the
  fullest stage set the pace (ceil(L/p) x p / L of the even split's compute).
Cost: the instances' hourly price (spot: an assumed fraction of it) over the steps plus a fixed start-up.
Pure functions of catalog data; no torch, no AWS.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache

from smjobs.catalog import InstanceType, instances
from smjobs.catalog.utilisation import MfuDefault, utilisation
from smjobs.planner.factory import ModelProfile
from smjobs.planner.memory import Layout, Loss, Precision, Recompute, TransformerShape
from smjobs.planner.network import bandwidths, data_parallel_traffic, grad_bytes
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
    sequence_parallel: bool | None = None
    """Tensor-parallel layouts split the norms' and dropouts' activations too (Korthikanti's sequence
    parallelism); None lets the planner choose, False for scripts that do not (the bundled ones)."""
    pipeline_accumulation: bool = True
    """A pipeline may accumulate gradients over several schedule steps per optimizer step (the bundled
    train_pipeline.py's ``--pp_accumulation_steps``)."""

    def step_flops(self, recompute: Recompute = "none") -> float:
        """FLOPs the GPUs execute per step (recomputation included)."""
        return _training_flops(self.shape, self.global_batch, recompute)

    def model_step_flops(self) -> float:
        """FLOPs per step as MFU counts them (no recomputation)."""
        return _model_flops(self.shape, self.global_batch)


@cache  # asked for every configuration a plan costs, of the same few (shape, batch) pairs
def _training_flops(shape, sequences: int, recompute: str) -> float:
    return shape.training_flops(sequences, recompute)


@cache
def _model_flops(shape, sequences: int) -> float:
    return shape.model_flops(sequences)


@dataclass(frozen=True)
class Assumptions:
    """Numbers the estimate rests on that no catalog gives; the planner's output repeats them."""

    mfu: float | None = None
    """Model FLOPs utilisation of a run without recomputation: the share of the GPUs' peak (of the precision used)
    the executed FLOPs reach. None takes the GPU model's default (``catalog/utilisation.json``, fitted to
    published runs); recomputation executes more FLOPs at the same rate, so its MFU is lower (``achieved_mfu``). A
    figure measured on a run with recomputation converts with ``from_measured``."""
    startup_s: float = 300.0
    """Billed time before the first step (image pull, data download, process start)."""
    spot_price_fraction: float = 0.40
    """Managed spot price as a share of on-demand (AWS quotes savings of up to 90%; varies by type and time)."""
    spot_interruptions_per_hour: float = 1 / 24
    """Assumed rate at which spot capacity is reclaimed (AWS publishes no rate for SageMaker; GPU capacity is
    among the most reclaimed): what a spot job without checkpoints loses by restarting from the beginning."""
    defaults: tuple[tuple[str, MfuDefault], ...] = ()
    """(GPU model, default) pairs that replace the catalog's defaults: how they are fitted."""

    def mfu_for(self, instance_type: str, width: float | None = None) -> float:
        """The utilisation assumed on ``instance_type``'s GPUs for matmuls ``width`` wide on each GPU (hidden size
        over the tensor-parallel degree; None: wide): ``mfu`` when set, else their model's default at that width."""
        return self.mfu if self.mfu is not None else self.default_for(instance_type).at_width(width)

    def default_for(self, instance_type: str) -> MfuDefault:
        """The default utilisation of ``instance_type``'s GPU model: ``defaults``' where given, else the catalog's."""
        gpu = instances().types[instance_type].gpu_model
        return (self.defaults and dict(self.defaults).get(gpu)) or utilisation().mfu(gpu)

    def describe_mfu(self, instance_type: str, width: float | None = None) -> str:
        """The utilisation and where it comes from, as plans print it."""
        if self.mfu is not None:
            return f"{self.mfu:.0%} MFU (plan.mfu)"
        default = self.default_for(instance_type)
        at = default.at_width(width)
        wide = f" for {width:,.0f}-wide matmuls, {default.mfu:.0%} for wide ones" if at != default.mfu else ""
        return f"{at:.0%} MFU{wide} ({default.basis})"


def expected_billed_hours(hours: float, interruptions_per_hour: float) -> float:
    """Billed hours of a job of ``hours`` that restarts from the beginning at every interruption (a Poisson
    process): (e^(rate x hours) - 1) / rate."""
    return math.expm1(interruptions_per_hour * hours) / interruptions_per_hour


def from_measured(mfu: float, recompute: Recompute, workload: Workload) -> Assumptions:
    """Assumptions whose utilisation reproduces an MFU measured on a run of ``workload`` with ``recompute``."""
    return Assumptions(mfu=mfu * workload.step_flops(recompute) / workload.model_step_flops())


def achieved_mfu(workload: Workload, recompute: Recompute, mfu: float) -> float:
    """The MFU a plan reaches at utilisation ``mfu``: model FLOPs over executed FLOPs times it."""
    return mfu * workload.model_step_flops() / workload.step_flops(recompute)


@dataclass(frozen=True)
class StepTime:
    compute_s: float
    data_parallel_s: float
    """Gradient or parameter traffic that compute does not hide."""
    tensor_parallel_s: float
    pipeline_send_s: float
    bubble: float
    """Share of the step the pipeline's busiest rank idles."""
    data_parallel_total_s: float = 0.0
    """All of the data-parallel traffic, hidden or not."""

    @property
    def total_s(self) -> float:
        busy = self.compute_s + self.tensor_parallel_s + self.pipeline_send_s
        return busy / (1 - self.bubble) + self.data_parallel_s


def compute_s(workload: Workload, instance: InstanceType, count: int, layout: Layout, assumptions: Assumptions) -> float:
    """Seconds of compute per step on the busiest GPU: the executed FLOPs at the assumed utilisation, the fullest
    pipeline stage setting the pace."""
    shape = workload.shape
    width = shape.hidden / layout.tp_degree if hasattr(shape, "hidden") else None  # a traced model: unknown
    rate = instances().gpu(instance.name).peak_for(workload.precision) * 1e12 * assumptions.mfu_for(instance.name, width)
    seconds = workload.step_flops(layout.recompute) / (instance.gpu_count * count * rate)
    if layout.pp_degree > 1:  # described transformers only: a traced model has no pipeline layouts
        # layers that do not divide evenly: the stage with the most sets the pace, the others wait for it
        seconds *= -(-shape.layers // layout.pp_degree) * layout.pp_degree / shape.layers
    return seconds


def pipeline_bubble(layout: Layout) -> float:
    """Share of a schedule step the busiest pipeline rank idles (0 without a pipeline)."""
    if layout.pp_degree == 1:
        return 0.0
    if layout.schedule == "naive":
        return (layout.pp_degree - 1) / layout.pp_degree
    return theoretical_bubble(layout.schedule, layout.pp_degree, layout.microbatches, layout.virtual_stages)


def step_time(workload: Workload, instance: InstanceType, count: int, layout: Layout, micro_batch: int,
              assumptions: Assumptions = Assumptions()) -> StepTime:
    """Seconds per optimizer step of ``workload`` on ``count`` x ``instance`` laid out as ``layout``."""
    shape = workload.shape
    gpus = instance.gpu_count
    compute = compute_s(workload, instance, count, layout, assumptions)
    inside, network = bandwidths(instance)
    bytes_per_value = grad_bytes(workload.precision)

    local = workload.global_batch / layout.dp_degree
    micro_batches = max(1.0, local / micro_batch)
    per_micro = compute / micro_batches
    # the forward's share of the executed FLOPs: a third of the model's; the rest is backward (and recomputation)
    forward = per_micro * workload.model_step_flops() / 3 / workload.step_flops(layout.recompute)
    traffic = data_parallel_traffic(shape, workload.precision, instance, layout, micro_batches, forward, per_micro - forward)

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
        # sequence parallelism leaves each tensor-parallel rank 1/t of the boundary activations to send
        sent = activation_bytes / layout.tp_degree if layout.sequence_parallel else activation_bytes
        pp_time = micro_batches * 2 * sent / link
        # the bubble of each schedule step, over the per-micro-batch compute of its ``microbatches``
        bubble = pipeline_bubble(layout)
    return StepTime(compute, traffic.exposed_s, tp_time, pp_time, bubble, traffic.total_s)


def hourly_usd(price_per_instance: float, count: int, spot: bool, assumptions: Assumptions = Assumptions()) -> float:
    return price_per_instance * count * (assumptions.spot_price_fraction if spot else 1.0)


def job_hours(step_s: float, steps: int, assumptions: Assumptions = Assumptions()) -> float:
    return (step_s * steps + assumptions.startup_s) / 3600
