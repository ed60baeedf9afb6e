"""``smp.DistributedModel`` and ``smp.DistributedOptimizer``: the whole model on every rank (partitions are
replicated locally), gradients averaged over micro-batches and then across DP_GROUP after each ``smp.step``."""

from __future__ import annotations

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


class DistributedModel(nn.Module):
    """The model to train with SMP. Call it and ``backward`` inside an ``@smp.step`` function."""

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
        self.module = module.to(torch.device("cuda", session.local_rank) if torch.cuda.is_available() else "cpu")
        self.average_grads_across_microbatches = average_grads_across_microbatches
        self.partitioned = False
        self._post_partition_hooks: list = []
        with torch.no_grad():  # every rank starts from rank 0's weights, as SMP's initial broadcast does
            for tensor in [*self.module.parameters(), *self.module.buffers()]:
                dist.broadcast(tensor.data, src=0)
        session.model = self

    def forward(self, *args, **kwargs):
        return self.module(*args, **kwargs)

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

    # ----- called by smp.step -------------------------------------------------------------------------
    def _before_first_step(self) -> None:
        if not self.partitioned:
            self.partitioned = True
            for hook in list(self._post_partition_hooks):
                hook(self, _state.current("smp.step").optimizer)

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
    def state_dict(self, *args, **kwargs):
        """The whole model's state dict (every rank holds all of it locally)."""
        return self.module.state_dict(*args, **kwargs)

    def local_state_dict(self) -> dict:
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

    def join(self):
        _not_emulated("DistributedModel.join")

    def register_comm_hook(self, state, hook):
        _not_emulated("DistributedModel.register_comm_hook")


class DistributedOptimizer:
    """Wraps an optimizer; saving and loading go through the (whole, local) model state."""

    def __init__(self, optimizer, static_loss_scale=1.0, dynamic_loss_scale: bool = False, **dynamic_loss_args):
        if dynamic_loss_scale:
            _not_emulated("smp.DistributedOptimizer(dynamic_loss_scale=True) (fp16 loss scaling)")
        self.optimizer = optimizer
        _state.current("smp.DistributedOptimizer").optimizer = self

    def __getattr__(self, name):  # step, zero_grad, param_groups, state, ...
        return getattr(self.__dict__["optimizer"], name)

    def state_dict(self) -> dict:
        return self.optimizer.state_dict()

    def local_state_dict(self) -> dict:
        return {**self.optimizer.state_dict(), PARTIAL_KEY: True}

    def load_state_dict(self, state_dict) -> None:
        self.optimizer.load_state_dict({k: v for k, v in state_dict.items() if k != PARTIAL_KEY})
