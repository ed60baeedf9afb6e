"""``save`` and ``async_save``: DCP's save of a state dict, synchronous or through an ``AsyncCallsQueue``."""

from __future__ import annotations

import torch.distributed.checkpoint as dcp
from torch.sagemaker.distributed.checkpoint._common import check_coordinator, local_path, tp_local
from torch.sagemaker.distributed.checkpoint.async_utils import DEFAULT_ASYNC_REQUEST_QUEUE


class PyTorchDistSaveShardedStrategy:
    """SMP's default sharded strategy: DCP's own planner and writer (the only one the stand-in has)."""


def _check_strategy(sharded_strategy) -> None:
    if sharded_strategy is not None and not isinstance(sharded_strategy, PyTorchDistSaveShardedStrategy) \
            and sharded_strategy is not PyTorchDistSaveShardedStrategy:
        raise NotImplementedError(f"async_save(sharded_strategy={sharded_strategy!r}): only SMP's default "
                                  "PyTorchDistSaveShardedStrategy is emulated")


def save(state_dict, *, checkpoint_id=None, storage_writer=None, planner=None, process_group=None, coordinator_rank=0,
         wait_error_handling=True, force_check_all_plans=True, s3_region=None, s3client_config=None) -> None:
    checkpoint_id = local_path(checkpoint_id, "save")
    check_coordinator(process_group, coordinator_rank, "save")
    dcp.save(tp_local(state_dict, process_group), checkpoint_id=checkpoint_id, storage_writer=storage_writer,
             planner=planner, process_group=process_group)


def async_save(state_dict, *, checkpoint_id=None, storage_writer=None, planner=None, process_group=None,
               coordinator_rank=0, queue=None, sharded_strategy=None, wait_error_handling=True,
               force_check_all_plans=True, s3_region=None, s3client_config=None) -> None:
    checkpoint_id = local_path(checkpoint_id, "async_save")
    check_coordinator(process_group, coordinator_rank, "async_save")
    _check_strategy(sharded_strategy)
    future = dcp.async_save(tp_local(state_dict, process_group), checkpoint_id=checkpoint_id,
                            storage_writer=storage_writer, planner=planner, process_group=process_group)
    (queue if queue is not None else DEFAULT_ASYNC_REQUEST_QUEUE).schedule(future)


def maybe_finalize_async_calls(blocking=True, process_group=None) -> list[int]:
    return DEFAULT_ASYNC_REQUEST_QUEUE.maybe_finalize_async_calls(blocking=blocking, process_group=process_group)
