"""``smp.DistributedModel`` and ``smp.DistributedOptimizer``: the whole model on every rank (partitions are
replicated locally), gradients averaged over micro-batches and then across DP_GROUP after each ``smp.step``."""

from __future__ import annotations

import warnings

import torch
import torch.distributed as dist
from torch import nn

from smdistributed.modelparallel.torch import _state
from smdistributed.modelparallel.torch._state import not_emulated as _not_emulated

PARTIAL_KEY = "_smp_is_partial"


class _Handle:
    def __init__(self, hooks: list, hook):
        self._hooks, self._hook = hooks, hook

    def remove(self) -> None:
        if self._hook in self._hooks:
            self._hooks.remove(self._hook)


SPEED_ONLY = {"overlapping_allreduce": True, "bucket_cap_mb": 25, "gradient_as_bucket_view": False}
"""DistributedModel arguments that tune communication speed only: accepted, and said to have no effect here."""
TRACING = {"trace_device": "gpu", "trace_execution_times": False, "trace_memory_usage": False}
"""Arguments of the partitioning trace, which the stub does not run (partitions are replicated)."""
_warned: set[str] = set()


def _warn_once(name: str, text: str) -> None:
    if name not in _warned and _state.current("smp.DistributedModel").topology.rank == 0:
        _warned.add(name)
        warnings.warn(f"smdistributed-stub: DistributedModel({name}=...) {text}", stacklevel=4)


class DistributedModel(nn.Module):
    """The model to train with SMP. Call it and ``backward`` inside an ``@smp.step`` function.

    The initial broadcast of weights and buffers from rank 0 happens when SMP does it (AWS, SMP v1 PyTorch API,
    "DistributedModel"): with pipeline parallelism (``partitions`` > 1) at the first ``smp.step`` call, when the
    model is partitioned, so weights set after wrapping are rank 0's everywhere from the first step on; with one
    partition at once, when the model is wrapped. With ``broadcast_buffers`` (the default) buffers are broadcast
    from rank 0 before every later step, as DDP does."""

    def __init__(self, module: nn.Module, trace_device: str = "gpu", trace_execution_times: bool = False,
                 overlapping_allreduce: bool = True, backward_passes_per_step: int = 1,
                 average_grads_across_microbatches: bool = True, bucket_cap_mb: int = 25, trace_memory_usage: bool = False,
                 broadcast_buffers: bool = True, gradient_as_bucket_view: bool = False):
        super().__init__()
        session = _state.current("smp.DistributedModel")
        if session.model is not None:
            raise ValueError("smp.DistributedModel: only one model per training script can be wrapped")
        if backward_passes_per_step != 1:
            _not_emulated("smp.DistributedModel(backward_passes_per_step != 1)")
        given = {"trace_device": trace_device, "trace_execution_times": trace_execution_times,
                 "trace_memory_usage": trace_memory_usage, "overlapping_allreduce": overlapping_allreduce,
                 "bucket_cap_mb": bucket_cap_mb, "gradient_as_bucket_view": gradient_as_bucket_view}
        for name, value in given.items():
            if name in SPEED_ONLY and value != SPEED_ONLY[name]:
                _warn_once(name, "tunes communication speed only; it has no effect locally")
            elif name in TRACING and value != TRACING[name]:
                _warn_once(name, "configures SMP's partitioning trace, which the stub does not run (partitions are replicated)")
        self.module = module.to(torch.device("cuda", session.local_rank) if torch.cuda.is_available() else "cpu")
        self.average_grads_across_microbatches = average_grads_across_microbatches
        self.broadcast_buffers = broadcast_buffers
        self.partitioned = False
        self._post_partition_hooks: list = []
        self._broadcast_done = False
        session.model = self
        if session.config.pp_size == 1:  # nothing to partition: SMP places and broadcasts at once
            self._broadcast_from_rank_0()

    def _broadcast_from_rank_0(self) -> None:
        with torch.no_grad():
            for tensor in [*self.module.parameters(), *self.module.buffers()]:
                dist.broadcast(tensor.data, src=0)
        self._broadcast_done = True

    def forward(self, *args, **kwargs):
        return self.module(*args, **kwargs)

    def get_module(self) -> nn.Module:
        """The wrapped module (SMP returns the local partition; here the whole model)."""
        return self.module

    def backward(self, tensors, grad_tensors=None) -> None:
        """Like ``torch.autograd.backward``; gradients are averaged over the step's micro-batches."""
        session = _state.current("DistributedModel.backward")
        if not session.in_step:
            raise RuntimeError("DistributedModel.backward must be called inside an @smp.step-decorated function")
        tensors = [tensors] if isinstance(tensors, torch.Tensor) else list(tensors)
        if grad_tensors is None:
            grad_tensors = [torch.ones_like(t) for t in tensors]
        elif isinstance(grad_tensors, torch.Tensor):
            grad_tensors = [grad_tensors]
        scale = 1.0 / session.config.microbatches if self.average_grads_across_microbatches else 1.0
        torch.autograd.backward(tensors, grad_tensors=[g * scale for g in grad_tensors])
        session.extra["backward_in_step"] = True

    # ----- called by smp.step -------------------------------------------------------------------------
    def _before_first_step(self) -> None:
        if not self.partitioned:
            self.partitioned = True
            if not self._broadcast_done:  # SMP's initial broadcast, when it partitions the model at the first step
                self._broadcast_from_rank_0()
            for hook in list(self._post_partition_hooks):
                hook(self, _state.current("smp.step").optimizer)
        elif self.broadcast_buffers:
            with torch.no_grad():
                for buffer in self.module.buffers():
                    dist.broadcast(buffer.data, src=0)

    def _average_across_data_parallel(self) -> None:
        session = _state.current("smp.step")
        members = session.members["DP_GROUP"]
        if len(members) == 1:
            return
        group = session.groups["DP_GROUP"]
        for param in self.module.parameters():
            if param.grad is not None:
                dist.all_reduce(param.grad, group=group)
                param.grad.div_(len(members))

    # ----- state ---------------------------------------------------------------------------------------
    def state_dict(self, *args, gather_to_rank0: bool = False, **kwargs):
        """The whole model's state dict (every rank holds all of it locally); with ``gather_to_rank0``, as in SMP,
        only rank 0 gets it and the other ranks an empty dict."""
        if gather_to_rank0 and _state.current("DistributedModel.state_dict").topology.rank != 0:
            return {}
        return self.module.state_dict(*args, **kwargs)

    def local_state_dict(self, gather_if_shard: bool = True) -> dict:
        """This rank's partition (here the whole model); nothing is sharded, so ``gather_if_shard`` changes nothing."""
        return {**self.module.state_dict(), PARTIAL_KEY: True}

    def load_state_dict(self, state_dict, strict: bool = True):
        state = {k: v for k, v in state_dict.items() if k != PARTIAL_KEY}
        return self.module.load_state_dict(state, strict=strict)

    def local_parameters(self):
        return self.module.parameters()

    def local_named_parameters(self):
        return self.module.named_parameters()

    def local_buffers(self):
        return self.module.buffers()

    def local_named_buffers(self):
        return self.module.named_buffers()

    def local_modules(self):
        return self.module.modules()

    def local_named_modules(self):
        return self.module.named_modules()

    def register_post_partition_hook(self, hook) -> _Handle:
        """``hook(model, optimizer)`` runs at the first ``smp.step`` call, before its first forward pass."""
        self._post_partition_hooks.append(hook)
        return _Handle(self._post_partition_hooks, hook)

    def cpu(self):
        self.module.cpu()
        return self

    # tensor parallelism: the stub has no distributed modules
    def distributed_modules(self):
        return iter(())

    def is_distributed_parameter(self, param) -> bool:
        return False

    def is_distributed_buffer(self, buf) -> bool:
        return False

    def is_scaled_batch_parameter(self, param) -> bool:
        return False

    def is_scaled_batch_buffer(self, buf) -> bool:
        return False

    def default_reducer_named_parameters(self):
        """Every parameter: all are all-reduced over DP_GROUP here."""
        return self.module.named_parameters()

    def scaled_batch_reducer_named_parameters(self):
        return iter(())

    def join(self):
        _not_emulated("DistributedModel.join")

    def register_comm_hook(self, state, hook):
        _not_emulated("DistributedModel.register_comm_hook")


