"""``smp.patches.checkpoint``: activation checkpointing of a module or of a sequential's layers, on
``torch.utils.checkpoint`` (non-reentrant). Partitions are replicated here, so every layer is on every rank and the
strategies group layers as they would on one partition."""

from __future__ import annotations

import torch
from torch.utils.checkpoint import checkpoint as _torch_checkpoint


def checkpoint(module, *args, preserve_rng_state: bool = True):
    """Run ``module(*args)`` without keeping its activations; they are recomputed in the backward pass."""
    return _torch_checkpoint(module, *args, use_reentrant=False, preserve_rng_state=preserve_rng_state)


def _groups(layers: list, strategy: str) -> list[list]:
    if strategy == "each":
        return [[layer] for layer in layers]
    if strategy == "contiguous":  # one partition holds them all here
        return [layers]
    if strategy.startswith("group_") and strategy[6:].isdigit() and int(strategy[6:]) >= 1:
        size = int(strategy[6:])
        return [layers[i:i + size] for i in range(0, len(layers), size)]
    raise ValueError(f"smp checkpoint_sequential: strategy {strategy!r} is not each, contiguous or group_<x>")


def checkpoint_sequential(sequential_module, input, strategy: str = "each", preserve_rng_state: bool = True,  # noqa: A002
                          pack_args_as_tuple: bool = False):
    """Run an ``nn.Sequential``, checkpointing its layers in groups (``strategy``)."""
    out = input
    for group in _groups(list(sequential_module), strategy):
        block = torch.nn.Sequential(*group)
        if pack_args_as_tuple and isinstance(out, tuple):
            out = _torch_checkpoint(lambda *xs, block=block: block(xs), *out, use_reentrant=False,
                                    preserve_rng_state=preserve_rng_state)
        else:
            out = _torch_checkpoint(block, out, use_reentrant=False, preserve_rng_state=preserve_rng_state)
    return out
