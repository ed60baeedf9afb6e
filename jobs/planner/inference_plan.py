"""Planning a data-parallel inference job: every GPU holds the whole model and takes a share of the records.

Memory per GPU (forward only, nothing kept for a backward pass):
- the weights at the precision used (bf16: 2 bytes per parameter, fp32: 4);
- the working set of one layer for a batch (its input and output, the MLP's inner activations, the attention
  scores unless attention is fused) and the logits of the last one (fp32, as they are scored);
- a KV cache when records are extended by generation: 2 x layers x (seq_len + generated) x batch x kv width;
- the same fixed overhead as training (CUDA context, allocator).
Time: the forward FLOPs (2 x matmul parameters + 4 x layers x hidden x seq_len per token) over the peak of the
precision at the assumed utilisation, the GPUs in parallel with no communication between them; then the job's
start-up. Cost: the instances' hourly price over that time. The choice is the cheapest count and type that fit
and finish within the time limit, ties within 2% going to the faster (``smjobs.planner.plan.rank``).
"""

from __future__ import annotations

from dataclasses import dataclass

from smjobs.catalog import instances, prices
from smjobs.planner.cost import Assumptions, StepTime, hourly_usd
from smjobs.planner.explain import TypeOutcomes
from smjobs.planner.memory import GIB, Layout, MemoryEstimate, TransformerShape
from smjobs.planner.plan import (
    Candidate,
    Constraints,
    Plan,
    StrategyRequest,
    filter_types,
    rank,
    usable_bytes,
)


@dataclass(frozen=True)
class InferenceWorkload:
    shape: TransformerShape
    records: int
    """Records in the data set; each is one sequence of ``shape.seq_len`` tokens."""
    batch_size: int
    """Records per forward pass on one GPU."""
    precision: str = "bf16"
    """bf16 or fp32 weights and arithmetic."""
    generated_tokens: int = 0
    """Tokens generated per record (a KV cache is kept); 0 scores the records as they are."""
    flash_attention: bool = True

    def forward_flops(self) -> float:
        """FLOPs of one record's forward pass, generated tokens included."""
        s, tokens = self.shape, self.shape.seq_len + self.generated_tokens
        return (2.0 * s.matmul_parameters + 4.0 * s.layers * s.hidden * tokens) * tokens


def inference_memory(work: InferenceWorkload, overhead_gib: float = 1.5) -> MemoryEstimate:
    """Peak memory of one GPU holding the whole model and running one batch."""
    s, b = work.shape, work.batch_size
    e = 4 if work.precision == "fp32" else 2
    tokens = s.seq_len + work.generated_tokens
    layer = e * tokens * b * s.hidden * (2 + 2 * s.kv_share + s.ffn_share * (3 if s.gated_mlp else 1))
    if not work.flash_attention:
        layer += e * s.heads * tokens * tokens * b
    logits = 4.0 * b * (1 if work.generated_tokens else s.seq_len) * s.vocab
    kv_cache = 2.0 * s.layers * tokens * b * s.hidden * s.kv_share * e if work.generated_tokens else 0.0
    return MemoryEstimate(weights=s.parameter_count * e, gradients=0.0, optimizer=0.0, activations=layer + logits,
                          buffers=kv_cache, overhead=overhead_gib * GIB)


def plan_inference(work: InferenceWorkload, constraints: Constraints | None = None,
                   assumptions: Assumptions | None = None, keep: int = 10) -> Plan:
    """The cheapest instance type and count that hold the model and score every record within the time limit."""
    constraints, assumptions = constraints or Constraints(), assumptions or Assumptions()
    region = constraints.region if constraints.region in prices().regions else prices().default_region
    strategy = StrategyRequest("ddp")
    types, rejections = filter_types(strategy, constraints, region)
    counts = [constraints.instance_count] if constraints.instance_count else range(1, constraints.max_instances + 1)
    memory = inference_memory(work)
    seen, found = TypeOutcomes(), []
    for instance, price in types:
        if memory.total > usable_bytes(instance, constraints):
            seen.memory(instance.name, memory, 1, Layout(dp_degree=instance.gpu_count))
            continue
        per_gpu_s = work.forward_flops() / (instances().gpu(instance.name).peak_for(work.precision) * 1e12 * assumptions.mfu_for(instance.name))
        for count in counts:
            rate = hourly_usd(price, count, constraints.spot, assumptions)
            if constraints.max_usd_per_hour is not None and rate > constraints.max_usd_per_hour:
                seen.over_cap.setdefault(instance.name, (count, rate))
                break
            world = instance.gpu_count * count
            records_per_gpu = -(-work.records // world)
            batch_s = per_gpu_s * min(work.batch_size, records_per_gpu)
            hours = (per_gpu_s * records_per_gpu + assumptions.startup_s) / 3600
            candidate = Candidate(instance.name, count, Layout(dp_degree=world), work.batch_size, memory,
                                  StepTime(batch_s, 0.0, 0.0, 0.0, 0.0), rate, hours)
            if constraints.max_hours is not None and hours > constraints.max_hours:
                seen.slow(candidate)
            else:
                found.append(candidate)
    rejections += seen.explain_all(types, found, constraints, work, strategy, keep, usable_bytes)
    return Plan(work, strategy, constraints, assumptions, tuple(rank(found, keep)), tuple(rejections), len(found),
                region, tuple(found))
