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


def init_default_group(backend: str) -> Launch:
    """Initialise torch.distributed's default group (once) from the launcher's environment."""
    import torch.distributed as dist

    me = launch()
    if dist.is_initialized():
        return me
    if me.launcher == "mpi":
        _mpi_rendezvous(me)
    elif me.launcher == "single":
        os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
        os.environ.setdefault("MASTER_PORT", str(_free_port()))
    os.environ.update(RANK=str(me.rank), WORLD_SIZE=str(me.world_size), LOCAL_RANK=str(me.local_rank))
    dist.init_process_group(backend=backend, timeout=TIMEOUT)
    atexit.register(_tear_down)
    return me


def _tear_down() -> None:
    """The library owns the group it started: end it before interpreter finalisation, where gloo's threads can
    abort the process (scripts written for SMDDP/SMP never destroy it themselves)."""
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()
