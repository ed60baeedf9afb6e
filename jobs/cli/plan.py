"""``smjobs validate``, ``smjobs plan`` and ``smjobs schedule``: is the spec right, which instances fit it, and what a
pipeline schedule looks like. None of them talks to AWS."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from smjobs.cli.shared import (
    PLAN,
    OutputOpt,
    RegionOpt,
    SetOpt,
    SpecArg,
    command,
    emit,
    err,
    fail,
    json_output,
    load,
    notice,
    out,
    spec_region,
)
from smjobs.errors import SpecError, UsageError
from smjobs.tables import print_pairs


@command(panel=PLAN)
def validate(spec: SpecArg, region: RegionOpt = None, overrides: SetOpt = None, output: OutputOpt = "text") -> None:
    """Check a spec against every rule; print a summary, or every problem and exit 2."""
    from smjobs.request import source
    from smjobs.request.training import build_request

    try:
        job = load(spec, region, overrides)
        request = build_request(job, region=spec_region(job, region))
    except (SpecError, UsageError) as exc:
        fail(exc)
    manifest = source.manifest_for(request)
    if json_output():
        from smjobs.cli.schemas import CodeArchive, InstanceCount, ValidateOutput

        compute = job.compute
        emit(ValidateOutput(
            name=job.name, strategy=job.distribution.type, launcher=job.distribution.launcher,
            instance_type=compute.instance_type, instance_count=compute.instance_count,
            instance_preferences=[InstanceCount(instance_type=p.instance_type, instance_count=p.instance_count)
                                  for p in compute.instance_preferences or ()],
            processes_per_host=request.processes_per_host, world_size=request.world_size,
            image=request.create_training_job["AlgorithmSpecification"]["TrainingImage"],
            source_dir=request.source_dir, entry_point=request.entry_point,
            hyperparameters=len(request.create_training_job["HyperParameters"]),
            code_archive=CodeArchive(files=len(manifest.files), total_bytes=manifest.total_bytes,
                                     excluded=len(manifest.excluded)),
            notices=notice(job, region)))
        return
    compute = job.compute
    rows = [("strategy", f"{job.distribution.type} ({job.distribution.launcher})"),
            ("instances", f"{compute.instance_count} x {compute.instance_type}")]
    if compute.instance_preferences:
        rows.append(("instance preferences", ", ".join(f"{p.instance_count} x {p.instance_type}"
                                                       for p in compute.instance_preferences) + " (SageMaker takes the first it has)"))
    rows += [("processes", f"{request.processes_per_host} per host, world size {request.world_size}"),
             ("image", request.create_training_job["AlgorithmSpecification"]["TrainingImage"]),
             ("entry point", escape(f"{request.source_dir}/{request.entry_point}")),
             ("hyperparameters", str(len(request.create_training_job["HyperParameters"]))),
             ("code archive", f"{len(manifest.files)} files, {source.human_bytes(manifest.total_bytes)} "
                              f"({len(manifest.excluded)} left out; `smjobs submit --dry-run` lists them)")]
    print_pairs(out, f"{job.name}: valid", rows)
    notice(job, region)


@command("plan", panel=PLAN)
def plan_command(
    spec: SpecArg,
    region: RegionOpt = None,
    overrides: SetOpt = None,
    top: Annotated[int, typer.Option("--top", min=1, help="Alternatives to list.")] = 5,
    png: Annotated[Path | None, typer.Option("--png", help="Also draw estimated cost against step time.")] = None,
    output: OutputOpt = "text",
) -> None:
    """Choose instances for SPEC: the cheapest configuration that fits, the alternatives, and why the rest do not."""
    from smjobs import api
    from smjobs.api import read_spec
    from smjobs.checks.validate import parse_spec
    from smjobs.planner.plot import plot
    from smjobs.planner.report import print_plan
    from smjobs.planner.resolve import plan_spec

    try:
        job, problems = parse_spec(read_spec(spec, overrides or [])[1])
        if problems:
            raise SpecError(problems)
        found = api.plan(job, region=region, top=top)
    except (SpecError, UsageError) as exc:
        fail(exc)
    if json_output():
        emit(_plan_document(found, top))
    else:
        print_plan(found, top, out=out, err=err)
    if png is not None:  # the picture shows every configuration that fits: search again without pruning
        everything, _ = plan_spec(job, region, all_types=True, keep=10**6)
        picture = plot(everything, png, f'{job.name}: time to train vs job cost')
        (err if json_output() else out).print(f"picture: {picture}", markup=False)
    if found.choice is None:
        raise typer.Exit(1)


def _plan_document(found, top: int):
    """``smjobs plan -o json``'s document."""
    from smjobs import catalog
    from smjobs.cli.schemas import Configuration, PlanOutput, RejectedType

    types = catalog.instances().types

    def configuration(c) -> Configuration:
        layout = c.layout
        return Configuration(
            instance_type=c.instance_type, instance_count=c.instance_count, layout=c.describe_layout(),
            dp_degree=layout.dp_degree, tp_degree=layout.tp_degree, pp_degree=layout.pp_degree,
            sharding=layout.sharding, recompute=layout.recompute, micro_batch=c.micro_batch,
            memory_gib_per_gpu=round(c.memory.total_gib, 3), gpu_memory_gib=types[c.instance_type].gpu_memory_gib,
            step_s=c.step.total_s, usd_per_hour=c.usd_per_hour, hours=c.hours, job_usd=c.job_usd)

    w = found.workload
    return PlanOutput(
        workload=w.shape.describe(), strategy=found.strategy.kind, region=found.region, global_batch=w.global_batch,
        steps=w.steps, choice=configuration(found.choice) if found.choice is not None else None,
        ranked=[configuration(c) for c in found.ranked[:top]],
        rejected=[RejectedType(instance_type=r.instance_type, kind=r.kind, reason=r.reason) for r in found.rejections],
        evaluated=found.evaluated, warnings=list(found.warnings),
        why_nothing=found.why_nothing() if found.choice is None else None)


