"""The SMDDP PyTorch API before v1.4 (deprecated by AWS in favour of the ``smddp`` backend), emulated.

AWS documents it as a torch.distributed look-alike bound to one group, ``group.WORLD``: init_process_group,
is_available, is_initialized, get_rank, get_world_size, get_local_rank, get_local_size, all_reduce (with
ReduceOp.AVERAGE), broadcast, all_gather, all_to_all_single, barrier. Each call runs the same collective of
torch.distributed on the stub's ``smddp`` backend.
"""

from __future__ import annotations

import enum

import torch.distributed as _dist

import smdistributed.dataparallel.torch.torch_smddp  # noqa: F401  registers the smddp backend
from smdistributed._launch import init_default_group, launch


class group:  # noqa: N801  (AWS's name)
    """Process groups: SMDDP supports only the world."""

    WORLD = "WORLD"


class ReduceOp(enum.Enum):
    SUM = "SUM"
    AVERAGE = "AVERAGE"
    MIN = "MIN"
    MAX = "MAX"


_TORCH_OPS = {ReduceOp.SUM: _dist.ReduceOp.SUM, ReduceOp.MIN: _dist.ReduceOp.MIN, ReduceOp.MAX: _dist.ReduceOp.MAX}


def _world(group_arg) -> None:
    if group_arg not in (None, group.WORLD):
        raise ValueError(f"smdistributed.dataparallel supports only group.WORLD, got {group_arg!r}")


def is_available() -> bool:
    """True when the script was started as a distributed job (torchrun or mpirun)."""
    return launch().launcher != "single"


def init_process_group(*args, **kwargs) -> None:
    """Initialise on the ``smddp`` backend; arguments exist for API parity and are ignored, as in SMDDP."""
    init_default_group("smddp")


def is_initialized() -> bool:
    return _dist.is_initialized()


def get_world_size(group=group.WORLD) -> int:  # noqa: A002, ARG001
    _world(group)
    return _dist.get_world_size()


def get_rank(group=group.WORLD) -> int:  # noqa: A002
    _world(group)
    return _dist.get_rank()


def get_local_rank() -> int:
    return launch().local_rank


def get_local_size() -> int:
    return launch().local_size


def all_reduce(tensor, op=ReduceOp.SUM, group=group.WORLD, async_op=False):  # noqa: A002
    _world(group)
    op = op or ReduceOp.SUM
    if op is ReduceOp.AVERAGE:  # gloo has no AVG: sum, then divide (in place, like the collective)
        work = _dist.all_reduce(tensor, op=_dist.ReduceOp.SUM, async_op=async_op)
        if work is not None:
            work.wait()
        tensor.div_(_dist.get_world_size())
        return work if async_op else None
    return _dist.all_reduce(tensor, op=_TORCH_OPS[op], async_op=async_op)


def broadcast(tensor, src=0, group=group.WORLD, async_op=False):  # noqa: A002
    _world(group)
    return _dist.broadcast(tensor, src=src, async_op=async_op)


def all_gather(tensor_list, tensor, group=group.WORLD, async_op=False):  # noqa: A002
    _world(group)
    return _dist.all_gather(tensor_list, tensor, async_op=async_op)


def all_to_all_single(output_t, input_t, output_split_sizes=None, input_split_sizes=None, group=group.WORLD,  # noqa: A002
                      async_op=False):
    _world(group)
    return _dist.all_to_all_single(output_t, input_t, output_split_sizes, input_split_sizes, async_op=async_op)


def barrier(group=group.WORLD, async_op=False):  # noqa: A002
    _world(group)
    return _dist.barrier(async_op=async_op)
