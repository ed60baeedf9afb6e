"""What save and load share: a local checkpoint path, and the process group's coordinator."""

from __future__ import annotations

import torch.distributed as dist


def local_path(checkpoint_id, api: str):
    if checkpoint_id is not None and str(checkpoint_id).startswith("s3://"):
        raise NotImplementedError(f"{api}: S3 checkpoints (checkpoint_id={str(checkpoint_id)!r}) go through SMP's S3 "
                                  "file system, which smdistributed-stub does not emulate; save to a local path "
                                  "(SageMaker uploads /opt/ml/checkpoints)")
    return checkpoint_id


def check_coordinator(process_group, coordinator_rank: int, api: str) -> None:
    ranks = dist.get_process_group_ranks(process_group) if process_group is not None else range(dist.get_world_size())
    if coordinator_rank not in ranks:
        raise ValueError(f"{api}: coordinator_rank {coordinator_rank} is not in the process group (ranks {list(ranks)})")


def tp_local(obj, process_group):
    """SMP's tensor-parallel checkpoints hold each TP rank's own slices, saved by that rank's FSDP group into a
    directory of its own (AWS's ``tp{degree}-{rank}`` pattern). The stand-in's TP parameters are DTensors over
    the TP group too, whose global shape spans every TP rank's slice; for a process group within one TP slice,
    each such tensor is given as a DTensor over its other mesh dimensions, holding this TP rank's slice only
    (the same storage, so that a load fills the model's own tensors)."""
    from torch.sagemaker.state_handler import state

    if process_group is None or not state.initialized or state.tp_size == 1:
        return obj
    if set(dist.get_process_group_ranks(state.tp_process_group)) <= set(dist.get_process_group_ranks(process_group)):
        return obj  # the group spans the TP slices: DCP sees whole tensors
    return _map(obj)


def _map(obj):
    if isinstance(obj, dict):
        return {k: _map(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_map(v) for v in obj)
    names = getattr(getattr(obj, "device_mesh", None), "mesh_dim_names", None)
    if not names or "tp" not in names:
        return obj
    from torch.distributed.tensor import DTensor, Shard

    tp_dim = names.index("tp")
    mesh, placements = obj.device_mesh, obj.placements
    shape = list(obj.shape)
    if isinstance(placements[tp_dim], Shard):
        dim = placements[tp_dim].dim
        sizes = [len(c) for c in _chunks(shape[dim], mesh.size(tp_dim))]
        shape[dim] = sizes[mesh.get_local_rank(tp_dim)]
    others = tuple(n for n in names if n != "tp")
    if not others:
        return obj.to_local()
    sub = mesh[others] if len(others) > 1 else mesh[others[0]]
    kept = [p for i, p in enumerate(placements) if i != tp_dim]
    stride = [1] * len(shape)
    for i in range(len(shape) - 2, -1, -1):
        stride[i] = stride[i + 1] * shape[i + 1]
    return DTensor.from_local(obj.to_local(), sub, kept, run_check=False, shape=tuple(shape), stride=tuple(stride))


def _chunks(size: int, parts: int) -> list[range]:
    """How torch.chunk splits ``size`` items over ``parts``, as DTensor's Shard does."""
    step = -(-size // parts)
    return [range(start, min(start + step, size)) for start in range(0, size, step)] + \
        [range(0)] * (parts - len(range(0, size, step)))
