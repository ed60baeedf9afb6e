"""Analytic per-GPU training memory: model states, activations and a runtime overhead.

Sources (see also docs/planner.md, "Memory model"):
- Model states: mixed-precision Adam keeps 2 bytes of bf16/fp16 weights, 2 of gradients and 12 of optimizer
  state (fp32 master weights, momentum, variance) per parameter, 16 in all; sharding divides them as ZeRO
  stages do (Rajbhandari et al., ZeRO, arXiv 1910.02054): FSDP full shard 16/N, shard-grad-op 2 + 14/N.
- Activations of one transformer layer, s = sequence, b = micro-batch, h = hidden, a = heads, t = tensor
  parallel (Korthikanti et al., arXiv 2205.05198): s*b*h*(34 + 5*a*s/h) bytes without parallelism;
  s*b*h*(10 + 24/t + 5*a*s/(h*t)) with tensor parallelism; (34 + 5*a*s/h)*s*b*h/t with sequence parallelism;
  34*s*b*h/t with selective recomputation; 2*s*b*h with full recomputation.
- Tensor parallelism without sequence parallelism keeps the layer-norm and linear-layer inputs and the dropout
  masks whole on every rank (the 10 of the paper's 10 + 24/t); so does selective recomputation; full recomputation
  keeps each layer's input, split by t only under sequence parallelism, plus the whole activations of the one layer
  the backward pass is recomputing.
- PyTorch's autocast (fp16 or bf16) runs softmax in fp32: without a fused attention kernel its output is kept at 4
  bytes, plus the 16-bit copy the next matmul saves (the paper's fused Megatron softmax keeps 2).
- Logits under an eager loss: the 16-bit output of the last layer, its fp32 upcast, log-softmax's fp32 output
  (kept for backward) and the fp32 gradient: 14 bytes per logit under mixed precision, 12 in fp32 (3 to 4 fp32
  copies); a fused cross-entropy keeps the 4-byte gradient only, a chunked one none (``plan.loss``).
- Pipelines hold several micro-batches' activations at once: GPipe all m, 1F1B-style schedules up to p - k on stage
  k. torch.distributed.pipelining preallocates a receive buffer per micro-batch (stage.py): the activations it
  receives (every stage but the first) and the gradients (every stage but the last), m of each.
- Communication buffers: DDP keeps gradient buckets as large as the gradients; FSDP holds the unsharded
  parameters and gradients of the layer it computes and of the next one it prefetches, or all of them when the
  parameters stay unsharded between micro-batches.
- Precision: mixed keeps 16-bit weights and gradients plus an fp32 master copy and fp32 Adam state (16 bytes per
  parameter); pure bf16 keeps everything in bf16 (8 bytes with Adam); fp32 and tf32 keep 4-byte everything.
- The peak: with one micro-batch per step and no pipeline, backward frees each layer's activations as it writes
  that layer's gradients, so the peak is the larger of the two; otherwise (accumulation, pipelines) they coexist.
  PyTorch's caching allocator reserves more than it has allocated: a stated share of the allocated peak
  (``Layout.allocator_reserve``), on top of the CUDA context and NCCL's buffers (``overhead_gib``).
Everything is bytes unless a name says otherwise. Pure functions, no torch.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from functools import cache, cached_property
from typing import Literal

from smjobs.tables import count_text

GIB = 1024**3

Precision = Literal["fp32", "tf32", "mixed", "bf16"]
"""fp32: fp32 arithmetic and storage; tf32: fp32 storage, TF32 tensor-core matmuls; mixed: bf16/fp16 autocast with
fp32 master weights and optimizer state; bf16: pure bf16 weights, gradients and optimizer state."""
Optimizer = Literal["adam", "sgd", "sgd_momentum"]
Sharding = Literal["none", "full_shard", "shard_grad_op", "hybrid_shard"]
Recompute = Literal["none", "selective", "selective_op", "full"]
Loss = Literal["eager", "fused", "chunked"]
"""Activation recomputation: none; selective (Korthikanti's: the attention core); selective_op (torchtitan's
per-op policy: every other matmul output and the attention output are kept, the rest recomputed); full (each
layer's input is kept)."""


@dataclass(frozen=True)
class TransformerShape:
    """An analytic description of a decoder-only transformer and its micro-batch: GPT-style by default
    (4h GELU MLP, multi-head attention, dropout, tied embeddings), Llama-style with ``ffn_hidden``, ``gated_mlp``,
    ``kv_heads``, ``dropout=False`` and ``tied_embeddings=False``."""

    layers: int
    hidden: int
    heads: int
    seq_len: int
    vocab: int
    micro_batch: int = 1
    """Sequences per micro-batch on one GPU."""
    parameters: int | None = None
    """Total parameters; by default counted from the shape."""
    kv_heads: int | None = None
    """Key/value heads (grouped-query attention); by default ``heads``."""
    ffn_hidden: int | None = None
    """MLP width; by default 4 x hidden."""
    gated_mlp: bool = False
    """A gated MLP (SwiGLU: three matrices, two of them ``ffn_hidden`` wide) instead of GELU's two."""
    dropout: bool = True
    tied_embeddings: bool = True
    """The output layer reuses the input embedding (GPT-2); False keeps a separate one (Llama)."""

    @property
    def kv_share(self) -> float:
        return (self.kv_heads or self.heads) / self.heads

    @property
    def ffn_share(self) -> float:
        return (self.ffn_hidden or 4 * self.hidden) / self.hidden

    @cached_property
    def layer_parameters(self) -> float:
        """Matrix parameters of one block: Q and O, K and V (narrower under GQA), and the MLP."""
        h = self.hidden
        return h * h * (2 + 2 * self.kv_share) + h * h * self.ffn_share * (3 if self.gated_mlp else 2)

    @cached_property  # the planner asks thousands of times per plan
    def parameter_count(self) -> int:
        if self.parameters is not None:
            return self.parameters
        embeddings = self.vocab * self.hidden * (1 if self.tied_embeddings else 2)
        positions = 0 if self.gated_mlp else self.seq_len * self.hidden  # learned positions (GPT); RoPE has none
        return int(self.layers * self.layer_parameters + embeddings + positions)

    @property
    def matmul_parameters(self) -> int:
        """Parameters used in matmuls (6 FLOPs per token each): all but an untied input embedding's lookup table."""
        return self.parameter_count - (0 if self.tied_embeddings else self.vocab * self.hidden)

    def model_flops(self, sequences: int) -> float:
        """FLOPs of a training step over ``sequences`` as MFU counts them: 6 x matmul parameters per token plus
        12 x layers x hidden x seq_len per token for attention (PaLM's count, as torchtitan's)."""
        return 3 * (self._dense_forward(sequences) + self._attention_forward(sequences))

    def training_flops(self, sequences: int, recompute: Recompute = "none") -> float:
        """FLOPs the GPUs execute: the model FLOPs plus what is recomputed (the whole forward under full
        recomputation, the attention core under selective, half the matmuls under torchtitan's per-op policy)."""
        dense, attention = self._dense_forward(sequences), self._attention_forward(sequences)
        extra = {"none": 0.0, "selective": attention, "selective_op": dense / 2, "full": dense + attention}[recompute]
        return 3 * (dense + attention) + extra

    def _dense_forward(self, sequences: int) -> float:
        return 2.0 * self.matmul_parameters * sequences * self.seq_len

    def _attention_forward(self, sequences: int) -> float:
        return 4.0 * self.layers * self.hidden * self.seq_len * sequences * self.seq_len

    def memory(self, layout: Layout, micro_batch: int) -> MemoryEstimate:
        """Peak memory of one GPU of ``layout`` at ``micro_batch`` sequences."""
        return estimate(self if micro_batch == self.micro_batch else _at_micro_batch(self, micro_batch), layout)

    def describe(self) -> str:
        return (f"{count_text(self.parameter_count)} parameters ({self.layers} layers, hidden {self.hidden}, "
                f"{self.heads} heads, seq {self.seq_len})")


@cache
def _at_micro_batch(shape: TransformerShape, micro_batch: int) -> TransformerShape:
    return replace(shape, micro_batch=micro_batch)


@dataclass(frozen=True)
class Layout:
    """How training is spread: data, tensor and pipeline parallel degrees and the memory-saving options."""

    dp_degree: int = 1
    tp_degree: int = 1
    pp_degree: int = 1
    sharding: Sharding = "none"
    shard_degree: int | None = None
    """Processes a hybrid shard group spans (hybrid_shard only)."""
    precision: Precision = "mixed"
    optimizer: Optimizer = "adam"
    recompute: Recompute = "none"
    sequence_parallel: bool = False
    schedule: str = "1F1B"
    """Pipeline schedule (torch.distributed.pipelining's names), or "naive" for a sequential split."""
    microbatches: int = 1
    """Micro-batches per schedule step (pipelines)."""
    accumulation: int = 1
    """Schedule steps per optimizer step (pipelines): gradients accumulate over them, so a GPipe-style schedule
    holds ``microbatches`` micro-batches at once rather than the whole local batch."""
    virtual_stages: int = 1
    """Pipeline stages per rank (interleaved schedules)."""
    pipeline_runtime: Literal["torch", "megatron"] = "torch"
    """What runs the pipeline schedule: torch.distributed.pipelining (a receive buffer per micro-batch, sent outputs
    kept until their backward) or Megatron-LM (transient receives, sent outputs freed)."""
    activation_bytes: int = 2
    """Bytes per activation element: 2 under bf16/fp16 autocast, 4 in fp32."""
    dropout: bool = True
    """Dropout layers keep 1-byte masks."""
    loss: Loss = "eager"
    """How the script computes the loss over the vocabulary: what the logits cost (``logit_bytes``)."""
    flash_attention: bool = False
    """A fused attention kernel (FlashAttention, PyTorch SDPA's flash or memory-efficient kernels) keeps no
    s x s score matrix: the a*s^2*b terms vanish, as with selective recomputation."""
    softmax_fp32: bool = False
    """Unfused attention under autocast keeps softmax's fp32 output (what PyTorch does); False gives the paper's
    16-bit softmax."""
    unsharded_microbatches: bool = False
    """FSDP keeps the parameters and gradients unsharded from the first micro-batch to the last (FSDP2's
    ``set_reshard_after_backward(False)`` and ``set_requires_gradient_sync(False)``): one gather and one
    reduce-scatter per step instead of per micro-batch, for a whole unsharded copy in memory."""
    single_microbatch: bool = False
    """Each data-parallel rank runs its whole share of the batch as one micro-batch: no gradients are held from
    an earlier micro-batch while activations are (the planner sets it from the batch)."""
    overhead_gib: float = 1.5
    """CUDA context and NCCL buffers (0 for a CPU comparison)."""
    allocator_reserve: float = 0.10
    """The caching allocator's reserve and fragmentation, a stated margin on the allocated peak: what it holds in
    cached and split blocks beyond live tensors. torchtitan publishes reserved memory; the allocated estimate is
    0.88-0.90 of its two figures (0 for a comparison with allocated bytes)."""

    def __hash__(self) -> int:
        # a layout keys the plan's memos, thousands of lookups per plan: its hash (of 24 fields) is made once
        cached = self.__dict__.get("_hash")
        if cached is None:
            cached = hash(tuple(getattr(self, f.name) for f in fields(self)))
            object.__setattr__(self, "_hash", cached)
        return cached

    def __getstate__(self) -> dict:
        # a string's hash differs between processes: a pickled layout makes its own
        return {k: v for k, v in self.__dict__.items() if k != "_hash"}


@dataclass(frozen=True)
class MemoryEstimate:
    weights: float
    gradients: float
    optimizer: float
    activations: float
    buffers: float
    """DDP gradient buckets or FSDP's gathered layers."""
    overhead: float
    gradients_after_activations: bool = False
    """The step's gradients only come to exist as its activations are freed (one micro-batch, no pipeline,
    gradients set to None between steps): the peak is the larger of the two, not their sum."""
    reserve_share: float = 0.0
    """What the caching allocator reserves beyond the allocated peak, as a share of it (``Layout.allocator_reserve``)."""

    @property
    def allocated(self) -> float:
        """The peak of live tensors (what torch's MemTracker and max_memory_allocated count)."""
        if self.gradients_after_activations:
            # backward frees each layer's activations as it writes that layer's gradients: the peak is at one end
            return self.weights + self.optimizer + max(self.activations, self.gradients) + self.buffers
        return self.model_states + self.activations + self.buffers

    @property
    def reserve(self) -> float:
        return self.allocated * self.reserve_share

    @property
    def model_states(self) -> float:
        return self.weights + self.gradients + self.optimizer

    @cached_property  # the planner reads it several times per configuration
    def total(self) -> float:
        """What the GPU must hold: the allocated peak, the allocator's reserve on top, the fixed overhead."""
        return self.allocated + self.reserve + self.overhead

    @property
    def total_gib(self) -> float:
        return self.total / GIB

    def describe(self) -> str:
        names = ("weights", "gradients", "optimizer", "activations", "buffers", "reserve", "overhead")
        parts = ", ".join(f"{name} {getattr(self, name) / GIB:.1f}" for name in names)
        return f"{self.total_gib:.1f} GiB per GPU ({parts} GiB)"


def bytes_per_parameter(precision: Precision, optimizer: Optimizer) -> tuple[int, int, int]:
    """(weights, gradients, optimizer state) bytes per parameter."""
    weights = grads = 4 if precision in ("fp32", "tf32") else 2
    master = 4 if precision == "mixed" else 0  # mixed precision keeps an fp32 copy for the update
    state_width = 2 if precision == "bf16" else 4
    state = {"adam": 2, "sgd": 0, "sgd_momentum": 1}[optimizer] * state_width
    return weights, grads, master + state


LOGIT_BYTES = {"fp32": 12, "tf32": 12, "mixed": 14, "bf16": 14}
"""Bytes per logit held at an eager loss (PyTorch's ``F.cross_entropy`` on the whole output): 16-bit output, fp32
upcast, fp32 log-softmax output and fp32 gradient (12 in fp32, where the output is already fp32)."""
FUSED_LOGIT_BYTES = 4
"""A fused cross-entropy (Liger's, Apex's, Megatron's vocab-parallel one) writes the fp32 gradient over the
logits in place: one 4-byte value per logit."""


def logit_bytes(layout: Layout) -> float:
    """Bytes per logit the loss holds: eager as ``LOGIT_BYTES``, fused 4, chunked none (the loss computes the
    logits a chunk of the sequence at a time and never holds them whole)."""
    if layout.loss == "chunked":
        return 0.0
    if layout.loss == "fused":
        return FUSED_LOGIT_BYTES
    return LOGIT_BYTES[layout.precision]


HOLD_ALL = ("GPipe", "LoopedBFS")
"""Schedules that run every micro-batch's forward before any backward."""


def in_flight_microbatches(schedule: str, pp_degree: int, microbatches: int) -> int:
    """Micro-batches whose activations the first stage of ``pp_degree`` stages holds at once (stage k of p holds
    what the first of p - k holds)."""
    if pp_degree == 1:
        return 1
    if schedule in HOLD_ALL:
        return microbatches
    return min(pp_degree, microbatches)


def activation_bytes_per_layer(shape: TransformerShape, layout: Layout, recompute: Recompute | None = None) -> float:
    """Korthikanti et al.'s per-layer count, generalised from its 2-byte activations with dropout, multi-head
    attention and a 4h GELU MLP to any activation width ``e``, dropout on or off, grouped-query attention (K and V
    ``r`` = kv_heads/heads as wide) and any MLP width ``f`` x h, gated or not: with e=2, d=1, r=1, f=4 it gives the
    paper's s*b*h*(34 + 5*a*s/h), and its tensor-parallel, sequence-parallel and recomputation rows.
    Per layer: the two norm inputs, the QKV and MLP inputs and the dropout masks (4e + 2d, whole on every
    tensor-parallel rank unless sequence parallelism splits them); Q, K, V and the attention output
    (e(2 + 2r)); the MLP's inner activations (e x 2f, or 4f gated: both branches, the activation and the
    product); the scores unless attention is fused. ``recompute`` overrides the layout's mode."""
    s, b, h, a, t = shape.seq_len, shape.micro_batch, shape.hidden, shape.heads, layout.tp_degree
    e, d = layout.activation_bytes, 1 if layout.dropout and shape.dropout else 0
    r, f = shape.kv_share, shape.ffn_share
    sbh, attn = s * b * h, a * s * s * b
    sp = layout.sequence_parallel
    mode = recompute or layout.recompute
    if mode == "full":
        return e * sbh / t if sp else e * sbh  # only each layer's input is kept
    if mode == "selective_op":
        # the block input and the row-parallel outputs (wo, w2; half of them kept) stay whole without SP; half the
        # column-parallel matmul outputs (q, k, v, the MLP's first matmul(s)) and the attention output are split
        whole = e * sbh * (1 + 1)
        split = e * sbh * ((1 + 2 * r + f * (2 if shape.gated_mlp else 1)) / 2 + 1)
        return (whole + split) / t if sp else whole + split / t
    whole = 4 * e * sbh + 2 * d * sbh
    split = e * (2 + 2 * r + f * (4 if shape.gated_mlp else 2)) * sbh
    if mode != "selective" and not layout.flash_attention:  # the attention scores are kept
        if layout.softmax_fp32:  # fp32 softmax output, the 16-bit copy the AV matmul saves, the dropout mask
            split += (4 + e + d) * attn
        else:  # the paper's 16-bit softmax output and dropout output, and the mask
            split += e * (1 + d) * attn + d * attn
    return (whole + split) / t if sp else whole + split / t


def recompute_working_set(shape: TransformerShape, layout: Layout) -> float:
    """Under full recomputation, backward recomputes one layer at a time, which then holds that layer's whole
    activations on top of every layer's saved input; other modes keep what they recompute small."""
    if layout.recompute != "full":
        return 0.0
    return activation_bytes_per_layer(shape, layout, recompute="none")


def stage_activations(shape: TransformerShape, layout: Layout) -> float:
    """Activations and receive buffers of the busiest pipeline stage (the only stage without pipelining),
    logits included on the stage that computes the loss."""
    layers = -(-shape.layers // layout.pp_degree)
    per_layer = activation_bytes_per_layer(shape, layout)
    logits = logit_bytes(layout) * shape.seq_len * shape.micro_batch * shape.vocab / layout.tp_degree
    working = recompute_working_set(shape, layout)  # every stage recomputes its own layers
    p, m = layout.pp_degree, layout.microbatches
    if p == 1:
        return layers * per_layer + logits + working
    if layout.schedule == "naive":  # one micro-batch at a time, handed on: no preallocated buffers
        return layers * per_layer + logits + working
    boundary = layout.activation_bytes * shape.seq_len * shape.micro_batch * shape.hidden
    if layout.sequence_parallel:
        boundary /= layout.tp_degree
    # torch.distributed.pipelining: a receive buffer per micro-batch, and a stage that sends keeps its output per
    # micro-batch in flight until that micro-batch's backward (the last layer's output is no layer's saved input
    # there: the next stage holds it as its input). Megatron-LM receives into transient tensors and frees what it
    # has sent (deallocate_output_tensor).
    buffers, kept = (m, 1) if layout.pipeline_runtime == "torch" else (0, 0)
    # interleaved schedules warm up with more micro-batches: L x (1 + (p-1)/(p v)) layers' worth on the first
    # stage (Narayanan et al. 2021; Korthikanti et al. 2022, section 4.2.3)
    v = layout.virtual_stages
    interleave = 1 + (p - 1) / (p * v) if v > 1 and layout.schedule not in HOLD_ALL else 1.0
    first_in_flight = in_flight_microbatches(layout.schedule, p, m)
    middle_in_flight = in_flight_microbatches(layout.schedule, p - 1, m)
    first = layers * per_layer * first_in_flight * interleave + buffers * boundary + kept * first_in_flight * boundary
    middle = (layers * per_layer * middle_in_flight * interleave + 2 * buffers * boundary
              + kept * middle_in_flight * boundary) if p > 2 else 0.0
    last = layers * per_layer * in_flight_microbatches(layout.schedule, 1, m) + buffers * boundary + logits
    if layout.schedule in HOLD_ALL:
        last = layers * per_layer * m + buffers * boundary + logits
    return max(first, middle, last) + working


def gathered_unit_bytes(shape: TransformerShape, layout: Layout) -> float:
    """Communication buffers outside the model states: DDP's gradient buckets (a copy of every gradient); FSDP's
    unsharded parameters and gradients of the layer it is computing plus the next, prefetched, one."""
    w, g, _ = bytes_per_parameter(layout.precision, layout.optimizer)
    params_per_gpu = shape.parameter_count / (layout.tp_degree * layout.pp_degree)
    if layout.dp_degree == 1:
        return 0.0
    if layout.sharding == "none":
        return params_per_gpu * g
    if layout.unsharded_microbatches:
        return params_per_gpu * (w + g)
    layer = shape.layer_parameters / layout.tp_degree
    return min(2 * layer, params_per_gpu) * (w + g)


def sharded(weights: float, gradients: float, optimizer: float, layout: Layout) -> tuple[float, float, float]:
    """What one GPU keeps of the model states under ``layout``'s sharding: full and hybrid sharding divide all
    three by the shard group, shard-grad-op the gradients and optimizer state (ZeRO-3 and ZeRO-2)."""
    group = layout.dp_degree
    if layout.sharding == "hybrid_shard":
        group = layout.shard_degree or layout.dp_degree
    if layout.sharding in ("full_shard", "hybrid_shard"):
        return weights / group, gradients / group, optimizer / group
    if layout.sharding == "shard_grad_op":
        return weights, gradients / group, optimizer / group
    return weights, gradients, optimizer


def for_batch(layout: Layout, global_batch: int, micro_batch: int) -> Layout:
    """``layout`` told whether each data-parallel rank runs its share of ``global_batch`` as one micro-batch of
    ``micro_batch`` (no pipeline): then its gradients only come as its activations go."""
    single = layout.pp_degree == 1 and global_batch == micro_batch * layout.dp_degree
    return layout if single == layout.single_microbatch else replace(layout, single_microbatch=single)


def estimate(shape: TransformerShape, layout: Layout) -> MemoryEstimate:
    """Peak training memory of the busiest GPU."""
    params_per_gpu = shape.parameter_count / (layout.tp_degree * layout.pp_degree)
    w, g, o = sharded(*bytes_per_parameter(layout.precision, layout.optimizer), layout)
    activations = stage_activations(shape, layout)
    return MemoryEstimate(
        weights=params_per_gpu * w,
        gradients=params_per_gpu * g,
        optimizer=params_per_gpu * o,
        activations=activations,
        buffers=gathered_unit_bytes(shape, layout),
        overhead=layout.overhead_gib * GIB,
        gradients_after_activations=layout.pp_degree == 1 and layout.single_microbatch,
        reserve_share=layout.allocator_reserve,
    )
