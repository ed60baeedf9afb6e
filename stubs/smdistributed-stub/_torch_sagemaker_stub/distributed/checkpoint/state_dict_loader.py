"""``load``: DCP's in-place load of a state dict."""

from __future__ import annotations

import torch.distributed.checkpoint as dcp
from torch.sagemaker.distributed.checkpoint._common import check_coordinator, local_path, tp_local


def load(state_dict, *, checkpoint_id=None, storage_reader=None, planner=None, process_group=None,
         check_keys_matched=True, coordinator_rank=0, s3_region=None, s3client_config=None) -> None:
    if checkpoint_id is None and storage_reader is None:
        raise ValueError("load: give checkpoint_id or storage_reader")
    checkpoint_id = local_path(checkpoint_id, "load")
    check_coordinator(process_group, coordinator_rank, "load")
    target = tp_local(state_dict, process_group)
    dcp.load(target, checkpoint_id=checkpoint_id, storage_reader=storage_reader, planner=planner,
             process_group=process_group)
    _copy_back(state_dict, target)


def _copy_back(original: dict, loaded: dict) -> None:
    """Tensors load in place; values DCP replaces (numbers, strings) are copied into the caller's dict."""
    if original is loaded:
        return
    for key, value in loaded.items():
        if isinstance(value, dict) and isinstance(original.get(key), dict):
            _copy_back(original[key], value)
        elif not hasattr(value, "shape"):
            original[key] = value