class DistributedOptimizer(torch.optim.Optimizer):
    """Wraps an optimizer; saving and loading go through the (whole, local) model state. A
    ``torch.optim.Optimizer``, so that learning-rate schedulers take it; its parameter groups and state are the
    wrapped optimizer's."""

    def __init__(self, optimizer, static_loss_scale=1.0, dynamic_loss_scale: bool = False, **dynamic_loss_args):
        # Optimizer.__init__ is not called: the wrapped optimizer owns the parameters, groups and state.
        # The loss-scaling arguments are effective only for fp16 training (AWS, "DistributedOptimizer"), which the
        # stub refuses at smp.init(): here they are always without effect, as in an SMP job with fp16 off.
        self.loss_scaling = {"static_loss_scale": static_loss_scale, "dynamic_loss_scale": dynamic_loss_scale,
                             **dynamic_loss_args}
        self.optimizer = optimizer
        self._optimizer_step_pre_hooks, self._optimizer_step_post_hooks = {}, {}
        self._optimizer_state_dict_pre_hooks, self._optimizer_state_dict_post_hooks = {}, {}
        self._optimizer_load_state_dict_pre_hooks, self._optimizer_load_state_dict_post_hooks = {}, {}
        _state.current("smp.DistributedOptimizer").optimizer = self

    @property
    def param_groups(self):
        return self.optimizer.param_groups

    @param_groups.setter
    def param_groups(self, value):
        self.optimizer.param_groups = value

    @property
    def state(self):
        return self.optimizer.state

    @property
    def defaults(self):
        return self.optimizer.defaults

    def step(self, closure=None):
        return self.optimizer.step() if closure is None else self.optimizer.step(closure)

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.optimizer.zero_grad(set_to_none=set_to_none)

    def add_param_group(self, param_group: dict) -> None:
        self.optimizer.add_param_group(param_group)

    def state_dict(self, gather_to_rank0: bool = False) -> dict:
        if gather_to_rank0 and _state.current("DistributedOptimizer.state_dict").topology.rank != 0:
            return {}
        return self.optimizer.state_dict()

    def local_state_dict(self, gather_if_shard: bool = True) -> dict:
        return {**self.optimizer.state_dict(), PARTIAL_KEY: True}

    def load_state_dict(self, state_dict) -> None:
        self.optimizer.load_state_dict({k: v for k, v in state_dict.items() if k != PARTIAL_KEY})

    def __getstate__(self):
        return self.__dict__

    def __repr__(self) -> str:
        return f"DistributedOptimizer({self.optimizer!r})"
