"""Data-parallel training (DDP or FSDP2) for SageMaker and for any CPU machine.

Runs unchanged under SageMaker's torch_distributed launcher, under ``torchrun --nproc_per_node N``, and
as plain ``python train.py``. Uses NCCL on GPUs and gloo on CPU. Rank 0 prints metric lines
(``step=.. loss=.. samples_per_s=..``) that the job's metric definitions match and saves the model.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist

sys.path.insert(0, str(Path(__file__).resolve().parent))  # `common` beside this file, under any launcher

import smjobs_runtime as smr  # noqa: E402
from common import memory  # noqa: E402
from common.models import MODEL_SHAPING, add_model_arguments, apply_recompute, build_model, synthetic_batch  # noqa: E402
from smjobs_runtime import MetricLog, boolean, json_dict, toolkit_mapping  # noqa: E402


class ChannelData:
    """Tensors from ``*.pt`` files in a channel directory (each a dict with ``x`` and ``y``), read in order."""

    def __init__(self, directory: Path):
        files = sorted(directory.glob("*.pt"))
        if not files:
            raise FileNotFoundError(f"no *.pt files in channel directory {directory}")
        parts = [torch.load(f, weights_only=True) for f in files]
        self.x = torch.cat([p["x"] for p in parts])
        self.y = torch.cat([p["y"] for p in parts])

    def batch(self, step: int, batch_size: int):
        index = (torch.arange(batch_size) + step * batch_size) % len(self.x)
        return self.x[index], self.y[index]


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__)
    add_model_arguments(p)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--global_batch_size", type=int, default=32)
    p.add_argument("--grad_accum_steps", type=int, default=1)
    p.add_argument("--recompute", choices=["none", "full"], default="none",
                   help="activation recomputation of the gpt's blocks: full keeps each block's input only")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--optimizer", type=json_dict, default={"name": "adamw"})
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--log_every", type=int, default=10)
    p.add_argument("--checkpoint_every", type=int, default=0, help="0: checkpoint only on SIGTERM")
    p.add_argument("--checkpoint_keep", type=int, default=smr.CHECKPOINT_KEEP,
                   help="checkpoints kept: the newest N and the newest complete one (0: every one)")
    p.add_argument("--data_channel", default="", help="read tensors from this input channel; empty: synthetic data")
    # fault injection, for testing how a job fails: rank `fail_rank` raises at step `fail_at_step`
    p.add_argument("--fail_at_step", type=int, default=-1)
    p.add_argument("--fail_rank", type=int, default=0)
    # the job's distribution strategy: smjobs sets these through the environment (smjobs_runtime.distribution()),
    # never on the command line; the flags are for runs by hand
    p.add_argument("--parallel", choices=["none", "ddp", "fsdp", "smp_v2"], default="ddp")
    p.add_argument("--mp_parameters", type=toolkit_mapping, default={}, help="SageMaker model parallelism settings (smp_v2)")
    p.add_argument("--smp_v2_backend", choices=["auto", "torch.sagemaker", "native"], default="auto",
                   help="smp_v2: torch.sagemaker when it can be imported (auto), always, or native FSDP2 + DTensor")
    p.add_argument("--backend", choices=["auto", "nccl", "gloo", "smddp"], default="auto")
    p.add_argument("--mixed_precision", choices=["fp32", "bf16", "fp16"], default="fp32")
    p.add_argument("--fsdp_sharding", choices=["full_shard", "shard_grad_op", "hybrid_shard"], default="full_shard")
    p.add_argument("--fsdp_shard_degree", type=int, default=0)
    p.add_argument("--fsdp_cpu_offload", type=boolean, default=False)
    p.add_argument("--fsdp_unsharded_microbatches", type=boolean, default=False,
                   help="keep parameters and gradients unsharded between accumulation micro-batches: one gather and one "
                        "reduce-scatter per step instead of per micro-batch, for an unsharded copy in memory")
    p.add_argument("--track_memory", type=boolean, default=False, help="measure this process's peak memory (MemTracker)")
    p.set_defaults(**smr.distribution())
    args = p.parse_args(argv)
    if args.global_batch_size % args.grad_accum_steps:
        p.error("--global_batch_size must be a multiple of --grad_accum_steps")
    return args


def smp_v2_library(args):
    """torch.sagemaker: SMP v2 in SageMaker's pytorch-smp images, smdistributed-stub's stand-in on other machines;
    None (native FSDP2 + DTensor) without either, or when --smp_v2_backend native asks for it."""
    if args.smp_v2_backend == "native":
        return None
    try:
        import torch.sagemaker as tsm
    except ImportError:
        if args.smp_v2_backend == "torch.sagemaker":
            raise
        return None
    return tsm


def smp_v2_mesh(args, env, device):
    """SMP v2's process layout. With torch.sagemaker, tsm.init() reads the job's mp_parameters and None is
    returned; natively, the (replicate, shard, tp) mesh: hybrid_shard_degree 0 shards over all of dp."""
    tsm = smp_v2_library(args)
    if tsm is not None:
        tsm.init(args.mp_parameters or None)  # the job's SM_HP_MP_PARAMETERS, where set, take priority
        return None
    from torch.distributed.device_mesh import init_device_mesh

    params = args.mp_parameters
    for feature in ("context_parallel_degree", "expert_parallel_degree"):
        if params.get(feature, 1) > 1:
            raise NotImplementedError(f"{feature} > 1 needs SageMaker's torch.sagemaker; the native fallback "
                                      "covers hybrid sharding and tensor parallelism")
    tp = params.get("tensor_parallel_degree", 1)
    shard = params.get("hybrid_shard_degree", 0) or env.world_size // tp
    return init_device_mesh(device.type, (env.world_size // (tp * shard), shard, tp), mesh_dim_names=("replicate", "shard", "tp"))


def data_parallel_coordinates(args, env, mesh) -> tuple[int, int]:
    """(rank, size) among the processes that take different data; tensor-parallel peers share a slice
    (consecutive ranks, tp varying fastest, under SMP v2 and natively)."""
    if args.parallel != "smp_v2" or not env.distributed:
        return env.rank, env.world_size
    tp = mesh["tp"].size() if mesh is not None else smp_v2_library(args).state.tp_size
    return env.rank // tp, env.world_size // tp


def wrap_smp_v2(model: torch.nn.Module, args, env, device, mesh) -> torch.nn.Module:
    """SageMaker model parallelism v2 as AWS's scripts use it (tsm.transform, then torch's FSDP, which SMP
    groups from hybrid_shard_degree), or natively FSDP2 + DTensor TP on the same layout."""
    blocks = {type(m) for m in model.modules() if type(m).__name__ in ("Block", "Linear", "Conv2d")}
    if mesh is None:
        from torch.distributed.fsdp import FullyShardedDataParallel
        from torch.distributed.fsdp.wrap import ModuleWrapPolicy

        model = smp_v2_library(args).transform(model)
        wrapped = {t for t in blocks if t.__name__ == "Block"} or blocks
        return FullyShardedDataParallel(model, auto_wrap_policy=ModuleWrapPolicy(wrapped), use_orig_params=True,
                                        device_id=device)
    from torch.distributed.fsdp import fully_shard

    if mesh["tp"].size() > 1:
        from torch.distributed.tensor.parallel import ColwiseParallel, RowwiseParallel, parallelize_module

        plan = getattr(model, "_tp_plan", None)
        if not plan:
            raise ValueError(f"tensor_parallel_degree > 1: {type(model).__name__} has no tensor-parallel plan (_tp_plan)")
        styles = {"colwise": ColwiseParallel, "rowwise": RowwiseParallel}
        parallelize_module(model, mesh["tp"], {name: styles[style]() for name, style in plan.items()})
    dp_mesh = mesh["replicate", "shard"]
    for module in model.modules():
        if type(module).__name__ == "Block":
            fully_shard(module, mesh=dp_mesh)
    return fully_shard(model, mesh=dp_mesh)


def wrap(model: torch.nn.Module, args, env, device, mesh=None) -> torch.nn.Module:
    if not env.distributed or args.parallel == "none":
        return model
    if args.parallel == "smp_v2":
        return wrap_smp_v2(model, args, env, device, mesh)
    if args.parallel == "ddp":
        from torch.nn.parallel import DistributedDataParallel

        return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import CPUOffloadPolicy, MixedPrecisionPolicy, fully_shard

    if args.fsdp_sharding == "hybrid_shard":
        shard = args.fsdp_shard_degree or env.local_world_size
        mesh = init_device_mesh(device.type, (env.world_size // shard, shard), mesh_dim_names=("replicate", "shard"))
    else:
        mesh = init_device_mesh(device.type, (env.world_size,))
    dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[args.mixed_precision]
    options = {
        "mesh": mesh,
        "reshard_after_forward": args.fsdp_sharding != "shard_grad_op",
        "mp_policy": MixedPrecisionPolicy(param_dtype=dtype, reduce_dtype=torch.float32 if dtype else None),
    }
    if args.fsdp_cpu_offload:
        options["offload_policy"] = CPUOffloadPolicy()
    for module in model.modules():  # shard each block, then the root
        if module is not model and type(module).__name__ in ("Block", "Linear", "Conv2d") and not any(
            isinstance(p, torch.distributed.tensor.DTensor) for p in module.parameters()
        ):
            fully_shard(module, **options)
    return fully_shard(model, **options)


def make_optimizer(model, args):
    settings = dict(args.optimizer)
    name = settings.pop("name", "adamw").lower()
    if name == "sgd":
        return torch.optim.SGD(model.parameters(), lr=args.lr, **settings)
    if name in ("adam", "adamw"):
        cls = torch.optim.AdamW if name == "adamw" else torch.optim.Adam
        if "betas" in settings:
            settings["betas"] = tuple(settings["betas"])
        return cls(model.parameters(), lr=args.lr, **settings)
    raise ValueError(f"unknown optimizer {name!r}; choose sgd, adam or adamw")


def train(args, env, stop=None) -> None:
    device = smr.init_distributed(env, args.backend)
    smr.start_tracking(env, vars(args))  # the spec's tracking section: one MLflow run, from rank 0
    # tracked from before the model exists, so that DDP's gradient buckets and FSDP's shards are counted
    with memory.tracking(args.track_memory) as report:
        model = train_steps(args, env, device, report, stop or smr.StopSignal())
    report.publish(env)
    if model is not None:
        save_model(model, args, env)


def train_steps(args, env, device, report, stop) -> torch.nn.Module | None:
    """Run the steps; return the model, or None when a SIGTERM stopped the run after a checkpoint."""
    torch.manual_seed(args.seed)
    mesh = smp_v2_mesh(args, env, device) if args.parallel == "smp_v2" and env.distributed else None
    dp_rank, dp_size = data_parallel_coordinates(args, env, mesh)
    model = wrap(apply_recompute(build_model(args), args.recompute).to(device), args, env, device, mesh)
    loss_fn = type(model.module if hasattr(model, "module") else model).loss
    optimizer = make_optimizer(model, args)
    start = smr.load_latest_checkpoint(model, optimizer, env, hyperparameters=vars(args))
    if args.global_batch_size % (dp_size * args.grad_accum_steps):
        raise ValueError(
            f"global_batch_size {args.global_batch_size} must divide evenly over {dp_size} data-parallel processes "
            f"x {args.grad_accum_steps} accumulation steps"
        )
    local = args.global_batch_size // dp_size
    micro = local // args.grad_accum_steps
    if args.data_channel:
        if args.data_channel not in env.channels:
            raise ValueError(f"--data_channel {args.data_channel!r}: no such input channel (have: {sorted(env.channels)})")
        data = ChannelData(env.channels[args.data_channel])
        next_batch = data.batch
    else:
        def next_batch(step, size):
            return synthetic_batch(args, step, size)
    autocast = args.mixed_precision == "bf16" and args.parallel != "fsdp" and (
        device.type == "cpu" or torch.cuda.is_bf16_supported()
    )
    if env.rank == 0:
        backend = dist.get_backend() if dist.is_initialized() else "none"
        unsharded = args.parallel == "fsdp" and args.fsdp_unsharded_microbatches
        parallel = args.parallel
        if parallel == "smp_v2" and env.distributed:
            tsm = smp_v2_library(args)
            parallel += " (torch.sagemaker" + (", smdistributed-stub)" if getattr(tsm, "__stub__", False) else ")") \
                if tsm else " (native FSDP2)"
        print(f"training {args.model} with {parallel} on {env.world_size} process(es), "
              f"device {device.type}, backend {backend}, from step {start}"
              + (f"; fsdp unsharded between {args.grad_accum_steps} micro-batches" if unsharded else ""), flush=True)
    log = MetricLog(args.steps, args.log_every, args.global_batch_size, enabled=env.rank == 0)
    for step in range(start, args.steps):
        if step == args.fail_at_step and env.rank == args.fail_rank:
            raise RuntimeError(f"injected failure at step {step} on rank {env.rank} (--fail_at_step)")
        x, y = next_batch(step, args.global_batch_size)
        x, y = x[dp_rank * local:(dp_rank + 1) * local].to(device), y[dp_rank * local:(dp_rank + 1) * local].to(device)
        optimizer.zero_grad(set_to_none=True)
        total = torch.zeros((), device=device)
        for k in range(args.grad_accum_steps):
            xs, ys = x[k * micro:(k + 1) * micro], y[k * micro:(k + 1) * micro]
            if args.parallel == "fsdp" and args.fsdp_unsharded_microbatches:
                last = k == args.grad_accum_steps - 1  # FSDP2: sync and reshard after the last micro-batch only
                model.set_requires_gradient_sync(last)
                model.set_reshard_after_backward(last)
            # DDP all-reduces once, in the last micro-batch's backward: the others accumulate locally (no_sync)
            ddp = type(model).__name__ == "DistributedDataParallel"
            sync = model.no_sync() if ddp and k < args.grad_accum_steps - 1 else contextlib.nullcontext()
            with sync:
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
                    loss = loss_fn(model(xs), ys) / args.grad_accum_steps
                loss.backward()
            total += loss.detach()
        optimizer.step()
        report.step()
        done = step + 1
        # One small all-reduce per step carries the loss and whether any rank was asked to stop, so that
        # every rank stops after the same step (the checkpoint is collective).
        flags = torch.stack([total.float(), torch.tensor(float(stop.requested), device=device)])
        if env.distributed:
            dist.all_reduce(flags, op=dist.ReduceOp.SUM)  # gloo has no AVG
        loss_mean, interrupted = flags[0].item() / env.world_size, flags[1].item() > 0
        log.step(done, loss_mean)
        if interrupted or (args.checkpoint_every and done % args.checkpoint_every == 0):
            smr.save_checkpoint(model, optimizer, done, env, hyperparameters=vars(args), shaping=MODEL_SHAPING,
                                keep=args.checkpoint_keep)
        if interrupted:
            smr.report_stop(env, done)
            return None
    return model


def save_model(model, args, env) -> None:
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    # offloading (rank 0 gathers into host memory) matters on GPUs only; on CPU, gloo crashes gathering FSDP1's
    # tensor-parallel parameters that way (torch 2.13), and every rank gathering costs the same
    on_gpu = any(p.is_cuda for p in model.parameters())
    full = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=on_gpu))
    if env.rank == 0:
        smr.save_model(env, {"model": full, "args": vars(args)})


def main(argv=None) -> None:
    stop = smr.StopSignal()  # first: a SIGTERM during start-up stops the run after its first step, with a checkpoint
    args = parse_args(argv)
    env = smr.environment()
    with smr.reporting_failures(env):
        train(args, env, stop)


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
    smr.exit_cleanly()
