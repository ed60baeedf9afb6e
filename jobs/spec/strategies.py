"""Distribution strategies: typed settings that render the SDK's ``distribution=`` dict and the script's flags.

Each class is one way to spread a training job over GPUs. It renders
- ``distribution(processes_per_host)``: the dict the SageMaker SDK's PyTorch estimator takes,
- ``script_settings()``: settings a training script may read (the launcher knows nothing of them). They travel in
  the job's environment as JSON (``SMJOBS_DISTRIBUTION``, read by ``smjobs_runtime.distribution()``), never on
  the script's command line, so any script runs under any strategy;
- ``sdk_hyperparameters()``: the ``sagemaker_*`` entries the SDK adds for it (counted against the
  100-hyperparameter limit and shown in the dry run; a test checks them against what the SDK sends).
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from smjobs.spec.field_docs import describe_fields


class _Strategy(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    processes_per_host: int | None = Field(default=None, ge=1, le=1_000_000)
    """Training processes on each instance; defaults to the instance's GPU count."""

    launcher: ClassVar[str] = "torchrun"
    """How SageMaker starts the processes."""
    notice: ClassVar[str | None] = None
    """Something a user of this strategy should know, shown by validate and submit."""

    def distribution(self, processes_per_host: int) -> dict:
        raise NotImplementedError

    def script_settings(self) -> dict:
        return {}

    def sdk_hyperparameters(self, instance_type: str) -> dict:
        raise NotImplementedError


class DDP(_Strategy):
    """PyTorch DistributedDataParallel, launched by torchrun (SageMaker's ``torch_distributed``)."""

    type: Literal["ddp"] = "ddp"

    def distribution(self, processes_per_host: int) -> dict:
        return {"torch_distributed": {"enabled": True}}

    def script_settings(self) -> dict:
        return {"parallel": "ddp"}

    def sdk_hyperparameters(self, instance_type: str) -> dict:
        return {"sagemaker_torch_distributed_enabled": True, "sagemaker_instance_type": instance_type}


class FSDP(_Strategy):
    """PyTorch FSDP2 (``fully_shard``) under torchrun; the sharding settings travel to the script."""

    type: Literal["fsdp"] = "fsdp"
    sharding: Literal["full_shard", "shard_grad_op", "hybrid_shard"] = "full_shard"
    """full_shard: parameters resharded after forward (ZeRO-3); shard_grad_op: kept after forward
    (ZeRO-2-like); hybrid_shard: shard within groups of ``shard_degree`` processes, replicate across."""
    shard_degree: int | None = Field(default=None, ge=1, le=1_000_000)
    """Processes per shard group for hybrid_shard; defaults to processes_per_host (one group per host)."""
    mixed_precision: Literal["fp32", "bf16", "fp16"] = "bf16"
    """Parameter dtype for compute; reductions stay in fp32."""
    cpu_offload: bool = False
    """Keep sharded parameters and optimizer state in host memory."""
    unsharded_microbatches: bool = False
    """With gradient accumulation, keep parameters and gradients unsharded from the first micro-batch to the last
    (FSDP2's set_requires_gradient_sync / set_reshard_after_backward): one all-gather and one reduce-scatter per
    step instead of per micro-batch, for an unsharded copy of the model in memory. The planner chooses it when
    communication would otherwise dominate."""

    def distribution(self, processes_per_host: int) -> dict:
        return {"torch_distributed": {"enabled": True}}

    def script_settings(self) -> dict:
        hps = {
            "parallel": "fsdp",
            "fsdp_sharding": self.sharding,
            "mixed_precision": self.mixed_precision,
            "fsdp_cpu_offload": self.cpu_offload,
        }
        if self.unsharded_microbatches:
            hps["fsdp_unsharded_microbatches"] = True
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

    def distribution(self, processes_per_host: int) -> dict:
        dataparallel: dict = {"enabled": True}
        if self.custom_mpi_options:
            dataparallel["custom_mpi_options"] = self.custom_mpi_options
        return {"smdistributed": {"dataparallel": dataparallel}}

    def script_settings(self) -> dict:
        return {"parallel": "ddp", "backend": "smddp"}

    def sdk_hyperparameters(self, instance_type: str) -> dict:
        return {
            "sagemaker_distributed_dataparallel_enabled": True,
            "sagemaker_instance_type": instance_type,
            "sagemaker_distributed_dataparallel_custom_mpi_options": self.custom_mpi_options,
        }


PIPELINE_SCHEDULES = (
    "GPipe", "1F1B", "Interleaved1F1B", "LoopedBFS", "InterleavedZeroBubble", "ZBVZeroBubble", "DualPipeV",
)
"""torch.distributed.pipelining's schedules (torch 2.13); a test checks the installed torch has each."""
MULTI_STAGE_SCHEDULES = ("Interleaved1F1B", "LoopedBFS", "InterleavedZeroBubble", "ZBVZeroBubble", "DualPipeV")
V_SHAPED_SCHEDULES = ("ZBVZeroBubble", "DualPipeV")


