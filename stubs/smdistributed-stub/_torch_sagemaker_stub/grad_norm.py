"""``torch.sagemaker.grad_norm.clip_grad_norm_(model, max_norm)``: the norm of the whole model's gradient.

Under SMP each rank holds part of the gradient: FSDP shards it over the replica's sharding group, and tensor
parallelism splits some layers over the TP group while the rest (norms, embeddings without a plan) are
repeated on every TP rank. The norm adds each rank's part once: the split layers' parts from every rank of the
replica, the repeated ones once per TP group. Replicas hold the same gradient and are not added. With tensor
parallelism FSDP must keep the original parameters (``use_orig_params=True``) so that the split ones can be told
apart.
"""

from __future__ import annotations

import math

import torch
import torch.distributed as dist
from torch.sagemaker.state_handler import state


def clip_grad_norm_(model: torch.nn.Module, max_norm: float, norm_type: float = 2.0) -> torch.Tensor:
    norm_type = float(norm_type)
    if not state.initialized:
        return torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm, norm_type)
    flat = [name for name, p in model.named_parameters() if type(p).__name__ == "FlatParameter"]
    if flat and state.tp_size > 1:
        raise ValueError("torch.sagemaker.grad_norm.clip_grad_norm_ with tensor parallelism needs FSDP(..., "
                         "use_orig_params=True), so that the tensor-parallel parameters can be told apart")
    split, repeated = [], []
    for name, param in model.named_parameters():
        if param.grad is None:
            continue
        grad = param.grad.to_local() if hasattr(param.grad, "to_local") else param.grad
        (split if _clean(name) in state.tp_parameter_names else repeated).append(grad)
    device = next((g.device for g in split + repeated), torch.device("cpu"))
    if math.isinf(norm_type):
        local = torch.stack([g.detach().abs().max() for g in split + repeated]).max() if split + repeated \
            else torch.zeros((), device=device)
        dist.all_reduce(local, op=dist.ReduceOp.MAX, group=state.rep_rank_process_group)
        total = local
    else:
        def power_sum(grads):
            return sum((g.detach().double().abs() ** norm_type).sum() for g in grads) if grads \
                else torch.zeros((), dtype=torch.float64, device=device)
        # the repeated parameters' share is the same on every TP rank: count it once per TP group
        local = (power_sum(split) + power_sum(repeated) / state.tp_size).to(device)
        dist.all_reduce(local, group=state.rep_rank_process_group)
        total = local ** (1.0 / norm_type)
    total = total.float()
    coefficient = torch.clamp(max_norm / (total + 1e-6), max=1.0)
    for param in model.parameters():
        if param.grad is not None:
            param.grad.detach().mul_(coefficient.to(param.grad.device))
    return total


def _clean(name: str) -> str:
    # FSDP's wrapper prefixes, which use_orig_params keeps in some versions' named_parameters
    return name.replace("_fsdp_wrapped_module.", "").replace("_checkpoint_wrapped_module.", "")
