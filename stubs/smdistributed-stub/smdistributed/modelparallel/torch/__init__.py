"""``smdistributed.modelparallel.torch`` (SMP v1), emulated on torch.distributed. Import it as ``smp``.

Local semantics (README.md has the full coverage table):
- ``smp.init()`` reads the job's ``mp_parameters`` (SM_HP_MP_PARAMETERS), starts torch.distributed from the
  launcher's environment (torchrun or mpirun) and places every rank on the pipeline, tensor and reduced-data
  axes exactly as ``placement_strategy`` says; all the rank and size functions and process groups follow.
- Pipeline partitions are *replicated*, not split: every rank of a model replica holds the whole model and runs
  every micro-batch, so the ranks of one replica compute the same numbers (memory is not saved). As in SMP, a
  step's tensor inputs are pp_rank 0's: they are broadcast over the pipeline group, so the other pipeline ranks may
  be fed dummy batches. With ``tensor_parallel_degree`` > 1 no module is tensor-parallel (the stub has no
  distributed modules; ``model_creation(tensor_parallelism=True)`` and its kin are accepted and change nothing), so
  the tensor-parallel ranks act as further data-parallel ranks. Results equal a one-process run on the whole batch.
- Where SMP initialises itself at import (an MPI launch with the job's ``SM_HP_MP_PARAMETERS`` and no
  ``SMP_MANUAL_INIT=1``), so does the stub, and the job's mp_parameters win over a dict given to ``smp.init``.
- ``@smp.step`` really splits its inputs into ``microbatches`` along the batch axis, runs the function once per
  micro-batch, averages gradients over micro-batches (``model.backward``) and then across DP_GROUP, and returns
  ``StepOutput`` objects.
- What is not emulated raises NotImplementedError naming the API.
"""

from __future__ import annotations

import contextlib
import enum
import os
import warnings

import torch
import torch.distributed as dist
import torch.utils.checkpoint

from smdistributed._launch import init_default_group
from smdistributed.modelparallel.torch import _state, amp, nn, optimizers, patches  # noqa: F401  (smp.nn, smp.amp, ...)
from smdistributed.modelparallel.torch._checkpoint import load, resume_from_checkpoint, save, save_checkpoint
from smdistributed.modelparallel.torch._model import DistributedModel, DistributedOptimizer
from smdistributed.modelparallel.torch._step import StepOutput, step
from smdistributed.modelparallel.torch._topology import all_groups, config_from, topology

__all__ = [
    "CommGroup", "DistributedModel", "DistributedOptimizer", "RankType", "StepOutput", "allgather", "barrier", "broadcast",
    "dp_barrier", "dp_rank", "dp_size", "get_dp_group", "get_dp_process_group", "get_mp_group", "get_mp_process_group",
    "get_pp_group", "get_pp_process_group", "get_rdp_group", "get_rdp_process_group", "get_tp_group", "get_tp_process_group",
    "get_world_process_group", "init",
    "is_initialized", "is_tracing", "load", "local_rank", "local_size", "model_creation", "mp_barrier", "mp_rank", "mp_size",
    "partition", "pp_rank", "pp_size", "rank", "rdp_rank", "rdp_size", "recv_from", "resume_from_checkpoint", "save",
    "save_checkpoint", "send", "set_partition", "size", "state", "step", "tp_rank", "tp_size",
]


class CommGroup(enum.Enum):
    WORLD = "WORLD"
    MP_GROUP = "MP_GROUP"
    DP_GROUP = "DP_GROUP"
    PP_GROUP = "PP_GROUP"
    TP_GROUP = "TP_GROUP"
    RDP_GROUP = "RDP_GROUP"


WORLD, MP_GROUP, DP_GROUP = CommGroup.WORLD, CommGroup.MP_GROUP, CommGroup.DP_GROUP
PP_GROUP, TP_GROUP, RDP_GROUP = CommGroup.PP_GROUP, CommGroup.TP_GROUP, CommGroup.RDP_GROUP


class RankType(enum.Enum):
    WORLD_RANK = "WORLD"
    MP_RANK = "MP_GROUP"
    DP_RANK = "DP_GROUP"
    PP_RANK = "PP_GROUP"
    TP_RANK = "TP_GROUP"
    RDP_RANK = "RDP_GROUP"


# ----- initialisation ------------------------------------------------------------------------------------
def _sagemaker_launch() -> bool:
    """SMP's own test for "inside a SageMaker job": the job's mp_parameters and an MPI launch. There SMP calls
    ``init()`` when it is imported, unless ``SMP_MANUAL_INIT`` is set to 1."""
    return "SM_HP_MP_PARAMETERS" in os.environ and "OMPI_COMM_WORLD_RANK" in os.environ


