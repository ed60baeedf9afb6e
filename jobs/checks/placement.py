"""Placement warnings: a valid job whose processes talk over a slower link than its strategy assumes.

None of these is an error (the job runs), so they are warnings, each naming the expected effect and the fix:
- several instances of a type without EFA: NCCL's inter-host collectives fall back to TCP sockets, sharing the
  instance's network bandwidth among its GPUs;
- a group that communicates every layer spread over hosts: an FSDP hybrid shard group or SMP v2's context parallel
  group larger than one instance;
- tensor parallelism inside an instance without NVLink: every layer's all-reduce crosses PCIe.
Tensor parallel groups larger than one instance are rejected by validation (``degrees``), not warned about.
"""

from __future__ import annotations

from smjobs import catalog
from smjobs.request.training import processes_per_host
from smjobs.spec.job import JobSpec
from smjobs.spec.strategies import FSDP, ModelParallelV1, ModelParallelV2, PipelineParallel


def _tensor_parallel_degree(spec: JobSpec) -> int:
    d = spec.distribution
    if isinstance(d, PipelineParallel):
        return d.tp_degree
    if isinstance(d, ModelParallelV1 | ModelParallelV2):
        return d.tensor_parallel_degree
    return 1


def placement_warnings(spec: JobSpec) -> list[str]:
    """What would make this job's communication slower than its strategy assumes, and by how much."""
    instance = catalog.instances().get(spec.compute.instance_type)
    if instance is None:
        return []
    out = []
    count, ppn, d = spec.compute.instance_count, processes_per_host(spec), spec.distribution
    if count > 1 and not instance.efa:
        efa_types = sorted(name for name, t in catalog.instances().types.items() if t.efa and t.gpu_count == instance.gpu_count)
        out.append(f"{count} x {spec.compute.instance_type}: this type has no EFA, so collectives between instances run over "
                   f"TCP sockets, at most {instance.network_gbps:g} Gbps shared by its {instance.gpu_count} GPU(s) and with "
                   "more latency; gradient synchronisation can take longer than the computation for models over a few "
                   "hundred million parameters. To fix: an EFA type with as many GPUs ("
                   + (", ".join(efa_types[:4]) or "none in the catalog") + "), or fewer, larger instances.")
    if isinstance(d, FSDP) and d.sharding == "hybrid_shard" and d.shard_degree and d.shard_degree > ppn:
        out.append(f"distribution.shard_degree {d.shard_degree} spans {-(-d.shard_degree // ppn)} instances ({ppn} processes "
                   "each): every layer's parameter all-gather and gradient reduce-scatter cross the network instead of "
                   f"NVLink. To fix: shard_degree {ppn} keeps each shard group inside one instance.")
    if isinstance(d, ModelParallelV2) and d.context_parallel_degree > ppn:
        out.append(f"distribution.context_parallel_degree {d.context_parallel_degree} spans more than one instance ({ppn} "
                   "processes each): every attention layer exchanges key/value blocks over the network. To fix: at most "
                   f"{ppn}.")
    tp = _tensor_parallel_degree(spec)
    if tp > 1 and instance.gpu_count > 1 and not instance.nvlink:
        out.append(f"tensor parallelism ({tp}) on {spec.compute.instance_type}, whose GPUs have no NVLink: every layer's "
                   "activation all-reduce crosses PCIe, typically several times slower than NVLink. To fix: tensor "
                   "parallel degree 1 (shard with FSDP instead), or an NVLink type (p4d, p5).")
    return out
