"""Distribution strategies: typed settings that render the SDK's ``distribution=`` dict and the script's flags.

Each class is one way to spread a training job over GPUs. It renders
- ``distribution()``: the dict the SageMaker SDK's PyTorch estimator takes,
- ``script_hyperparameters()``: settings the training script reads (the launcher knows nothing of them),
- ``sdk_hyperparameters()``: the ``sagemaker_*`` entries the SDK adds for it (counted against the
  100-hyperparameter limit and shown in the dry run; a test checks them against what the SDK sends).
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Strategy(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    processes_per_host: int | None = Field(default=None, ge=1)
    """Training processes on each instance; defaults to the instance's GPU count."""

    launcher: ClassVar[str] = "torchrun"
    """How SageMaker starts the processes."""

    def distribution(self) -> dict:
        raise NotImplementedError

    def script_hyperparameters(self) -> dict:
        return {}

    def sdk_hyperparameters(self, instance_type: str) -> dict:
        raise NotImplementedError


class DDP(_Strategy):
    """PyTorch DistributedDataParallel, launched by torchrun (SageMaker's ``torch_distributed``)."""

    type: Literal["ddp"] = "ddp"

    def distribution(self) -> dict:
        return {"torch_distributed": {"enabled": True}}

    def script_hyperparameters(self) -> dict:
        return {"parallel": "ddp"}

    def sdk_hyperparameters(self, instance_type: str) -> dict:
        return {"sagemaker_torch_distributed_enabled": True, "sagemaker_instance_type": instance_type}


class FSDP(_Strategy):
    """PyTorch FSDP2 (``fully_shard``) under torchrun; the sharding settings travel to the script."""

    type: Literal["fsdp"] = "fsdp"
    sharding: Literal["full_shard", "shard_grad_op", "hybrid_shard"] = "full_shard"
    """full_shard: parameters resharded after forward (ZeRO-3); shard_grad_op: kept after forward
    (ZeRO-2-like); hybrid_shard: shard within groups of ``shard_degree`` processes, replicate across."""
    shard_degree: int | None = Field(default=None, ge=1)
    """Processes per shard group for hybrid_shard; defaults to processes_per_host (one group per host)."""
    mixed_precision: Literal["fp32", "bf16", "fp16"] = "bf16"
    """Parameter dtype for compute; reductions stay in fp32."""
    cpu_offload: bool = False
    """Keep sharded parameters and optimizer state in host memory."""

    def distribution(self) -> dict:
        return {"torch_distributed": {"enabled": True}}

    def script_hyperparameters(self) -> dict:
        hps = {
            "parallel": "fsdp",
            "fsdp_sharding": self.sharding,
            "mixed_precision": self.mixed_precision,
            "fsdp_cpu_offload": self.cpu_offload,
        }
        if self.shard_degree is not None:
            hps["fsdp_shard_degree"] = self.shard_degree
        return hps

    def sdk_hyperparameters(self, instance_type: str) -> dict:
        return {"sagemaker_torch_distributed_enabled": True, "sagemaker_instance_type": instance_type}


class SMDDP(_Strategy):
    """SageMaker's distributed data parallel library (``smdistributed.dataparallel``), launched with MPI."""

    type: Literal["smddp"] = "smddp"
    launcher: ClassVar[str] = "mpirun"
    custom_mpi_options: str = ""
    """Extra ``mpirun`` options, e.g. ``-verbose -x NCCL_DEBUG=VERSION``."""

    def distribution(self) -> dict:
        dataparallel: dict = {"enabled": True}
        if self.custom_mpi_options:
            dataparallel["custom_mpi_options"] = self.custom_mpi_options
        return {"smdistributed": {"dataparallel": dataparallel}}

    def script_hyperparameters(self) -> dict:
        return {"parallel": "ddp", "backend": "smddp"}

    def sdk_hyperparameters(self, instance_type: str) -> dict:
        return {
            "sagemaker_distributed_dataparallel_enabled": True,
            "sagemaker_instance_type": instance_type,
            "sagemaker_distributed_dataparallel_custom_mpi_options": self.custom_mpi_options,
        }


Strategy = Annotated[DDP | FSDP | SMDDP, Field(discriminator="type")]
STRATEGY_TYPES = {cls.model_fields["type"].default: cls for cls in (DDP, FSDP, SMDDP)}
