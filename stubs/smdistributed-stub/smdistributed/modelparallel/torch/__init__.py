"""``smdistributed.modelparallel.torch`` (SMP v1), emulated on torch.distributed. Import it as ``smp``.

Local semantics (README.md has the full coverage table):
- ``smp.init()`` reads the job's ``mp_parameters`` (SM_HP_MP_PARAMETERS), starts torch.distributed from the
  launcher's environment (torchrun or mpirun) and places every rank on the pipeline, tensor and reduced-data
  axes exactly as ``placement_strategy`` says; all the rank and size functions and process groups follow.
- Pipeline partitions are *replicated*, not split: every rank of a model replica holds the whole model and runs
  every micro-batch, so the ranks of one replica compute the same numbers (memory is not saved). With
  ``tensor_parallel_degree`` > 1 no module is tensor-parallel (the stub has no distributed modules), so the
  tensor-parallel ranks act as further data-parallel ranks. Results equal a one-process run on the whole batch.
- ``@smp.step`` really splits its inputs into ``microbatches`` along the batch axis, runs the function once per
  micro-batch, averages gradients over micro-batches (``model.backward``) and then across DP_GROUP, and returns
  ``StepOutput`` objects.
- What is not emulated raises NotImplementedError naming the API.
"""

from __future__ import annotations

import contextlib
import enum
import functools
import inspect

import torch
import torch.distributed as dist

from smdistributed._launch import init_default_group
from smdistributed.modelparallel.torch import _state, amp, nn, optimizers, patches  # noqa: F401  (smp.nn, smp.amp, ...)
from smdistributed.modelparallel.torch._checkpoint import load, resume_from_checkpoint, save, save_checkpoint
from smdistributed.modelparallel.torch._model import DistributedModel, DistributedOptimizer
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
def init(config: dict | None = None) -> None:
    """Start SMP: configuration from ``config`` or the job's mp_parameters, torch.distributed, the rank groups."""
    if _state.initialized():
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


# ----- the training step ---------------------------------------------------------------------------------
class StepOutput:
    """One tensor's versions across the micro-batches of an ``smp.step`` call."""

    def __init__(self, outputs: list):
        self.outputs = list(outputs)

    def reduce_mean(self):
        return torch.stack(self.outputs).mean(dim=0)

    def reduce_sum(self):
        return torch.stack(self.outputs).sum(dim=0)

    def concat(self):
        return torch.cat(self.outputs)

    def stack(self):
        return torch.stack(self.outputs)

    def __repr__(self) -> str:
        return f"StepOutput({len(self.outputs)} micro-batches)"


def _slice(value, count: int, index: int, axis: int, name: str):
    if isinstance(value, torch.Tensor):
        if value.dim() == 0:
            return value
        length = value.shape[axis]
        if length % count:
            raise ValueError(f"smp.step: argument {name!r} has {length} entries along axis {axis}, which "
                             f"{count} micro-batches do not divide; make the batch a multiple of microbatches")
        return value.narrow(axis, index * (length // count), length // count)
    if hasattr(value, "smp_slice"):
        return value.smp_slice(count, index, axis)
    if isinstance(value, dict):
        return type(value)((k, _slice(v, count, index, axis, f"{name}[{k!r}]")) for k, v in value.items())
    if isinstance(value, (list, tuple, set)):
        items = [_slice(v, count, index, axis, f"{name}[{i}]") for i, v in enumerate(value)]
        return type(value)(items) if not hasattr(value, "_fields") else type(value)(*items)
    return value


def _collect(outputs: list, detach: bool):
    first = outputs[0]
    if isinstance(first, torch.Tensor):
        return StepOutput([o.detach() if detach else o for o in outputs])
    if isinstance(first, dict):
        return type(first)((k, _collect([o[k] for o in outputs], detach)) for k in first)
    if isinstance(first, (list, tuple)):
        items = [_collect([o[i] for o in outputs], detach) for i in range(len(first))]
        return type(first)(*items) if hasattr(first, "_fields") else type(first)(items)
    if first is None:
        return None
    return list(outputs)  # Python values: one per micro-batch, as AWS documents (sum(loss_batch) works)


def step(func=None, /, *, non_split_inputs=None, input_split_axes=None, detach_outputs=True):
    """Decorate one forward-and-backward pass (or a forward pass alone, for evaluation): run it once per
    micro-batch of its inputs. Gradients are averaged across DP_GROUP only when the step ran a backward pass, so an
    evaluation step touches no gradient and issues no collective (it may run on some ranks only). An unknown
    keyword argument is a TypeError, as in SMP."""
    if func is None:
        return functools.partial(step, non_split_inputs=non_split_inputs, input_split_axes=input_split_axes,
                                 detach_outputs=detach_outputs)
    signature = inspect.signature(func)
    keep_whole = set(non_split_inputs or ())
    axes = dict(input_split_axes or {})

    @functools.wraps(func)
    def run(*args, **kwargs):
        session = _state.current("smp.step")
        count = session.config.microbatches
        bound = signature.bind(*args, **kwargs)
        if session.model is not None:
            session.model._before_first_step()
        outputs = []
        session.in_step = True
        session.extra["backward_in_step"] = False
        try:
            for index in range(count):
                sliced = {name: value if name in keep_whole else _slice(value, count, index, axes.get(name, 0), name)
                          for name, value in bound.arguments.items()}
                call = inspect.BoundArguments(signature, sliced)
                outputs.append(func(*call.args, **call.kwargs))
        finally:
            session.in_step = False
        if session.model is not None and session.extra["backward_in_step"]:
            session.model._average_across_data_parallel()
        session.steps += 1
        return _collect(outputs, detach_outputs)

    return run


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
def model_creation(tensor_parallelism: bool = False, dtype=None, **tensor_parallel_config):
    """Create the model with ``dtype`` as the default dtype; tensor parallelism is not emulated."""
    if tensor_parallelism:
        raise NotImplementedError("smp.model_creation(tensor_parallelism=True): tensor-parallel modules are not emulated by smdistributed-stub")
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


tensor_parallelism = _not_emulated("smp.tensor_parallelism")
delay_param_initialization = _not_emulated("smp.delay_param_initialization")
tp_register = _not_emulated("smp.tp_register")
tp_register_with_module = _not_emulated("smp.tp_register_with_module")
set_activation_checkpointing = _not_emulated("smp.set_activation_checkpointing")
set_tensor_parallelism = _not_emulated("smp.set_tensor_parallelism")