@command(panel=PLAN)
def schedule(
    stages: Annotated[int, typer.Option("--stages", min=1, help="Pipeline ranks (pp degree).")] = 4,
    microbatches: Annotated[int, typer.Option("--microbatches", min=1, help="Micro-batches per optimizer step (m).")] = 8,
    schedule_name: Annotated[str, typer.Option("--schedule", help="GPipe, 1F1B, Interleaved1F1B, LoopedBFS, InterleavedZeroBubble, ZBVZeroBubble, DualPipeV.")] = "1F1B",
    virtual_stages: Annotated[int | None, typer.Option("--virtual-stages", min=1, help="Stages per rank (default: 2 for the interleaved, looped and V schedules, else 1).")] = None,
    png: Annotated[Path | None, typer.Option("--png", help="Where to write the picture (default: figures/schedule-<name>-p<P>-m<M>.png).")] = None,
) -> None:
    """Show a pipeline schedule's timeline (forward and backward slots per rank) and its bubble fraction."""
    from pydantic import ValidationError

    from smjobs.schedules import model as schedule_model
    from smjobs.spec import degrees
    from smjobs.spec.strategies import PipelineParallel

    if virtual_stages is None:
        virtual_stages = 1 if schedule_name in ("GPipe", "1F1B") else 2
    try:
        strategy = PipelineParallel(pp_degree=stages, microbatches=microbatches, schedule=schedule_name,
                                    virtual_stages=virtual_stages)
    except ValidationError:
        fail(UsageError(f"--schedule {schedule_name!r}: choose one of {', '.join(schedule_model.PIPELINE_SCHEDULES)}"))
    problems = degrees.check_pipeline(strategy, degrees.Cluster(1, stages), None, None)
    if problems:
        fail(SpecError(problems))
    from smjobs.schedules import render as schedule_render

    timeline = schedule_model.simulate(schedule_name, stages, microbatches, virtual_stages)
    out.print(f"[bold]{schedule_name}[/]: {stages} ranks x {timeline.virtual_stages} stage(s) each, {microbatches} "
              "micro-batches (time in forwards of a rank's share)")
    columns = max(80, out.width) - len(f"rank {stages - 1} ||")  # a row fits the terminal when it can
    for line in schedule_render.render_text(timeline, columns):
        out.print(line, highlight=False, markup=False, soft_wrap=True)
    out.print(schedule_render.legend_text(timeline, columns), highlight=False, markup=False)
    theory = schedule_model.theoretical_bubble(schedule_name, stages, microbatches, timeline.virtual_stages)
    formula = {"GPipe": "(p-1)/(m+p-1)", "1F1B": "(p-1)/(m+p-1)"}.get(schedule_name, "(p-1)/(v*m+p-1)")
    if schedule_name in schedule_model.ZERO_BUBBLE:
        formula = "about 0 in theory"
    out.print(f"bubble: {timeline.bubble_fraction:.1%} of rank-time (model); {formula}: {theory:.1%}")
    path = png or Path("figures") / f"schedule-{schedule_name}-p{stages}-m{microbatches}.png"
    out.print(f"picture: {schedule_render.plot(timeline, path)}", markup=False)


