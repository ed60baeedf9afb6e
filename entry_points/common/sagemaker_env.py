"""The SageMaker training-container contract, with local fallbacks.

Inside SageMaker the container toolkit sets ``SM_*`` variables; torchrun sets RANK, WORLD_SIZE and
friends. Run by hand (``python train.py`` or ``torchrun ... train.py``), the same script writes under
``$SAGEMAKER_BASE_DIR`` or ``./opt_ml`` instead of ``/opt/ml``.
"""

from __future__ import annotations

import contextlib
import json
import os
import traceback
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class SageMakerEnv:
    model_dir: Path
    """Where rank 0 saves the final model (uploaded as model.tar.gz)."""
    output_data_dir: Path
    """Other artefacts (metrics, plots), uploaded as output.tar.gz."""
    failure_file: Path
    """SageMaker shows this file's text as the job's FailureReason."""
    checkpoint_dir: Path
    """Synced with the job's checkpoint_s3_uri."""
    channels: dict[str, Path] = field(default_factory=dict)
    num_gpus: int = 0
    hosts: tuple[str, ...] = ("localhost",)
    current_host: str = "localhost"
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    local_world_size: int = 1

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def _base_dir(environ) -> Path:
    if environ.get("SAGEMAKER_BASE_DIR"):
        return Path(environ["SAGEMAKER_BASE_DIR"])
    if Path("/opt/ml").is_dir() and os.access("/opt/ml", os.W_OK):
        return Path("/opt/ml")
    return Path.cwd() / "opt_ml"


def from_environ(environ=None) -> SageMakerEnv:
    environ = os.environ if environ is None else environ
    base = _base_dir(environ)
    channels = {
        key[len("SM_CHANNEL_"):].lower(): Path(value)
        for key, value in environ.items()
        if key.startswith("SM_CHANNEL_") and key != "SM_CHANNELS"
    }
    hosts = tuple(json.loads(environ.get("SM_HOSTS", '["localhost"]')))
    return SageMakerEnv(
        model_dir=Path(environ.get("SM_MODEL_DIR", base / "model")),
        output_data_dir=Path(environ.get("SM_OUTPUT_DATA_DIR", base / "output" / "data")),
        failure_file=Path(environ.get("SM_OUTPUT_DIR", base / "output")) / "failure",
        checkpoint_dir=Path(environ.get("SMJOBS_CHECKPOINT_DIR", base / "checkpoints")),
        channels=channels,
        num_gpus=int(environ.get("SM_NUM_GPUS", "0")),
        hosts=hosts,
        current_host=environ.get("SM_CURRENT_HOST", hosts[0]),
        rank=int(environ.get("RANK", "0")),
        local_rank=int(environ.get("LOCAL_RANK", "0")),
        world_size=int(environ.get("WORLD_SIZE", "1")),
        local_world_size=int(environ.get("LOCAL_WORLD_SIZE", "1")),
    )


@contextlib.contextmanager
def reporting_failures(env: SageMakerEnv):
    """Around a training script's work: on an error, append its traceback to SageMaker's failure file (shown
    as the job's FailureReason); in every case, tear the process group down."""
    import torch.distributed as dist

    try:
        yield
    except Exception:
        env.failure_file.parent.mkdir(parents=True, exist_ok=True)
        with env.failure_file.open("a") as f:
            f.write(f"rank {env.rank}: {traceback.format_exc(limit=5)}")
        raise
    finally:
        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()


def save_model(env: SageMakerEnv, payload: dict) -> None:
    """Write the model where SageMaker packs model.tar.gz from (call on one rank)."""
    import torch

    env.model_dir.mkdir(parents=True, exist_ok=True)
    torch.save(payload, env.model_dir / "model.pt")
    print(f"saved model to {env.model_dir / 'model.pt'}", flush=True)


def exit_cleanly() -> None:
    """End a successful run without Python's interpreter finalization.

    At finalization, process-group objects still referenced by modules (device meshes, pipeline stages, FSDP
    state) are destroyed while gloo's C++ worker threads may still hold work items; now and then that aborts
    the process with SIGABRT ("terminate called without an active exception", see pytorch/pytorch#179291)
    after training succeeded. The process group is already destroyed and the outputs are written here.
    """
    import sys

    sys.stdout.flush()
    sys.stderr.flush()
    # launched by mpirun (SMDDP, SMP v1), whose library loaded mpi4py: MPI must be finalised, or mpirun reports the
    # rank as exiting improperly and fails the job
    mpi = sys.modules.get("mpi4py.MPI")
    if mpi is not None and mpi.Is_initialized() and not mpi.Is_finalized():
        mpi.Finalize()
    os._exit(0)
