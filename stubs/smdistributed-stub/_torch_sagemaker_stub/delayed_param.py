"""``torch.sagemaker.delayed_param``: initialise a model built on the meta device, module by module, inside FSDP.

AWS's scripts build the model under ``init_empty_weights`` (the meta device), then pass
``DelayedParamIniter(model).get_param_init_fn()`` as FSDP's ``param_init_fn``: FSDP calls it for each module
that still has meta tensors, as it wraps that module, so the full model never exists in memory at once. The
function gives the module's own tensors storage and initialises them with, in order: the ``init_method_using_config``
given, the model's Hugging Face ``_init_weights``, or the module's ``reset_parameters``.
"""

from __future__ import annotations

import contextlib

import torch
import torch.distributed as dist


def local_device() -> torch.device:
    """This process's device: its GPU under NCCL, else the CPU (gloo). The stand-in's one answer to it."""
    if torch.cuda.is_available() and dist.is_initialized() and dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def has_own_meta(module: torch.nn.Module) -> bool:
    """Whether the module's own parameters or buffers (not its children's) are still on the meta device."""
    return any(t is not None and t.is_meta for t in [*module._parameters.values(), *module._buffers.values()])


class DelayedParamIniter:
    def __init__(self, model: torch.nn.Module, init_method_using_config=None, verbose: bool = False):
        self.model = model
        self.init_method_using_config = init_method_using_config
        self.verbose = verbose
        self.num_params_inited = 0
        self._counted: set[int] = set()

    def get_param_init_fn(self):
        def param_init_fn(module: torch.nn.Module) -> None:
            if not has_own_meta(module):
                return
            module.to_empty(device=local_device(), recurse=False)
            with torch.no_grad():
                if self.init_method_using_config is not None:
                    self.init_method_using_config(module)
                elif hasattr(self.model, "_init_weights"):
                    self.model._init_weights(module)
                elif hasattr(module, "reset_parameters"):
                    module.reset_parameters()
            self.count_num_params(module, *[p for p in module._parameters.values() if p is not None])
            if self.verbose:
                print(f"tsm delayed_param: initialised {type(module).__name__}", flush=True)
        return param_init_fn

    def get_post_param_init_fn(self):
        def post_param_init_fn(module: torch.nn.Module) -> None:
            if hasattr(module, "tie_weights"):
                module.tie_weights()
        return post_param_init_fn

    def count_num_params(self, module: torch.nn.Module, *args) -> None:
        for param in args:
            if id(param) not in self._counted:
                self._counted.add(id(param))
                self.num_params_inited += param.numel()

    @contextlib.contextmanager
    def validate_params_and_buffers_inited(self, enabled: bool = True):
        """After the block (FSDP's wrapping), every parameter and buffer is off the meta device and was initialised."""
        expected = sum(p.numel() for p in {id(p): p for p in self.model.parameters() if p.is_meta}.values())
        yield
        if not enabled:
            return
        # FSDP flattens the parameters it wraps; what it wrapped is counted by the init function
        meta = [name for name, t in [*self.model.named_parameters(), *self.model.named_buffers()] if t.is_meta]
        # AssertionError, as AWS documents for this check
        if meta:
            raise AssertionError(f"delayed_param: still on the meta device after initialisation: {meta[:5]}")
        if self.num_params_inited != expected:
            raise AssertionError(f"delayed_param: {self.num_params_inited} parameters initialised, {expected} were "
                                 "on the meta device")
