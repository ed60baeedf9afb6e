"""Importing this module registers the ``smddp`` backend of ``torch.distributed``, as SMDDP >= 1.4 does.

``dist.init_process_group(backend="smddp")`` then works with DDP and FSDP. The stub's backend delegates to the
process group torch has for the device: gloo on CPU, NCCL on CUDA (SMDDP's own all-reduce and all-gather
algorithms for EFA are not emulated; the results are the same, the speed is NCCL's).
"""

from __future__ import annotations

from datetime import timedelta

import torch
import torch.distributed as dist

BACKEND = "smddp"


def _create_process_group(store, rank: int, world_size: int, timeout: timedelta):
    if torch.cuda.is_available():
        options = dist.ProcessGroupNCCL.Options()
        options._timeout = timeout
        return dist.ProcessGroupNCCL(store, rank, world_size, options)
    return dist.ProcessGroupGloo(store, rank, world_size, timeout)


def _register() -> None:
    if hasattr(dist.Backend, BACKEND.upper()):  # imported before: torch refuses a second registration
        return
    devices = ["cuda"] if torch.cuda.is_available() else ["cpu"]  # a list: a plain string is read per character
    dist.Backend.register_backend(BACKEND, _create_process_group, devices=devices)


_register()
