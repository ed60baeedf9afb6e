"""SMDDP and SMP v1 jobs, which SageMaker starts with mpirun: whether this machine can run the container toolkit's
MPI runner, and the hyperparameters that make the toolkit use torchrun instead when it cannot."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import socket
import sys
from pathlib import Path

from smjobs.request.training import TrainingRequest

HOST = "algo-1"
"""The one host of a local run, named as SageMaker names a job's first container."""


def uses_smdistributed(request: TrainingRequest) -> bool:
    """SMDDP and SMP v1 jobs: their scripts import smdistributed, and SageMaker starts them with mpirun. (SMP v2
    names smdistributed's modelparallel too, but with torch_distributed: torchrun, and ``torch.sagemaker``.)"""
    distribution = request.estimator["distribution"]
    if uses_smp_v2(request):
        return False
    libraries = distribution.get("smdistributed", {})
    return any(libraries.get(name, {}).get("enabled") for name in ("dataparallel", "modelparallel"))


def uses_smp_v2(request: TrainingRequest) -> bool:
    distribution = request.estimator["distribution"]
    return bool(distribution.get("torch_distributed", {}).get("enabled")
                and distribution.get("smdistributed", {}).get("modelparallel", {}).get("enabled"))


SSHD = Path("/usr/sbin/sshd")


def mpi_runner_missing() -> list[str]:
    """What the container toolkit's MPI runner (SageMaker's launcher for SMDDP and SMP v1) needs and this machine
    lacks: it runs mpirun over SSH to the hosts by their container names, as inside SageMaker's images."""
    search = str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", "")  # the toolkit's PATH
    missing = []
    if shutil.which("mpirun", path=search) is None:
        missing.append("Open MPI's mpirun")
    if importlib.util.find_spec("mpi4py") is None:
        missing.append("mpi4py")
    if not SSHD.exists():
        missing.append(f"an SSH daemon at {SSHD}")
    try:
        socket.gethostbyname(HOST)
    except OSError:
        missing.append(f"the host name {HOST}")
    return missing


def launcher(request: TrainingRequest) -> str:
    """How the local run starts the processes: the job's own launcher, or torchrun for MPI jobs when the
    toolkit's MPI runner cannot work here."""
    if uses_smdistributed(request):
        missing = mpi_runner_missing()
        return ("mpirun (SageMaker's MPI runner)" if not missing else
                f"torchrun (SageMaker's MPI runner needs {', '.join(missing)}; the stub reads torchrun's environment)")
    return "torchrun"


def torchrun_instead_of_mpi(hyperparameters: dict) -> dict:
    """The container toolkit picks its runner from these flags; without MPI, SMDDP and SMP v1 jobs get torchrun."""
    out = dict(hyperparameters)
    for flag in ("sagemaker_distributed_dataparallel_enabled", "sagemaker_mpi_enabled"):
        if flag in out:
            out[flag] = json.dumps(False)
    out["sagemaker_torch_distributed_enabled"] = json.dumps(True)
    return out