class _TorchrunStrategy(_Strategy):
    def distribution(self, processes_per_host: int) -> dict:
        return {"torch_distributed": {"enabled": True}}

    def sdk_hyperparameters(self, instance_type: str) -> dict:
        return {"sagemaker_torch_distributed_enabled": True, "sagemaker_instance_type": instance_type}


class PipelineParallel(_TorchrunStrategy):
    """Native ``torch.distributed.pipelining`` under torchrun, on a dp x pp x tp DeviceMesh."""

    type: Literal["pipeline"] = "pipeline"
    pp_degree: int = Field(default=2, ge=1, le=1_000_000)
    """Pipeline ranks (stages per replica, divided by virtual_stages)."""
    microbatches: int = Field(default=4, ge=1, le=100_000)
    """Micro-batches of each schedule step (each replica's batch is microbatches x accumulation_steps of them)."""
    accumulation_steps: int = Field(default=1, ge=1, le=100_000)
    """Schedule steps per optimizer step, gradients accumulated over them: fewer micro-batches held or
    buffered at once, for a bubble in each step."""
    schedule: Literal[PIPELINE_SCHEDULES] = "1F1B"  # type: ignore[valid-type]
    """GPipe, 1F1B, Interleaved1F1B, LoopedBFS, InterleavedZeroBubble, ZBVZeroBubble or DualPipeV."""
    virtual_stages: int = Field(default=1, ge=1, le=1_024)
    """Stages per pipeline rank: 1 for GPipe and 1F1B, >= 2 for the interleaved schedules, 2 for V-shaped ones."""
    dp_degree: int = Field(default=1, ge=1, le=1_000_000)
    """Data-parallel replicas of the whole pipeline."""
    tp_degree: int = Field(default=1, ge=1, le=1_000_000)
    """Tensor-parallel ranks within each stage (DTensor)."""
    num_layers: int | None = Field(default=None, ge=1, le=1_000_000)
    """Layers the model splits into; defaults to what the bundled scripts' hyperparameters say."""

    def script_settings(self) -> dict:
        return {
            "parallel": "pipeline",
            "pp_degree": self.pp_degree,
            "dp_degree": self.dp_degree,
            "tp_degree": self.tp_degree,
            "pp_schedule": self.schedule,
            "pp_microbatches": self.microbatches,
            "pp_virtual_stages": self.virtual_stages,
            # only when used: a script of the user's may not take it
            **({"pp_accumulation_steps": self.accumulation_steps} if self.accumulation_steps > 1 else {}),
        }


class NaiveModelParallel(_TorchrunStrategy):
    """Vertical split without micro-batches: each process holds consecutive layers and waits for the others.
    For comparison with the pipeline schedules."""

    type: Literal["naive_mp"] = "naive_mp"
    num_layers: int | None = Field(default=None, ge=1, le=1_000_000)
    """Layers the model splits into; defaults to what the bundled scripts' hyperparameters say."""

    def script_settings(self) -> dict:
        return {"parallel": "naive_mp"}


class ModelParallelV2(_Strategy):
    """SageMaker model parallelism v2 (``torch.sagemaker``): FSDP with hybrid sharding, tensor, context and
    expert parallelism, activation offloading. Runs in the smdistributed-modelparallel image."""

    type: Literal["smp_v2"] = "smp_v2"
    hybrid_shard_degree: int = Field(default=0, ge=0, le=1_000_000)
    """Processes each parameter is sharded across; 0 shards across the whole data-parallel group."""
    tensor_parallel_degree: int = Field(default=1, ge=1, le=1_000_000)
    """Processes each layer's weights are split across (SMP v2's tensor parallelism, inside an instance)."""
    context_parallel_degree: int = Field(default=1, ge=1, le=1_000_000)
    """Splits the sequence; at most hybrid_shard_degree."""
    expert_parallel_degree: int = Field(default=1, ge=1, le=1_000_000)
    """Spreads mixture-of-experts experts over this many processes."""
    sm_activation_offloading: bool = False
    """Offload checkpointed activations to host memory."""
    activation_loading_horizon: int = Field(default=2, ge=1, le=1_000_000)
    """Activations prefetched back to the GPU ahead of use (with offloading)."""
    fsdp_cache_flush_warnings: bool = True
    """Warn when PyTorch's caching allocator flushes its cache (a sign of memory pressure)."""
    allow_empty_shards: bool = False
    """Allow empty shards when a tensor does not divide evenly over the sharding group."""
    random_seed: int | None = None
    """Seed of the random operations in SMP v2's tensor- and expert-parallel modules; unset: SMP's default."""

    def parameters(self) -> dict:
        """``mp_parameters`` as SMP v2 reads them (only what differs from its defaults, plus the degrees)."""
        params: dict = {
            "hybrid_shard_degree": self.hybrid_shard_degree,
            "tensor_parallel_degree": self.tensor_parallel_degree,
        }
        if self.context_parallel_degree > 1:
            params["context_parallel_degree"] = self.context_parallel_degree
        if self.expert_parallel_degree > 1:
            params["expert_parallel_degree"] = self.expert_parallel_degree
        if self.sm_activation_offloading:
            params["sm_activation_offloading"] = True
            params["activation_loading_horizon"] = self.activation_loading_horizon
        if not self.fsdp_cache_flush_warnings:
            params["fsdp_cache_flush_warnings"] = False
        if self.allow_empty_shards:
            params["allow_empty_shards"] = True
        if self.random_seed is not None:
            params["random_seed"] = self.random_seed
        return params

    def distribution(self, processes_per_host: int) -> dict:
        return {
            "torch_distributed": {"enabled": True},
            "smdistributed": {"modelparallel": {"enabled": True, "parameters": self.parameters()}},
        }

    def script_settings(self) -> dict:
        return {"parallel": "smp_v2"}

    def sdk_hyperparameters(self, instance_type: str) -> dict:
        return {
            "mp_parameters": self.parameters(),
            "sagemaker_distributed_dataparallel_enabled": False,
            "sagemaker_instance_type": instance_type,
            "sagemaker_torch_distributed_enabled": True,
        }


