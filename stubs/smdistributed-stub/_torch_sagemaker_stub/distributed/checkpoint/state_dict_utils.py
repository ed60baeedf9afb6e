"""``sm_state_dict_type`` (SMP's local, per-rank checkpoints) and ``init_optim_state``.

``SM_LOCAL_STATE_DICT``: every rank saves the shards it holds, without collectives, to be loaded by the same
layout. The stand-in gives the model FSDP's sharded state dict as plain tensors (each DTensor's local part), so a
save into a per-rank directory with the rank's replication group (AWS's pattern), with the optimizer's own
``state_dict()``, writes what the rank holds and reads it back without FSDP's conversions.
"""

from __future__ import annotations

import contextlib
import enum

import torch


class SMStateDictType(enum.Enum):
    SM_LOCAL_STATE_DICT = enum.auto()


@contextlib.contextmanager
def sm_state_dict_type(model, state_dict_type: SMStateDictType):
    """Inside the block ``model.state_dict()`` is this rank's own shards as plain tensors (FSDP's sharded state
    dict, each DTensor's local part) and ``model.load_state_dict`` takes them back the same way."""
    if state_dict_type is not SMStateDictType.SM_LOCAL_STATE_DICT:
        raise ValueError(f"sm_state_dict_type: {state_dict_type!r} is not an SMStateDictType")
    from torch.distributed.fsdp import FullyShardedDataParallel, StateDictType

    def local_state_dict(*args, **kwargs):
        return {k: _local(v) for k, v in type(model).state_dict(model, *args, **kwargs).items()}

    def load_local_state_dict(state_dict, strict: bool = True, **kwargs):
        current = type(model).state_dict(model)
        with torch.no_grad():
            for key, value in current.items():
                if key in state_dict:
                    _local(value).copy_(state_dict[key])
        return type(model).load_state_dict(model, current, strict=strict, **kwargs)

    with FullyShardedDataParallel.state_dict_type(model, StateDictType.SHARDED_STATE_DICT):
        model.state_dict, model.load_state_dict = local_state_dict, load_local_state_dict
        try:
            yield
        finally:
            del model.state_dict, model.load_state_dict


def _local(value):
    return value.to_local() if hasattr(value, "to_local") else value


def init_optim_state(optimizer: torch.optim.Optimizer, skip_empty_param: bool = True) -> None:
    """Give every parameter its optimizer state (zeros) without changing a parameter, so that a load has the
    state's keys to fill: one step with zero gradients and a learning rate of 0."""
    if optimizer.state:
        return
    saved = [group["lr"] for group in optimizer.param_groups]
    for group in optimizer.param_groups:
        group["lr"] = 0.0
        for param in group["params"]:
            if skip_empty_param and param.numel() == 0:
                continue
            if param.grad is None:
                param.grad = torch.zeros_like(param)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    for group, lr in zip(optimizer.param_groups, saved, strict=True):
        group["lr"] = lr
