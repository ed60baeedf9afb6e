"""``tsm.transform``: rank 0's weights everywhere (``load_state_dict_from_rank0``) and tensor parallelism.

SMP v2 swaps supported Hugging Face models (GPT-NeoX, Llama, Mistral, Mixtral) for its own tensor-parallel
implementations. The stand-in has no such modules: it applies the model's own Hugging Face tensor-parallel plan
(``model._tp_plan``, or ``model.config.base_model_tp_plan`` under ``base_model_prefix``, as transformers writes
them: module-name patterns with ``*`` for a layer index, styles ``colwise``, ``rowwise``, ``colwise_rep`` and
``rowwise_rep``) with ``torch.distributed.tensor.parallel`` on the TP group. The attention of such a model must
take its head count from the projection (``view(..., -1, head_dim)``), as transformers' models do.
"""

from __future__ import annotations

import re

import torch
import torch.distributed as dist
from torch.sagemaker.delayed_param import local_device
from torch.sagemaker.state_handler import state


def transform(model: torch.nn.Module, device=None, dtype=None, config=None, load_state_dict_from_rank0=False,
              cp_comm_type="p2p") -> torch.nn.Module:
    if not state.initialized:
        raise RuntimeError("tsm.transform: call tsm.init() first")
    if cp_comm_type not in ("p2p", "all_gather"):
        raise ValueError(f"tsm.transform: cp_comm_type is 'p2p' or 'all_gather', not {cp_comm_type!r}")
    if config is not None:
        raise NotImplementedError("tsm.transform(config=...) configures SMP's mixture-of-experts implementation "
                                  "(MoEConfig), which runs in SMP's CUDA modules; smdistributed-stub does not emulate it.")
    on_meta = any(t.is_meta for t in _tensors(model))
    if dtype is not None and not on_meta:
        model.to(dtype)
    if device is not None and not on_meta:
        model.to(device)
    target = device or local_device()
    if load_state_dict_from_rank0:
        _load_from_rank0(model, target)
    elif on_meta and state.tp_size > 1:
        # tensor-parallel layers are split from full tensors: materialise first (memory is not a local concern)
        from torch.sagemaker.delayed_param import DelayedParamIniter

        init = DelayedParamIniter(model).get_param_init_fn()
        for module in model.modules():
            init(module)
    if state.tp_size > 1:
        _apply_plan(model)
    return model


def _tensors(model):
    return [*model.parameters(), *model.buffers()]


def _load_from_rank0(model, device) -> None:
    """Every rank gets rank 0's parameters and buffers; rank 0 must hold real ones (AWS's rule)."""
    if state.rank == 0 and any(t.is_meta for t in _tensors(model)):
        raise ValueError("tsm.transform(load_state_dict_from_rank0=True): rank 0's model has parameters on the meta "
                         "device; build it with its weights on rank 0 and under init_empty_weights elsewhere")
    if any(t.is_meta for t in _tensors(model)):
        model.to_empty(device=device)
    with torch.no_grad():
        for tensor in _tensors(model):
            dist.broadcast(tensor.data, src=0)


STYLES = ("colwise", "rowwise", "colwise_rep", "rowwise_rep")


def plan_of(model) -> dict[str, str]:
    plan = dict(getattr(model, "_tp_plan", None) or {})
    if not plan:
        base = getattr(getattr(model, "config", None), "base_model_tp_plan", None) or {}
        prefix = getattr(model, "base_model_prefix", "")
        plan = {(f"{prefix}.{k}" if prefix and hasattr(model, prefix) else k): v for k, v in base.items()}
    return plan


def _apply_plan(model) -> None:
    from torch.distributed.tensor import DTensor, Replicate, Shard
    from torch.distributed.tensor.parallel import ColwiseParallel, RowwiseParallel, parallelize_module

    plan = plan_of(model)
    if not plan:
        raise NotImplementedError(
            f"tsm.transform with tensor_parallel_degree {state.tp_size}: SMP v2 splits the layers of its own "
            "implementations of supported Hugging Face models; smdistributed-stub applies a model's Hugging Face "
            f"tensor-parallel plan instead, and {type(model).__name__} has none (model._tp_plan or "
            "model.config.base_model_tp_plan). Add one, or set tensor_parallel_degree to 1 for local runs.")
    unknown = sorted({v for v in plan.values() if v not in STYLES})
    if unknown:
        raise NotImplementedError(f"tsm.transform: tensor-parallel styles {unknown} are not emulated (known: {STYLES})")
    styles = {"colwise": ColwiseParallel, "rowwise": RowwiseParallel,
              "colwise_rep": lambda: ColwiseParallel(output_layouts=Replicate()),
              "rowwise_rep": lambda: RowwiseParallel(input_layouts=Replicate())}
    patterns = [(re.compile(re.escape(k).replace(r"\*", r"[^.]+") + r"\Z"), v) for k, v in plan.items()]
    matched = {}
    for name, _ in model.named_modules():
        for pattern, style in patterns:
            if name and pattern.match(name):
                matched[name] = styles[style]()
                break
    if not matched:
        raise ValueError(f"tsm.transform: the tensor-parallel plan {sorted(plan)} names none of {type(model).__name__}'s modules")
    parallelize_module(model, state.device_mesh["tp"], matched)
    # split parameters: sharded over the TP group (a row-wise layer's bias is replicated on every TP rank)
    for name in matched:
        for pname, param in model.get_submodule(name).named_parameters(recurse=False):
            if isinstance(param, DTensor) and any(isinstance(p, Shard) for p in param.placements):
                state.tp_parameter_names.add(f"{name}.{pname}")