class ModelParallelV1(_Strategy):
    """SageMaker model parallelism v1 (``smdistributed.modelparallel.torch``), launched with MPI.

    In maintenance: its last release supports PyTorch 2.0.0. Prefer smp_v2 or pipeline for new work."""

    type: Literal["smp_v1"] = "smp_v1"
    launcher: ClassVar[str] = "mpirun"
    notice: ClassVar[str | None] = (
        "SageMaker model parallelism v1 is in maintenance (its last release supports PyTorch 2.0.0); "
        "prefer smp_v2 or pipeline for new work."
    )
    partitions: int = Field(default=2, ge=1, le=1_000_000)
    """Pipeline partitions the model is split into."""
    microbatches: int = Field(default=4, ge=1, le=100_000)
    """Micro-batches each batch is split into for the pipeline."""
    pipeline: Literal["simple", "interleaved"] = "interleaved"
    """SMP v1's pipeline schedule: simple (all forwards, then all backwards) or interleaved (1F1B)."""
    optimize: Literal["speed", "memory"] = "speed"
    """What SMP v1's partitioning and tensor parallelism favour."""
    placement_strategy: Literal["cluster", "spread"] = "cluster"
    """How ranks are laid out over the parallel groups: cluster keeps a model replica's partitions on neighbouring
    GPUs, spread puts data-parallel replicas next to each other."""
    ddp: bool = False
    """Data parallelism across model replicas; required with tensor_parallel_degree > 1."""
    tensor_parallel_degree: int = Field(default=1, ge=1, le=1_000_000)
    """Processes each distributed module's weights are split across (SMP v1's tensor parallelism)."""
    custom_mpi_options: str = ""
    """Extra mpirun options, passed through as SageMaker's ``custom_mpi_options``."""

    def parameters(self) -> dict:
        params = {
            "partitions": self.partitions,
            "microbatches": self.microbatches,
            "pipeline": self.pipeline,
            "optimize": self.optimize,
            "placement_strategy": self.placement_strategy,
            "ddp": self.ddp,
        }
        if self.tensor_parallel_degree > 1:
            params["tensor_parallel_degree"] = self.tensor_parallel_degree
        return params

    def distribution(self, processes_per_host: int) -> dict:
        mpi = {"enabled": True, "processes_per_host": processes_per_host, "custom_mpi_options": self.custom_mpi_options}
        return {"smdistributed": {"modelparallel": {"enabled": True, "parameters": self.parameters()}}, "mpi": mpi}

    def script_settings(self) -> dict:
        return {"parallel": "smp_v1"}

    def sdk_hyperparameters(self, instance_type: str) -> dict:
        return {
            "sagemaker_mpi_enabled": True,
            "sagemaker_mpi_custom_mpi_options": self.custom_mpi_options,
            "mp_parameters": self.parameters(),
            "sagemaker_distributed_dataparallel_enabled": False,
            "sagemaker_instance_type": instance_type,
        }


Strategy = Annotated[
    DDP | FSDP | SMDDP | PipelineParallel | NaiveModelParallel | ModelParallelV2 | ModelParallelV1,
    Field(discriminator="type"),
]
STRATEGY_TYPES = {
    cls.model_fields["type"].default: cls
    for cls in (DDP, FSDP, SMDDP, PipelineParallel, NaiveModelParallel, ModelParallelV2, ModelParallelV1)
}


describe_fields(__name__)  # each field's docstring is its description
