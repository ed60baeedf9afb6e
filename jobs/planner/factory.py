"""Memory and FLOPs of a user's own ``nn.Module``, traced from a model factory without a GPU.

A spec names ``plan.model_factory: "module:build_model"`` (and ``plan.batch_factory``, ``plan.loss_fn``) in its
source folder. A child process imports them, builds the model and one micro-batch under ``FakeTensorMode`` (nothing
is allocated, so a 70B model traces on a laptop), counts the FLOPs of a training step with torch's
``FlopCounterMode`` and the memory of two AdamW steps with ``smjobs.planner.traced`` (torch's MemTracker). The
child keeps the user's imports and any process-group state out of smjobs' process; the answer is cached per
factory and file modification time.

``ModelProfile`` turns that one trace into a per-GPU estimate for any data-parallel layout: model states divide
by the shard group as FSDP divides them, activations scale with the micro-batch, DDP adds its gradient buckets
and FSDP the unit it computes (parameters and gradient, unsharded) and the next unit's prefetched parameters.
``tests/unit/planner/test_model_factory.py`` checks the DDP and FSDP estimates against traces of DDP's layout and of FSDP2
itself on a fake process group.
"""

from __future__ import annotations

import functools
import importlib
import json
import os
import subprocess
import sys
from dataclasses import dataclass, replace
from pathlib import Path

from smjobs.planner.memory import Layout, MemoryEstimate, sharded
from smjobs.tables import count_text, flops_text

GIB = 1024**3


@dataclass(frozen=True)
class ModelProfile:
    """A traced model, in the role TransformerShape plays for a described one."""

    parameters: int
    flops_per_sample: float
    """Forward plus backward FLOPs of one sample (FlopCounterMode)."""
    traced_micro_batch: int
    weights_bytes: float
    gradients_bytes: float
    optimizer_bytes: float
    """Model states with AdamW in the factory's dtype (fp32: 4 + 4 + 8 bytes per parameter)."""
    activation_bytes: float
    """The rest of the traced peak (activations, temporaries, buffers) for ``traced_micro_batch`` samples."""
    largest_unit_parameters: int
    """Parameters of the largest wrapping unit (a child of the model, ModuleLists opened): what FSDP gathers at once."""
    factory: str = ""
    micro_batch: int = 1
    """The micro-batch being planned (the planner varies it)."""
    layers: int = 1
    """Units a pipeline could split the model into: a traced model is not split (no pipeline layouts)."""
    heads: int = 1
    """Attention heads tensor parallelism could split: none for a traced model (no tensor-parallel layouts)."""

    @property
    def parameter_count(self) -> int:
        return self.parameters

    def model_flops(self, samples: int) -> float:
        return self.flops_per_sample * samples

    def training_flops(self, samples: int, recompute: str = "none") -> float:
        return self.flops_per_sample * samples * (4 / 3 if recompute == "full" else 1)

    def describe(self) -> str:
        return (f"{count_text(self.parameters)} parameters (traced from {self.factory}: "
                f"{flops_text(self.flops_per_sample)} per sample for forward and backward)")

    def memory(self, layout: Layout, micro_batch: int) -> MemoryEstimate:
        """Peak memory of one GPU of ``layout`` at ``micro_batch`` samples (activation recomputation is the script's
        business and is not modelled for a traced model)."""
        w, g, o = sharded(self.weights_bytes, self.gradients_bytes, self.optimizer_bytes, layout)
        buffers = 0.0
        if layout.dp_degree > 1 and layout.sharding == "none":
            buffers = self.gradients_bytes  # DDP's buckets: a copy of every gradient
        elif layout.dp_degree > 1:
            # FSDP in backward: the unit being computed, gathered, with its unsharded gradient, and the next unit's
            # prefetched parameters (calibrated against FSDP2's own trace: tests/unit/planner/test_model_factory.py)
            w_per, g_per = (b / max(self.parameters, 1) for b in (self.weights_bytes, self.gradients_bytes))
            buffers = min(self.largest_unit_parameters * (2 * w_per + g_per), self.weights_bytes + self.gradients_bytes)
        return MemoryEstimate(weights=w, gradients=g, optimizer=o,
                              activations=self.activation_bytes * micro_batch / self.traced_micro_batch,
                              buffers=buffers, overhead=layout.overhead_gib * GIB, reserve_share=layout.allocator_reserve)

    def at(self, micro_batch: int) -> ModelProfile:
        return replace(self, micro_batch=micro_batch)


