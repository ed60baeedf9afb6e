"""SageMaker model parallelism v2 (``torch.sagemaker``), emulated on torch.distributed for local runs.

SMP v2 is a set of patches to PyTorch that SageMaker's ``pytorch-smp`` images install into torch itself. This
stand-in is served under the same name by smdistributed-stub (``_smdistributed_stub_hook``) when torch has no
``sagemaker`` package, so an SMP v2 script runs unmodified on CPU (gloo) or local GPUs:

- ``tsm.init()`` reads the configuration (see ``_config``), builds the (replicate, shard, tp) device mesh and
  fills ``tsm.state``, and patches ``torch.distributed.fsdp.FullyShardedDataParallel`` the way SMP does, so that
  FSDP shards over ``hybrid_shard_degree`` processes and across tensor-parallel shards without a process group
  from the script (``_fsdp``).
- ``tsm.transform(model)`` applies tensor parallelism with ``torch.distributed.tensor`` where the model carries
  a Hugging Face tensor-parallel plan, and loads rank 0's weights everywhere when asked (``_transform``).
- ``delayed_param``, ``grad_norm``, ``distributed.checkpoint`` and ``checkpoint.utils`` follow AWS's API reference
  over torch's own meta-device initialisation, norms and distributed checkpointing (DCP).

What needs SMP's CUDA kernels (FP8 and Transformer Engine, FlashAttention, SMP's own transformer and MoE modules,
context and expert parallelism) raises NotImplementedError with the reason. See the stub's README.
"""

from __future__ import annotations

if __name__ != "torch.sagemaker":
    raise ImportError("import torch.sagemaker (smdistributed-stub serves it from here), not _torch_sagemaker_stub")

from smdistributed._guard import refuse_to_shadow  # noqa: E402

refuse_to_shadow()

from torch.sagemaker.state_handler import state  # noqa: E402

__version__ = "2.8.0"
"""The SMP v2 release whose API the stand-in follows (the newest in AWS's release notes it was built from)."""
__stub__ = True


def init(config=None) -> None:
    """Initialise SMP v2 from the job's ``mp_parameters`` over ``config`` (a dict or a JSON file's path)."""
    from torch.sagemaker import _setup

    _setup.init(config)


def is_initialized() -> bool:
    return state.initialized


def transform(model, device=None, dtype=None, config=None, load_state_dict_from_rank0: bool = False,
              cp_comm_type: str = "p2p"):
    """Prepare ``model`` for SMP v2: tensor parallelism (where configured) and rank 0's weights (when asked)."""
    from torch.sagemaker import _transform

    return _transform.transform(model, device=device, dtype=dtype, config=config,
                                load_state_dict_from_rank0=load_state_dict_from_rank0, cp_comm_type=cp_comm_type)
