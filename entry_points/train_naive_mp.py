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
from smjobs_runtime import MetricLog  # noqa: E402
from train_pipeline import make_optimizer, run_reference, run_script  # noqa: E402

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


def run(args, env, device) -> tuple[dict | None, list[float]]:
    if env.world_size == 1:
        return run_reference(args, device)
    rank, last = env.rank, env.world_size - 1
    stage = build_stages(args, env.world_size)[rank].to(device)
    optimizer = make_optimizer(stage.parameters(), args)
    criterion = loss_fn(args)
    history, log = [], MetricLog(args.steps, args.log_every, args.global_batch_size, enabled=rank == 0)
    for step in range(args.steps):
        x, y = synthetic_batch(args, step, args.global_batch_size)
        optimizer.zero_grad(set_to_none=True)
        if rank == 0:
            inputs = x.to(device)
        else:
            inputs = recv_tensor(rank - 1, device).requires_grad_()
        outputs = stage(inputs)
        if rank == last:
            loss = criterion(outputs, y.to(device))
            loss.backward()
            report = torch.tensor([loss.item()])
        else:
            send_tensor(outputs, rank + 1)
            outputs.backward(recv_tensor(rank + 1, device))
            report = torch.zeros(1)
        if rank > 0:
            send_tensor(inputs.grad, rank - 1)
        optimizer.step()
        dist.all_reduce(report)  # only the last rank contributes its loss
        history.append(report.item())
        log.step(step + 1, history[-1])
    gathered = [None] * env.world_size if rank == 0 else None
    dist.gather_object(full_state_dict([stage]), gathered, dst=0)
    if rank != 0:
        return None, history
    return {k: v for part in gathered for k, v in part.items()}, history


def main(argv=None) -> None:
    run_script(run, lambda args, env: f"naive model parallel: {env.world_size} stages, {args.model}, batch {args.global_batch_size}", argv)


if __name__ == "__main__":
    main()
    smr.exit_cleanly()
