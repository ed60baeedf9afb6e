"""``empty_module_params`` and ``move_buffers_to_device``: a module's tensors, given storage or moved."""

from __future__ import annotations

import torch


def empty_module_params(module: torch.nn.Module, device=None, recurse: bool = False) -> torch.nn.Module:
    """Replace the module's parameters with uninitialised ones on ``device`` (the same shapes and dtypes)."""
    return module.to_empty(device=device or torch.device("cpu"), recurse=recurse)


def move_buffers_to_device(module: torch.nn.Module, device, recurse: bool = False) -> torch.nn.Module:
    modules = module.modules() if recurse else [module]
    for m in modules:
        for name, buffer in m._buffers.items():
            if buffer is not None:
                m._buffers[name] = buffer.to(device)
    return module
