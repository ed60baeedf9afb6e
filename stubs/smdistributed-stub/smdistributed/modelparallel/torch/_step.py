"""``@smp.step`` and ``StepOutput``: one forward-and-backward pass run once per micro-batch of its inputs, the
inputs taken from pp_rank 0 of the pipeline group, and the outputs wrapped per micro-batch."""

from __future__ import annotations

import functools
import inspect

import torch
import torch.distributed as dist

from smdistributed.modelparallel.torch import _state


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


def _has_tensor(value) -> bool:
    if isinstance(value, torch.Tensor):
        return True
    if isinstance(value, dict):
        return any(_has_tensor(v) for v in value.values())
    if isinstance(value, (list, tuple, set)):
        return any(_has_tensor(v) for v in value)
    return False


def _to_device(value, device):
    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, dict):
        return type(value)((k, _to_device(v, device)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        items = [_to_device(v, device) for v in value]
        return type(value)(*items) if hasattr(value, "_fields") else type(value)(items)
    return value


def _inputs_from_first_stage(session, arguments: dict) -> None:
    """SMP feeds a step's inputs into the pipeline at pp_rank 0, so scripts give the other pipeline ranks dummy
    batches (their data loaders often yield empty tensors). Locally every rank runs the whole model, so each gets
    pp_rank 0's tensor arguments, broadcast over its pipeline group; other arguments stay its own."""
    members = session.members["PP_GROUP"]
    if len(members) == 1:
        return
    first = next(r for r in members if session.topology.coords[r]["P"] == 0)
    mine = session.topology.rank == first
    payload = [{name: value for name, value in arguments.items() if _has_tensor(value)} if mine else None]
    dist.broadcast_object_list(payload, src=first, group=session.groups["PP_GROUP"])
    if not mine:
        device = torch.device("cuda", session.local_rank) if torch.cuda.is_available() else torch.device("cpu")
        arguments.update({name: _to_device(value, device) for name, value in payload[0].items()})


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
        _inputs_from_first_stage(session, bound.arguments)
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