def init(config: dict | None = None) -> None:
    """Start SMP: the configuration, torch.distributed, the rank groups.

    The configuration, as SMP reads it: inside a SageMaker job (see ``_sagemaker_launch``) SMP has initialised
    itself from the job's mp_parameters at import, and a later ``smp.init(config)`` is ignored with a warning.
    Elsewhere (torchrun, or ``SMP_MANUAL_INIT=1``) the keys ``config`` sets win over the job's mp_parameters, and
    the job's fill in the rest."""
    if _state.initialized():
        if config and _state.current("smp.init").topology.rank == 0:
            warnings.warn("smdistributed-stub: SageMaker model parallelism is initialized already (from the job's "
                          "mp_parameters, at import); this smp.init(config) call is ignored, as SMP ignores it. Set "
                          "SMP_MANUAL_INIT=1 in the job's environment to initialise from the script's dict.", stacklevel=2)
        return
    cfg = config_from(config)
    me = init_default_group("nccl" if torch.cuda.is_available() else "gloo")
    topo = topology(cfg, dist.get_rank(), dist.get_world_size())
    groups, members = {"WORLD": dist.group.WORLD}, {"WORLD": list(range(topo.world_size))}
    for name, rank_lists in all_groups(topo).items():
        if name == "WORLD":
            continue
        for ranks in rank_lists:  # every rank creates every group, in the same order
            group = dist.new_group(ranks)
            if topo.rank in ranks:
                groups[name], members[name] = group, ranks
    _state.set_session(_state.Session(cfg, topo, groups, members, me.local_rank, me.local_size))


def is_initialized() -> bool:
    return _state.initialized()


def is_tracing() -> bool:
    """The stub does not trace the model to partition it."""
    return False


# ----- ranks and sizes -----------------------------------------------------------------------------------
def _index(group: str) -> int:
    return _state.current(f"smp rank of {group}").index_in(group)


def _size(group: str) -> int:
    return len(_state.current(f"smp size of {group}").members[group])


def rank() -> int:
    return _state.current("smp.rank").topology.rank


def size() -> int:
    return _state.current("smp.size").topology.world_size


def local_rank() -> int:
    return _state.current("smp.local_rank").local_rank


def local_size() -> int:
    return _state.current("smp.local_size").local_size


def pp_rank() -> int:
    return _state.current("smp.pp_rank").topology.coords[rank()]["P"]


def tp_rank() -> int:
    return _state.current("smp.tp_rank").topology.coords[rank()]["T"]


def rdp_rank() -> int:
    return _state.current("smp.rdp_rank").topology.coords[rank()]["D"]


def pp_size() -> int:
    return _state.current("smp.pp_size").topology.pp_size


def tp_size() -> int:
    return _state.current("smp.tp_size").topology.tp_size


def rdp_size() -> int:
    return _state.current("smp.rdp_size").topology.rdp_size


def mp_rank() -> int:
    return _index("MP_GROUP")


def mp_size() -> int:
    return _size("MP_GROUP")


def dp_rank() -> int:
    return _index("DP_GROUP")


def dp_size() -> int:
    return _size("DP_GROUP")


def get_tp_group() -> list[int]:
    return list(_state.current("smp.get_tp_group").members["TP_GROUP"])


def get_pp_group() -> list[int]:
    return list(_state.current("smp.get_pp_group").members["PP_GROUP"])


def get_rdp_group() -> list[int]:
    return list(_state.current("smp.get_rdp_group").members["RDP_GROUP"])


def get_mp_group() -> list[int]:
    return list(_state.current("smp.get_mp_group").members["MP_GROUP"])


def get_dp_group() -> list[int]:
    return list(_state.current("smp.get_dp_group").members["DP_GROUP"])


def _process_group(name: str):
    return _state.current(f"smp process group {name}").groups[name]


def get_world_process_group():
    return _process_group("WORLD")


def get_mp_process_group():
    return _process_group("MP_GROUP")


def get_dp_process_group():
    return _process_group("DP_GROUP")


def get_pp_process_group():
    return _process_group("PP_GROUP")


def get_tp_process_group():
    return _process_group("TP_GROUP")


def get_rdp_process_group():
    return _process_group("RDP_GROUP")


# ----- communication -------------------------------------------------------------------------------------
def _group_name(group) -> str:
    return group.value if isinstance(group, CommGroup) else str(group)


def _global_rank(peer: int, rank_type: RankType) -> int:
    if rank_type is RankType.WORLD_RANK:
        return peer
    return _state.current("smp.send/recv_from").members[rank_type.value][peer]


def barrier(group=CommGroup.WORLD) -> None:
    dist.barrier(group=_process_group(_group_name(group)))


def dp_barrier() -> None:
    barrier(CommGroup.DP_GROUP)


def mp_barrier() -> None:
    barrier(CommGroup.MP_GROUP)


def broadcast(obj, group=CommGroup.WORLD) -> None:
    """Send ``obj`` to every other process of ``group``; they receive it with ``recv_from``."""
    me = rank()
    for peer in _state.current("smp.broadcast").members[_group_name(group)]:
        if peer != me:
            dist.send_object_list([obj], dst=peer)


def send(obj, dest_rank: int, rank_type: RankType) -> None:
    dist.send_object_list([obj], dst=_global_rank(dest_rank, rank_type))


