"""Naive (vertical) model parallelism: each process holds consecutive layers of the model.

The whole batch goes forward from rank 0 to the last rank with send/recv, the loss is taken there, and the
gradient goes back the same way; no micro-batches, so every rank waits while the others compute. It is the
baseline the pipeline schedules of train_pipeline.py are measured against (benchmarks/pipeline_vs_naive.py).
Same models, data and arguments as train_pipeline.py.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.distributed as dist

sys.path.insert(0, str(Path(__file__).resolve().parent))

import smjobs_runtime as smr  # noqa: E402
from common.models import synthetic_batch  # noqa: E402
from common.stages import build_stages, full_state_dict, loss_fn  # noqa: E402
from train_pipeline import Steps, make_optimizer, run_reference, run_script  # noqa: E402

MAX_DIMS = 8


def send_tensor(tensor: torch.Tensor, dst: int) -> None:
    """Send shape, then data: activations change shape between layers and models."""
    header = torch.zeros(MAX_DIMS + 1, dtype=torch.long)
    header[0] = tensor.dim()
    header[1:tensor.dim() + 1] = torch.tensor(tensor.shape)
    dist.send(header, dst)
    dist.send(tensor.detach().contiguous(), dst)


def recv_tensor(src: int, device) -> torch.Tensor:
    header = torch.zeros(MAX_DIMS + 1, dtype=torch.long)
    dist.recv(header, src)
    shape = header[1:int(header[0]) + 1].tolist()
    tensor = torch.empty(shape, device=device)
    dist.recv(tensor, src)
    return tensor


def run(args, env, device, stop=None) -> tuple[dict | None, list[float]]:
    """Train; return (full state dict on rank 0 else None, mean loss per step trained); (None, losses) on every
    rank when a SIGTERM stopped the run after a checkpoint."""
    if env.world_size == 1:
        return run_reference(args, device, env, stop)
    rank, last = env.rank, env.world_size - 1
    stage = build_stages(args, env.world_size)[rank].to(device)
    optimizer = make_optimizer(stage.parameters(), args)
    steps = Steps(args, env, {rank: stage}, optimizer, env.world_size, stop)
    criterion = loss_fn(args)
    for step in range(steps.start, args.steps):
        x, y = synthetic_batch(args, step, args.global_batch_size)
        optimizer.zero_grad(set_to_none=True)
        if rank == 0:
            inputs = x.to(device)
        else:
            inputs = recv_tensor(rank - 1, device).requires_grad_()
        outputs = stage(inputs)
        loss = None
        if rank == last:
            loss = criterion(outputs, y.to(device))
            loss.backward()
        else:
            send_tensor(outputs, rank + 1)
            outputs.backward(recv_tensor(rank + 1, device))
        if rank > 0:
            send_tensor(inputs.grad, rank - 1)
        optimizer.step()
        if steps.end(step + 1, None if loss is None else loss.item()):  # only the last rank has the loss
            return None, steps.history
    gathered = [None] * env.world_size if rank == 0 else None
    dist.gather_object(full_state_dict([stage]), gathered, dst=0)
    if rank != 0:
        return None, steps.history
    return {k: v for part in gathered for k, v in part.items()}, steps.history


def main(argv=None) -> None:
    run_script(run, lambda args, env: f"naive model parallel: {env.world_size} stages, {args.model}, batch {args.global_batch_size}", argv)


if __name__ == "__main__":
    main()
    smr.exit_cleanly()
