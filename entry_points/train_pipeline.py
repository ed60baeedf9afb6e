"""Pipeline-parallel training with torch.distributed.pipelining, on a dp x pp x tp DeviceMesh.

The model (MLP or GPT of the zoo) is split into pp_degree x pp_virtual_stages stages; each pipeline rank
holds pp_virtual_stages of them (looped placement, or a V for ZBVZeroBubble and DualPipeV), each replica's
batch is split into pp_accumulation_steps x pp_microbatches micro-batches, run by the chosen schedule
pp_microbatches at a time (gradients accumulate over the schedule steps). Gradients are averaged
across the dp_degree pipeline replicas; with tp_degree > 1 the transformer blocks' MLPs are tensor-parallel.
Runs under SageMaker's torch_distributed launcher, under torchrun, and (one process, no pipeline) as plain
``python train_pipeline.py``, which is the reference the pipelined runs must match.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torch.distributed as dist

sys.path.insert(0, str(Path(__file__).resolve().parent))

import smjobs_runtime as smr  # noqa: E402
from common import memory  # noqa: E402
from common.models import MODEL_SHAPING, add_model_arguments, synthetic_batch  # noqa: E402
from common.stages import build_stages, full_state_dict, loss_fn, tensor_parallel_blocks  # noqa: E402
from smjobs_runtime import MetricLog, boolean, json_dict  # noqa: E402

SHAPING = (*MODEL_SHAPING, "stages")
"""What a resumed run must keep: the model and how it is cut into stages (the checkpoint's keys are stage numbers)."""
SCHEDULES = ("GPipe", "1F1B", "Interleaved1F1B", "LoopedBFS", "InterleavedZeroBubble", "ZBVZeroBubble", "DualPipeV")
SINGLE_STAGE = ("GPipe", "1F1B")
V_SHAPED = ("ZBVZeroBubble", "DualPipeV")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__)
    add_model_arguments(p, models=("mlp", "gpt"), hidden_sizes=(64, 64, 64), n_layers=4)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--global_batch_size", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--optimizer", type=json_dict, default={"name": "adamw"})
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--log_every", type=int, default=1)
    p.add_argument("--checkpoint_every", type=int, default=0, help="0: checkpoint only on SIGTERM")
    p.add_argument("--checkpoint_keep", type=int, default=smr.CHECKPOINT_KEEP,
                   help="checkpoints kept: the newest N and the newest complete one (0: every one)")
    p.add_argument("--parallel", choices=["pipeline", "naive_mp"], default="pipeline")
    p.add_argument("--pp_degree", type=int, default=1)
    p.add_argument("--dp_degree", type=int, default=1)
    p.add_argument("--tp_degree", type=int, default=1)
    p.add_argument("--pp_schedule", choices=SCHEDULES, default="1F1B")
    p.add_argument("--pp_microbatches", type=int, default=4)
    p.add_argument("--pp_virtual_stages", type=int, default=1)
    p.add_argument("--pp_accumulation_steps", type=int, default=1,
                   help="schedule steps per optimizer step, gradients accumulated over them")
    p.add_argument("--track_memory", type=boolean, default=False, help="measure this process's peak memory (MemTracker)")
    p.set_defaults(**smr.distribution())  # the job's strategy settings, from the environment smjobs sets
    args = p.parse_args(argv)
    per_step = args.pp_microbatches * args.pp_accumulation_steps
    if args.pp_accumulation_steps < 1 or (args.global_batch_size // max(1, args.dp_degree)) % per_step:
        p.error(f"each replica's batch must split into --pp_microbatches x --pp_accumulation_steps = {per_step} micro-batches")
    return args


def make_optimizer(params, args):
    settings = dict(args.optimizer)
    name = settings.pop("name", "adamw").lower()
    if "betas" in settings:
        settings["betas"] = tuple(settings["betas"])
    cls = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[name]
    return cls(params, lr=args.lr, **settings)


def stage_indices(pp_rank: int, pp: int, virtual: int, schedule: str) -> list[int]:
    """Which of the pp x virtual stages a pipeline rank holds."""
    if schedule in V_SHAPED:
        return [pp_rank, 2 * pp - 1 - pp_rank]
    return [pp_rank + k * pp for k in range(virtual)]


def schedule_class(name: str):
    from torch.distributed import pipelining

    return getattr(pipelining, "Schedule" + name)


def run(args, env, device, stop=None) -> tuple[dict | None, list[float]]:
    """Train; return (full state dict on global rank 0 else None, mean loss per step trained); (None, losses) on
    every rank when a SIGTERM stopped the run after a checkpoint."""
    if env.world_size == 1:
        return run_reference(args, device, env, stop)
    from torch.distributed.device_mesh import init_device_mesh

    dp, pp, tp = args.dp_degree, args.pp_degree, args.tp_degree
    if dp * pp * tp != env.world_size:
        raise ValueError(f"dp({dp}) x pp({pp}) x tp({tp}) = {dp * pp * tp} != world size {env.world_size}")
    mesh = init_device_mesh(device.type, (dp, pp, tp), mesh_dim_names=("dp", "pp", "tp"))
    mine = stage_indices(mesh["pp"].get_local_rank(), pp, args.pp_virtual_stages, args.pp_schedule)
    all_stages = build_stages(args, pp * args.pp_virtual_stages)
    modules = [all_stages[i].to(device) for i in mine]
    del all_stages  # every rank builds the whole (small) model for identical initial weights; keeps its stages
    with memory.tracking(args.track_memory) as report:
        report.track(*modules)
        history, stopped = train_stages(args, env, device, mesh, modules, mine, report, stop)
    report.publish(env)
    if stopped:
        return None, history
    state = full_state_dict(modules) if mesh["dp"].get_local_rank() == 0 else {}
    gathered = [None] * env.world_size if env.rank == 0 else None
    dist.gather_object(state, gathered, dst=0)
    if env.rank != 0:
        return None, history
    return {k: v for part in gathered for k, v in part.items()}, history


def train_stages(args, env, device, mesh, modules, mine, report, stop) -> tuple[list[float], bool]:
    """Run the schedule over this rank's stages ``modules`` (global indices ``mine``); return the mean loss per step
    and whether a SIGTERM stopped the run."""
    from torch.distributed.pipelining import PipelineStage

    dp, tp, n_stages = args.dp_degree, args.tp_degree, args.pp_degree * args.pp_virtual_stages
    dp_rank = mesh["dp"].get_local_rank()
    if tp > 1:
        for module in modules:
            tensor_parallel_blocks(module, mesh["tp"])
    stages = [PipelineStage(m, i, n_stages, device, group=mesh["pp"].get_group()) for m, i in zip(modules, mine, strict=True)]
    cls = schedule_class(args.pp_schedule)
    # the schedule's own scaling divides every parameter's whole .grad, which would scale the earlier schedule
    # steps' share again: with accumulation the mean over all micro-batches is taken once, after the last step
    k = args.pp_accumulation_steps
    common = {"n_microbatches": args.pp_microbatches, "loss_fn": loss_fn(args), "scale_grads": k == 1}
    schedule = cls(stages[0], **common) if args.pp_schedule in SINGLE_STAGE else cls(stages, **common)
    params = [p for m in modules for p in m.parameters()]
    optimizer = make_optimizer(params, args)
    steps = Steps(args, env, dict(zip(mine, modules, strict=True)), optimizer, n_stages, stop)
    has_first, has_last = 0 in mine, n_stages - 1 in mine
    local = args.global_batch_size // dp
    for step in range(steps.start, args.steps):
        x, y = synthetic_batch(args, step, args.global_batch_size)
        x, y = x[dp_rank * local:(dp_rank + 1) * local].to(device), y[dp_rank * local:(dp_rank + 1) * local].to(device)
        optimizer.zero_grad(set_to_none=True)
        losses: list[torch.Tensor] = []
        chunk = local // k
        for part in range(k):  # gradients add up over the schedule steps
            step_losses: list[torch.Tensor] = []  # the schedule refills the list it is given
            inputs = (x[part * chunk:(part + 1) * chunk],) if has_first else ()
            kwargs = {"target": y[part * chunk:(part + 1) * chunk], "losses": step_losses} if has_last else {}
            schedule.step(*inputs, **kwargs)
            losses += step_losses
        if k > 1:
            for p in params:
                if p.grad is not None:
                    p.grad.div_(k * args.pp_microbatches)
        if dp > 1:  # average gradients across pipeline replicas
            for p in params:
                if p.grad is not None:
                    grad = p.grad.to_local() if hasattr(p.grad, "to_local") else p.grad
                    dist.all_reduce(grad, group=mesh["dp"].get_group())
                    grad /= dp
        optimizer.step()
        report.step()
        # every rank holding the last stage knows its replica's loss; the step's end averages those over the world
        if steps.end(step + 1, torch.stack(losses).mean().item() if losses else None):
            return steps.history, True
    return steps.history, False


class Steps:
    """The model-parallel scripts' bookkeeping: resume from the newest checkpoint, and at the end of each step one
    all-reduce for the mean loss and whether any rank was asked to stop (every rank stops after the same step),
    the metric line, and periodic and on-stop checkpoints of this rank's stages."""

    def __init__(self, args, env, stages: dict[int, torch.nn.Module], optimizer, n_stages: int, stop):
        self.args, self.env, self.optimizer = args, env, optimizer
        self.stop = stop or smr.StopSignal(signals=())
        # keyed by global stage number, so that every stage's tensors have one name whichever rank holds them
        self.model = torch.nn.ModuleDict({f"stage{i}": m for i, m in stages.items()})
        self.hyperparameters = {**vars(args), "stages": n_stages}
        self.start = smr.load_latest_checkpoint(self.model, optimizer, env, hyperparameters=self.hyperparameters)
        self.history: list[float] = []
        self.log = MetricLog(args.steps, args.log_every, args.global_batch_size, enabled=env.rank == 0)

    def end(self, done: int, loss: float | None) -> bool:
        """Step ``done`` (1-based) finished with ``loss`` on this rank (None: it holds no last stage); True: stop."""
        flags = torch.tensor([loss or 0.0, 0.0 if loss is None else 1.0, float(self.stop.requested)])
        if self.env.distributed:
            dist.all_reduce(flags)
        self.history.append(flags[0].item() / flags[1].item())
        self.log.step(done, self.history[-1])
        stopped = flags[2].item() > 0
        if stopped or (self.args.checkpoint_every and done % self.args.checkpoint_every == 0):
            smr.save_checkpoint(self.model, self.optimizer, done, self.env, hyperparameters=self.hyperparameters,
                                shaping=SHAPING, keep=self.args.checkpoint_keep)
        if stopped:
            smr.report_stop(self.env, done)
        return stopped


def run_reference(args, device, env=None, stop=None) -> tuple[dict | None, list[float]]:
    """One process, the whole model, the whole batch: what the pipelined runs must reproduce."""
    stage = build_stages(args, 1)[0].to(device)
    optimizer = make_optimizer(stage.parameters(), args)
    steps = Steps(args, env or smr.environment({}), {0: stage}, optimizer, 1, stop)
    criterion = loss_fn(args)
    for step in range(steps.start, args.steps):
        x, y = synthetic_batch(args, step, args.global_batch_size)
        optimizer.zero_grad(set_to_none=True)
        loss = criterion(stage(x.to(device)), y.to(device))
        loss.backward()
        optimizer.step()
        if steps.end(step + 1, loss.item()):
            return None, steps.history
    return full_state_dict([stage]), steps.history


def run_script(run_fn, describe, argv=None) -> None:
    """The shared body of the model-parallel scripts: parse, start, train with ``run_fn``, save on rank 0."""
    stop = smr.StopSignal()  # from the first moment: a SIGTERM during start-up stops after the first step
    args = parse_args(argv)
    env = smr.environment()
    with smr.reporting_failures(env):
        device = smr.init_distributed(env)
        if env.rank == 0:
            print(describe(args, env), flush=True)
        state, losses = run_fn(args, env, device, stop)
        if state is not None:
            smr.save_model(env, {"model": state, "losses": losses, "first_step": args.steps - len(losses), "args": vars(args)})


def describe(args, env) -> str:
    return (f"pipeline {args.pp_schedule}: {args.model}, dp({args.dp_degree}) x pp({args.pp_degree}) x tp({args.tp_degree}), "
            f"{args.pp_microbatches} micro-batches, {args.pp_virtual_stages} stage(s) per rank, {env.world_size} process(es)")


def main(argv=None) -> None:
    run_script(run, describe, argv)


if __name__ == "__main__":
    main()
    smr.exit_cleanly()