def recv_from(src_rank: int, rank_type: RankType):
    box = [None]
    dist.recv_object_list(box, src=_global_rank(src_rank, rank_type))
    return box[0]


def allgather(obj, group=CommGroup.WORLD) -> list:
    name = _group_name(group)
    out = [None] * _size(name)
    dist.all_gather_object(out, obj, group=_process_group(name))
    return out


# ----- the training step: _step.py

# ----- context managers ----------------------------------------------------------------------------------
@contextlib.contextmanager
def partition(index: int):
    """Manual partitioning: checked, and the modules created inside are (locally) replicated like all others."""
    if not 0 <= index < pp_size():
        raise ValueError(f"smp.partition({index}): the job has {pp_size()} partitions (0 to {pp_size() - 1})")
    yield


def set_partition(module, index: int) -> None:
    """Manual partitioning of one module: checked; locally every module stays on every rank (replicated)."""
    if not 0 <= index < pp_size():
        raise ValueError(f"smp.set_partition(..., {index}): the job has {pp_size()} partitions (0 to {pp_size() - 1})")


class _StateView:
    """``smp.state``: the session's model, optimizer and configuration (``cfg``: every mp_parameters key, defaults
    filled in), as Hugging Face's Trainer reads them."""

    @property
    def model(self):
        return _state.current("smp.state.model").model

    @property
    def optimizer(self):
        return _state.current("smp.state.optimizer").optimizer

    @property
    def cfg(self):
        return _state.current("smp.state.cfg").config.namespace()

    def __repr__(self) -> str:
        return "smp.state (smdistributed-stub)"


state = _StateView()


@contextlib.contextmanager
def model_creation(tensor_parallelism: bool = False, dtype=None, distribute_embedding: bool = False,
                   **tensor_parallel_config):
    """Create the model with ``dtype`` as the default dtype. ``tensor_parallelism=True`` is accepted and swaps no
    module (the stub has no distributed modules: tensor-parallel ranks act as data-parallel ranks), so the model
    keeps its own modules and state-dict layout."""
    previous = torch.get_default_dtype()
    if dtype is not None:
        torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


def _not_emulated(api: str):
    def refuse(*args, **kwargs):
        _state.not_emulated(api)

    refuse.__name__ = api.rsplit(".", 1)[-1]
    refuse.__smdistributed_stub_not_emulated__ = True  # what the API-surface test checks statuses by
    return refuse


@contextlib.contextmanager
def tensor_parallelism(enabled: bool = True, **kwargs):
    """Marks the modules created inside for tensor parallelism; locally none is swapped (see ``model_creation``)."""
    yield


def set_tensor_parallelism(module, enabled: bool = True, **kwargs) -> None:
    """Marks ``module`` for tensor parallelism; locally it stays as it is (see ``model_creation``)."""
    if not isinstance(module, torch.nn.Module):
        raise TypeError(f"smp.set_tensor_parallelism: expected an nn.Module, got {type(module).__name__}")


def set_activation_checkpointing(module, preserve_rng_state: bool = True, pack_args_as_tuple: bool = False,
                                 strategy: str = "each") -> None:
    """Recompute ``module``'s activations in the backward pass instead of keeping them (``torch.utils.checkpoint``,
    as ``smp.patches.checkpoint`` does): an ``nn.Sequential`` by groups of its layers (``strategy``), any other
    module as a whole. Memory changes; results do not."""
    if isinstance(module, torch.nn.Sequential):
        layers = torch.nn.Sequential(*module)  # a view of the same layers: the wrapped forward calls these, not itself

        def forward(input):  # noqa: A002  (nn.Sequential's own name)
            return patches.checkpoint.checkpoint_sequential(layers, input, strategy=strategy,
                                                            preserve_rng_state=preserve_rng_state,
                                                            pack_args_as_tuple=pack_args_as_tuple)
    elif isinstance(module, torch.nn.Module):
        if pack_args_as_tuple or strategy != "each":
            raise ValueError("smp.set_activation_checkpointing: pack_args_as_tuple and strategy apply to an "
                             f"nn.Sequential only; {type(module).__name__} is checkpointed as a whole")
        inner = module.forward

        def forward(*args, **kwargs):
            return torch.utils.checkpoint.checkpoint(inner, *args, use_reentrant=False,
                                                     preserve_rng_state=preserve_rng_state, **kwargs)
    else:
        raise TypeError(f"smp.set_activation_checkpointing: expected an nn.Module, got {type(module).__name__}")
    module.forward = forward


delay_param_initialization = _not_emulated("smp.delay_param_initialization")
tp_register = _not_emulated("smp.tp_register")
tp_register_with_module = _not_emulated("smp.tp_register_with_module")


# As SMP does: inside a SageMaker job it initialises at import, unless the job asks to call smp.init() itself
if _sagemaker_launch() and int(os.environ.get("SMP_MANUAL_INIT", "0") or "0") == 0:
    init()
