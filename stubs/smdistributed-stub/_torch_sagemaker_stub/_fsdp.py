"""SMP v2's FSDP patch: ``FullyShardedDataParallel(model, sharding_strategy=...)`` shards as the job configures.

AWS's SMP v2 scripts wrap the model in torch's FSDP (the FSDP1 API) without a process group or device mesh:
SMP groups the processes from ``hybrid_shard_degree`` and keeps tensor-parallel shards apart. The stand-in does
the same by giving FSDP the stand-in's device mesh when the script gives none, and by taking SMP's own
``post_param_init_fn`` argument (native FSDP has none) and running it after ``param_init_fn``. On a machine
without GPUs FSDP is told to use the CPU, and ``sync_module_states`` (which FSDP1 does on GPUs only) is done by
the stand-in: rank 0's weights to every data-parallel rank, after materialising the meta device's modules. The strategy, as AWS
documents it: ``hybrid_shard_degree`` 2 or more makes an unset strategy HYBRID_SHARD (``_HYBRID_SHARD_ZERO2`` is
kept), 1 means NO_SHARD, and 0 shards over every data-parallel process of the host (native FSDP's hybrid sharding
over a node; a local run is one host). Where one replica spans every data-parallel process, hybrid sharding and
full sharding are the same and FSDP is given the latter.
"""

from __future__ import annotations

import functools
import inspect

import torch
from torch.distributed.fsdp import FullyShardedDataParallel, ShardingStrategy
from torch.sagemaker.state_handler import state

_ORIGINAL_INIT = None
TO_FULL = {ShardingStrategy.HYBRID_SHARD: ShardingStrategy.FULL_SHARD,
           ShardingStrategy._HYBRID_SHARD_ZERO2: ShardingStrategy.SHARD_GRAD_OP}
TO_HYBRID = {v: k for k, v in TO_FULL.items()}


def patch() -> None:
    global _ORIGINAL_INIT
    if _ORIGINAL_INIT is not None:
        return
    _ORIGINAL_INIT = original = FullyShardedDataParallel.__init__
    signature = inspect.signature(original)

    @functools.wraps(original)
    def __init__(self, module, *args, post_param_init_fn=None, **kwargs):
        bound = signature.bind(self, module, *args, **kwargs)
        arguments = bound.arguments
        if post_param_init_fn is not None:
            arguments["param_init_fn"] = _then(arguments.get("param_init_fn"), post_param_init_fn)
        if arguments.get("process_group") is None and arguments.get("device_mesh") is None and state.initialized:
            placed = placement(arguments.get("sharding_strategy"))
            if placed is not None:
                arguments["sharding_strategy"], arguments["device_mesh"] = placed
        if state.initialized and state.device_mesh.device_type == "cpu":
            if arguments.get("device_id") is None:
                arguments["device_id"] = torch.device("cpu")  # FSDP1 looks for an accelerator unless told
            if arguments.get("sync_module_states"):
                sync_on_cpu(module, arguments.get("param_init_fn"))
                arguments["sync_module_states"] = False  # done; FSDP1 would refuse CPU tensors
        original(*bound.args, **bound.kwargs)

    FullyShardedDataParallel.__init__ = __init__
    to_load = FullyShardedDataParallel.optim_state_dict_to_load

    @functools.wraps(to_load)
    def optim_state_dict_to_load(model, *args, **kwargs):
        from torch.distributed.fsdp import StateDictType

        sharded = FullyShardedDataParallel.get_state_dict_type(model).state_dict_type == StateDictType.SHARDED_STATE_DICT
        if state.tp_size and state.tp_size > 1 and sharded:
            raise NotImplementedError(
                "smdistributed-stub: FSDP.optim_state_dict_to_load with tensor parallelism: torch's FSDP1 gives the "
                "ranks after the first shard the wrong slices of tensor-parallel optimizer state (torch 2.13), so the "
                "stand-in refuses it rather than resume wrongly. Checkpoint with SMP's local state dict instead "
                "(sm_state_dict_type(model, SMStateDictType.SM_LOCAL_STATE_DICT) with optimizer.state_dict(), AWS's "
                "async_local checkpoints), or set tensor_parallel_degree to 1 for local runs.")
        return to_load(model, *args, **kwargs)

    FullyShardedDataParallel.optim_state_dict_to_load = staticmethod(optim_state_dict_to_load)


def placement(strategy):
    """(strategy, device mesh) for an FSDP call without a process group, or None to leave FSDP native."""
    layout, mesh = state.layout, state.device_mesh
    if layout.shard_degree == 1 and layout.replicate_degree == 1:
        raise NotImplementedError(
            f"smdistributed-stub: tensor_parallel_degree {layout.tp_degree} over all {layout.world_size} processes "
            "leaves one data-parallel process, and torch's FSDP1 cannot wrap tensor-parallel (DTensor) parameters "
            f"without sharding them. Locally, run with {2 * layout.tp_degree} or more processes.")
    if state.hybrid_shard_degree == 1:
        return ShardingStrategy.NO_SHARD, mesh["replicate"]
    if strategy is None:
        strategy = ShardingStrategy.HYBRID_SHARD if state.hybrid_shard_degree >= 2 else ShardingStrategy.FULL_SHARD
    if strategy == ShardingStrategy.NO_SHARD and layout.tp_degree == 1:
        return None  # every rank is a data-parallel rank: native FSDP over the world
    if layout.replicate_degree == 1:
        return TO_FULL.get(strategy, strategy), mesh["shard"]
    if layout.shard_degree == 1 and strategy == ShardingStrategy.NO_SHARD:
        return strategy, mesh["replicate"]
    if layout.tp_degree > 1:
        raise NotImplementedError(
            f"smdistributed-stub: FSDP over {layout.replicate_degree} replicas of hybrid_shard_degree "
            f"{layout.shard_degree} together with tensor_parallel_degree {layout.tp_degree}: torch's FSDP1 cannot "
            "hybrid-shard tensor-parallel (DTensor) parameters, so the stand-in cannot run this layout. Locally, "
            "set hybrid_shard_degree to 0 (one replica over every data-parallel process) or tensor_parallel_degree to 1.")
    return TO_HYBRID.get(strategy, strategy), mesh["replicate", "shard"]


def sync_on_cpu(module, param_init_fn) -> None:
    """FSDP's ``sync_module_states`` on CPU, which FSDP1 refuses: materialise what is on the meta device (with
    ``param_init_fn``, as FSDP would), then give every data-parallel rank the first one's parameters and buffers
    (per tensor-parallel rank: each holds its own shards)."""
    import torch.distributed as dist
    from torch.sagemaker.delayed_param import has_own_meta

    if param_init_fn is not None:
        for sub in module.modules():
            if has_own_meta(sub):
                param_init_fn(sub)
    group = state.dp_process_group
    source = min(dist.get_process_group_ranks(group))
    with torch.no_grad():
        for tensor in [*module.parameters(), *module.buffers()]:
            local = tensor.to_local() if hasattr(tensor, "to_local") else tensor
            dist.broadcast(local.data, src=source, group=group)


def _then(param_init_fn, post_param_init_fn):
    def init(module):
        if param_init_fn is not None:
            param_init_fn(module)
        post_param_init_fn(module)
    return init
