"""Who this process is in the job, whichever launcher started it, and the default process group.

torchrun (and SageMaker's torch_distributed launcher) set RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE,
MASTER_ADDR and MASTER_PORT. Open MPI's mpirun (SageMaker's launcher for SMDDP and SMP v1) sets
OMPI_COMM_WORLD_RANK, _SIZE, _LOCAL_RANK and _LOCAL_SIZE but no rendezvous address: the first host of the
job (SM_HOSTS) is the master, and rank 0 picks a free port that mpi4py broadcasts.
"""

from __future__ import annotations

import atexit
import json
import os
import socket
from dataclasses import dataclass
from datetime import timedelta

TIMEOUT = timedelta(seconds=int(os.environ.get("SMDISTRIBUTED_STUB_TIMEOUT_S", "300")))


@dataclass(frozen=True)
class Launch:
    rank: int
    world_size: int
    local_rank: int
    local_size: int
    launcher: str
    """torchrun, mpi or single (a plain ``python script.py``)."""


def launch(environ=None) -> Launch:
    env = os.environ if environ is None else environ
    if "OMPI_COMM_WORLD_RANK" in env:
        return Launch(int(env["OMPI_COMM_WORLD_RANK"]), int(env["OMPI_COMM_WORLD_SIZE"]),
                      int(env.get("OMPI_COMM_WORLD_LOCAL_RANK", 0)), int(env.get("OMPI_COMM_WORLD_LOCAL_SIZE", 1)), "mpi")
    if "RANK" in env and "WORLD_SIZE" in env:
        world = int(env["WORLD_SIZE"])
        return Launch(int(env["RANK"]), world, int(env.get("LOCAL_RANK", 0)), int(env.get("LOCAL_WORLD_SIZE", world)), "torchrun")
    return Launch(0, 1, 0, 1, "single")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("", 0))
        return sock.getsockname()[1]


def _mpi_rendezvous(me: Launch) -> None:
    if "MASTER_ADDR" not in os.environ:
        hosts = json.loads(os.environ.get("SM_HOSTS", '["127.0.0.1"]'))
        os.environ["MASTER_ADDR"] = hosts[0] if len(hosts) > 1 else "127.0.0.1"
    if "MASTER_PORT" not in os.environ:
        from mpi4py import MPI  # SageMaker's MPI images have it; only MPI launches need it

        port = MPI.COMM_WORLD.bcast(_free_port() if me.rank == 0 else None, root=0)
        os.environ["MASTER_PORT"] = str(port)


def export_torch_environment() -> Launch:
    """Set the variables torch.distributed's env:// initialisation reads (RANK, WORLD_SIZE, LOCAL_RANK,
    LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT) from whichever launcher started this process, as SageMaker's
    libraries do under mpirun; scripts then call ``dist.init_process_group`` themselves."""
    me = launch()
    if me.launcher == "mpi":
        _mpi_rendezvous(me)
    elif me.launcher == "single":
        os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
        os.environ.setdefault("MASTER_PORT", str(_free_port()))
    os.environ.update(RANK=str(me.rank), WORLD_SIZE=str(me.world_size), LOCAL_RANK=str(me.local_rank),
                      LOCAL_WORLD_SIZE=str(me.local_size))
    return me


def init_default_group(backend: str) -> Launch:
    """Initialise torch.distributed's default group (once) from the launcher's environment."""
    import torch.distributed as dist

    if dist.is_initialized():
        return launch()
    me = export_torch_environment()
    dist.init_process_group(backend=backend, timeout=TIMEOUT)
    settle_at_exit()
    return me


SETTLE_S = 0.2
_settling = False


def settle_at_exit() -> None:
    """Register (once) the end-of-process step the library takes for the scripts it runs."""
    global _settling
    if not _settling:
        _settling = True
        atexit.register(_settle)


def _settle() -> None:
    """End the process group and give gloo's worker threads a moment, while the interpreter still runs, to release
    the collectives they finished. A worker that releases one during finalisation must take the GIL to free its
    tensors, Python ends such threads with a forced unwind, and the C++ destructor on the stack turns that into
    std::terminate: "terminate called without an active exception", SIGABRT, after the training succeeded
    (seen about once in 30 runs of the test scripts; gdb shows AsyncAllgatherWork's destructor in
    ProcessGroupGloo::runLoop). Scripts written for SMDDP and SMP never tear the group down themselves."""
    import time

    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()
    time.sleep(SETTLE_S)  # releases the GIL, so that the workers can finish their releases