def _load(source_dir: str, reference: str):
    module_name, _, attr = reference.partition(":")
    if source_dir not in sys.path:
        sys.path.insert(0, source_dir)
    return getattr(importlib.import_module(module_name), attr)


def _units(model):
    """The modules FSDP would typically wrap one by one: the model's children, with the containers that have no
    forward of their own (ModuleList, ModuleDict) opened."""
    from torch import nn

    for child in model.children():
        if isinstance(child, nn.ModuleList | nn.ModuleDict):
            yield from _units(child)
        else:
            yield child


def _default_loss(output, _target):
    return output.float().sum() if not isinstance(output, tuple | list) else sum(o.float().sum() for o in output)


def trace(source_dir: str, model_factory: str, batch_factory: str, loss_fn: str | None, micro_batch: int) -> dict:
    """In this process: the profile's numbers as plain data (``profile`` runs it in a child)."""
    import torch
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.utils.flop_counter import FlopCounterMode

    from smjobs.planner.traced import TraceSetup, trace_memory

    build, batch = _load(source_dir, model_factory), _load(source_dir, batch_factory)
    loss = _load(source_dir, loss_fn) if loss_fn else _default_loss

    def batch_fn():
        inputs, target = batch(micro_batch)
        return inputs, target

    def step(model):
        inputs, target = batch_fn()
        output = model(*inputs) if isinstance(inputs, tuple | list) else model(inputs)
        return loss(output, target)

    with FakeTensorMode():
        model = build()
        parameters = sum(p.numel() for p in model.parameters())
        param_bytes = float(sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad))
        units = [sum(p.numel() for p in unit.parameters()) for unit in _units(model)]
        with FlopCounterMode(display=False) as counter:
            step(model).backward()
        flops = counter.get_total_flops()

    class _Wrapped(torch.nn.Module):  # trace_memory calls model(x): unpack tuple inputs here
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, inputs):
            return self.inner(*inputs) if isinstance(inputs, tuple | list) else self.inner(inputs)

    traced = trace_memory(lambda: _Wrapped(build()), batch_fn, loss, TraceSetup("single"))
    # MemTracker's split of the peak by category is not reliable without its module hooks (gradients show up as
    # activations), so the model states are counted from the parameters: AdamW keeps two moments in their dtype
    states = {"weights": param_bytes, "gradients": param_bytes, "optimizer": 2 * param_bytes}
    return {
        "parameters": parameters,
        "flops_per_sample": flops / micro_batch,
        "traced_micro_batch": micro_batch,
        **{f"{k}_bytes": float(v) for k, v in states.items()},
        "activation_bytes": float(traced.peak_bytes - sum(states.values())),
        "largest_unit_parameters": max(units, default=0),
    }


class FactoryError(RuntimeError):
    """The factory could not be imported or traced; the message is the child's last lines."""


@functools.lru_cache(maxsize=32)
def _profile(source_dir: str, model_factory: str, batch_factory: str, loss_fn: str | None, micro_batch: int,
             _stamp: tuple) -> ModelProfile:
    args = json.dumps([source_dir, model_factory, batch_factory, loss_fn, micro_batch])
    done = subprocess.run([sys.executable, "-m", "smjobs.planner.factory", args], capture_output=True, text=True,
                          timeout=600, cwd=source_dir, env={**os.environ, "OMP_NUM_THREADS": "1"})
    if done.returncode != 0:
        tail = [line for line in (done.stderr or done.stdout).strip().splitlines() if line.strip()][-1:]
        raise FactoryError(tail[0] if tail else f"exit code {done.returncode}")
    data = json.loads(done.stdout.strip().splitlines()[-1])
    return ModelProfile(**data, factory=model_factory, micro_batch=micro_batch)


def profile(source_dir: Path, model_factory: str, batch_factory: str, loss_fn: str | None, micro_batch: int) -> ModelProfile:
    """The traced profile of a factory in ``source_dir`` (a child process; cached until a .py file there changes)."""
    root = Path(source_dir).resolve()
    stamp = tuple(sorted((str(p), p.stat().st_mtime_ns) for p in root.glob("*.py")))
    return _profile(str(root), model_factory, batch_factory, loss_fn, micro_batch, stamp)


if __name__ == "__main__":
    print(json.dumps(trace(*json.loads(sys.argv[1]))))
