"""SageMaker model parallelism v1 (smdistributed.modelparallel.torch), written the way AWS documents it.

SMP v1 splits the model into ``partitions`` pipeline stages and feeds ``microbatches`` micro-batches through
them inside the ``@smp.step`` function; its configuration comes from the job's ``mp_parameters``, which
``smp.init()`` reads. The library exists only in SageMaker's PyTorch <= 2.0 GPU images, or locally through
smjobs' smdistributed-stub. SMP v1 is in maintenance: prefer train_pipeline.py or the smp_v2 path of train.py.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import smjobs_runtime as smr  # noqa: E402
from common.models import add_model_arguments, build_model, synthetic_batch  # noqa: E402
from smjobs_runtime import toolkit_mapping  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__)
    add_model_arguments(p)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--global_batch_size", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--log_every", type=int, default=1)
    p.add_argument("--parallel", choices=["smp_v1"], default="smp_v1")
    p.add_argument("--mp_parameters", type=toolkit_mapping, default={}, help="read by smp.init() from the environment")
    return p.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    env = smr.environment()
    with smr.reporting_failures(env):
        import smdistributed.modelparallel.torch as smp

        smr.check_world_size(env)
        smp.init()
        if torch.cuda.is_available():
            torch.cuda.set_device(smp.local_rank())
        device = torch.device("cuda", smp.local_rank()) if torch.cuda.is_available() else torch.device("cpu")
        torch.manual_seed(args.seed)
        model = build_model(args)
        loss_fn = type(model).loss
        model = smp.DistributedModel(model)
        optimizer = smp.DistributedOptimizer(torch.optim.AdamW(model.parameters(), lr=args.lr))

        @smp.step
        def train_step(model, x, y):
            loss = loss_fn(model(x), y)
            model.backward(loss)
            return loss

        local = args.global_batch_size // smp.dp_size()
        if smp.rank() == 0:
            print(f"smp v1: {args.model}, pp {smp.pp_size()} x dp {smp.dp_size()} x tp {smp.tp_size()}", flush=True)
        t0, seen = time.perf_counter(), 0
        for step in range(args.steps):
            x, y = synthetic_batch(args, step, args.global_batch_size)
            x, y = x[smp.dp_rank() * local:(smp.dp_rank() + 1) * local], y[smp.dp_rank() * local:(smp.dp_rank() + 1) * local]
            optimizer.zero_grad()
            loss = train_step(model, x.to(device), y.to(device)).reduce_mean()
            optimizer.step()
            seen += args.global_batch_size
            if smp.rank() == 0 and ((step + 1) % args.log_every == 0 or step + 1 == args.steps):
                now = time.perf_counter()
                print(f"step={step + 1} loss={loss.item():.6f} samples_per_s={seen / (now - t0):.1f}", flush=True)
                t0, seen = now, 0
        state = model.state_dict()  # gathered across partitions
        if smp.rank() == 0:
            env.model_dir.mkdir(parents=True, exist_ok=True)
            smp.save({"model": state, "args": vars(args)}, str(env.model_dir / "model.pt"), partial=False)
            print(f"saved model to {env.model_dir / 'model.pt'}", flush=True)
        smp.barrier()


if __name__ == "__main__":
    main()
    smr.exit_cleanly()
