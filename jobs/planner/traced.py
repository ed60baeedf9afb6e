"""Traced per-process training memory of an actual ``nn.Module``, without a GPU and without allocating it.

The model, optimizer and batch are created under ``torch._subclasses.fake_tensor.FakeTensorMode`` and two
training steps run under torch's ``MemTracker`` (``torch.distributed._tools.mem_tracker``, set up as the training
scripts' ``--track_memory`` sets it up in ``entry_points/common/memory.py``), which counts every
storage the step would allocate: parameters, gradients, optimizer states, activations and temporaries. The
second step is the steady state (optimizer states exist from the first). How the work is spread changes what
one process holds:

- ``single`` and ``ddp``: the whole model. DDP's C++ reducer cannot run on fake tensors, so its memory is added
  from how it works: with ``gradient_as_bucket_view=False`` (the default) it keeps flat communication buckets
  holding a copy of every gradient, i.e. the parameter bytes once more.
- ``fsdp``: FSDP2 ``fully_shard`` really runs, on torch's fake process group of ``world_size`` ranks (no
  communication, one process), so the shards, all-gathered parameters and reduce-scatter buffers of rank 0
  are counted as FSDP allocates them.
- ``pipeline``: the first stage (the caller's module) run over ``pp_microbatches`` micro-batches in the order a
  1F1B-style schedule runs them there, with as many in flight as the schedule keeps
  (``memory.in_flight_microbatches``; GPipe keeps all), plus the buffers torch.distributed.pipelining
  preallocates to receive every micro-batch's output gradient.

``tests/integration/test_memory_estimates.py`` checks the result against the peak measured by the training
scripts' ``--track_memory`` in real multi-process CPU runs. torch is imported lazily: planning a described
model does not need it.
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

from smjobs.planner.memory import in_flight_microbatches

Strategy = Literal["single", "ddp", "fsdp", "pipeline"]


@dataclass(frozen=True)
class TraceSetup:
    """How one process's share of a training step is laid out."""

    strategy: Strategy = "single"
    world_size: int = 1
    """Processes sharing the work (the FSDP shard group; for a pipeline, the number of stages)."""
    pp_schedule: str = "1F1B"
    """Pipeline schedule, which sets how many micro-batches the first stage holds at once."""
    pp_microbatches: int = 1
    fsdp_unit_types: tuple[str, ...] = ("Block", "Linear", "Conv2d")
    """Class names of the submodules FSDP shards as units (then the root), as entry_points/train.py does."""


@dataclass(frozen=True)
class TracedMemory:
    peak_bytes: int
    by_category: dict[str, int]
    """The peak split as MemTracker reports it (Parameter, Gradient, Optstate, Activation, Temp, ...)."""
    added_bytes: int = 0
    """Memory added outside the trace: DDP buckets or pipeline receive buffers."""

    @property
    def total_bytes(self) -> int:
        return self.peak_bytes + self.added_bytes


ModelFn = Callable[[], Any]
BatchFn = Callable[[], tuple[Any, Any]]
LossFn = Callable[[Any, Any], Any]


def _adamw(params: Iterable) -> Any:
    import torch

    return torch.optim.AdamW(params, lr=1e-3)


@contextlib.contextmanager
def _fake_process_group(world_size: int):
    """Rank 0 of torch's fake process group: collectives return at once and move no data."""
    import torch.distributed as dist

    if dist.is_initialized():
        raise RuntimeError("a process group is already initialised; trace memory in a process without one")
    dist.init_process_group("fake", store=dist.HashStore(), rank=0, world_size=world_size)
    try:
        yield
    finally:
        dist.destroy_process_group()


def trace_memory(model_fn: ModelFn, batch_fn: BatchFn, loss_fn: LossFn, setup: TraceSetup = TraceSetup(),
                 optimizer_fn: Callable[[Iterable], Any] = _adamw) -> TracedMemory:
    """Peak memory of one process training ``model_fn()`` on ``batch_fn()`` (its local batch, or for a
    pipeline one micro-batch) with ``loss_fn(output, target)``, laid out as ``setup`` says."""
    if setup.strategy == "fsdp":
        with _fake_process_group(setup.world_size):
            from torch.distributed.device_mesh import init_device_mesh

            mesh = init_device_mesh("cpu", (setup.world_size,))  # outside fake mode: the mesh reads real ranks
            return _trace(model_fn, batch_fn, loss_fn, setup, optimizer_fn, mesh)
    return _trace(model_fn, batch_fn, loss_fn, setup, optimizer_fn, None)


def _shard(model, setup: TraceSetup, mesh):
    from torch.distributed.fsdp import fully_shard
    from torch.distributed.tensor import DTensor

    for module in model.modules():  # parents come first; a unit inside a sharded unit is left to its parent
        sharded = any(isinstance(p, DTensor) for p in module.parameters())
        if module is not model and type(module).__name__ in setup.fsdp_unit_types and not sharded:
            fully_shard(module, mesh=mesh)
    return fully_shard(model, mesh=mesh)


def _trace(model_fn, batch_fn, loss_fn, setup: TraceSetup, optimizer_fn, mesh) -> TracedMemory:
    from torch._subclasses.fake_tensor import FakeTensorMode

    from smjobs.entry_points.common.memory import tensor_tracker  # the same tracker the scripts measure with

    with FakeTensorMode():
        model = model_fn()
        if setup.strategy == "fsdp":
            model = _shard(model, setup, mesh)
        optimizer = optimizer_fn(model.parameters())
        tracker = tensor_tracker()
        tracker.track_external(model, optimizer)  # so that the report tells parameters from activations
        with tracker:
            added = 0
            for _ in range(2):
                if setup.strategy == "pipeline":
                    added = _first_stage_step(model, batch_fn, setup)
                else:
                    x, y = batch_fn()
                    loss_fn(model(x), y).backward()
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
            if setup.strategy == "ddp":
                added = sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad)
        snapshot = tracker.get_tracker_snapshot("peak")
    busiest = max(snapshot.values(), key=lambda stats: stats["Total"])
    categories = {getattr(k, "value", str(k)): int(v) for k, v in busiest.items() if k != "Total"}
    return TracedMemory(int(busiest["Total"]), categories, int(added))


def _first_stage_step(stage, batch_fn, setup: TraceSetup) -> int:
    """The first stage's step as a 1F1B-style schedule runs it: a backward (with the output gradient the next
    stage would send) before each forward once ``in_flight`` micro-batches are held; GPipe holds them all.
    Returns the bytes of the receive buffers the schedule preallocates."""
    import torch

    in_flight = in_flight_microbatches(setup.pp_schedule, setup.world_size, setup.pp_microbatches)
    held: deque = deque()
    for _ in range(setup.pp_microbatches):
        if len(held) == in_flight:
            out = held.popleft()
            out.backward(torch.ones_like(out))
        held.append(stage(batch_fn()[0]))
    first = held[-1]
    while held:
        out = held.popleft()
        out.backward(torch.ones_like(out))
    # torch.distributed.pipelining allocates one gradient-receive buffer per micro-batch for a non-last stage
    return setup.pp_microbatches * first.numel() * first.element_size()
