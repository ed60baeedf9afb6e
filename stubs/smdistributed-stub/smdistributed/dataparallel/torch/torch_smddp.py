"""Importing this module registers the ``smddp`` backend of ``torch.distributed``, as SMDDP >= 1.4 does.

``dist.init_process_group(backend="smddp")`` then works with DDP and FSDP, under torchrun or (the import exports
RANK, WORLD_SIZE, LOCAL_RANK and the rendezvous address from Open MPI's environment) under mpirun. The stub's backend delegates to the
process group torch has for the device: gloo on CPU, NCCL on CUDA (SMDDP's own all-reduce and all-gather
algorithms for EFA are not emulated; the results are the same, the speed is NCCL's).
"""

from __future__ import annotations

from datetime import timedelta

import torch
import torch.distributed as dist

from smdistributed._launch import export_torch_environment, launch, settle_at_exit

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
settle_at_exit()  # scripts on this backend end without tearing it down: see smdistributed._launch._settle
if launch().launcher == "mpi":  # under mpirun, as on SageMaker: give init_process_group its env:// variables
    export_torch_environment()
