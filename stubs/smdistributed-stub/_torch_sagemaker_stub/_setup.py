"""``tsm.init()``: the process group (if the script did not start one), the device mesh and ``tsm.state``."""

from __future__ import annotations

import os
import warnings

import torch
import torch.distributed as dist
from torch.sagemaker import _config, _fsdp
from torch.sagemaker.delayed_param import local_device
from torch.sagemaker.state_handler import Ranker, state


def init(config=None) -> None:
    if state.initialized:
        warnings.warn("smdistributed-stub: tsm.init() was called again; the first configuration stays", stacklevel=3)
        return
    params = _config.load(config)
    if not dist.is_initialized():  # AWS's scripts start it first; torchrun's environment suffices otherwise
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    world, rank = dist.get_world_size(), dist.get_rank()
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", world))
    layout = _config.layout(params, world, local_world)
    from torch.distributed.device_mesh import init_device_mesh

    mesh = init_device_mesh(local_device().type, (layout.replicate_degree, layout.shard_degree, layout.tp_degree),
                            mesh_dim_names=("replicate", "shard", "tp"))
    state.reset()
    state.cfg, state.layout, state.device_mesh = dict(params), layout, mesh
    state.rank, state.world_size = rank, world
    state.local_rank = int(os.environ.get("LOCAL_RANK", rank % local_world))
    state.hybrid_shard_degree = params["hybrid_shard_degree"]
    state.tensor_parallel_degree = layout.tp_degree
    state.context_parallel_degree = state.expert_parallel_degree = 1
    state.tp_rank, state.cp_rank, state.ep_rank = mesh["tp"].get_local_rank(), 0, 0
    state.tp_process_group = mesh["tp"].get_group()
    state.rep_rank_process_group = _replica_group(layout, rank)
    state.dp_process_group = _data_parallel_group(layout, rank)
    state.world_process_group = dist.group.WORLD
    state.sm_activation_offloading = params["sm_activation_offloading"]
    state.activation_loading_horizon = params["activation_loading_horizon"]
    state.ranker = Ranker(layout)
    state.initialized = True
    _fsdp.patch()


def _replica_group(layout, rank: int):
    """The ranks of this rank's replica (the same replication rank): every rank creates every group, in order."""
    block = layout.shard_degree * layout.tp_degree
    groups = [dist.new_group(list(range(start, start + block))) for start in range(0, layout.world_size, block)]
    return groups[rank // block]


def _data_parallel_group(layout, rank: int):
    """The ranks with this rank's tensor-parallel coordinate: every replica and shard of the same TP slice."""
    groups = [dist.new_group(list(range(tp, layout.world_size, layout.tp_degree))) for tp in range(layout.tp_degree)]
    return groups[rank % layout.tp_degree]
