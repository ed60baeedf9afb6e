"""``smjobs validate``, ``smjobs plan`` and ``smjobs schedule``: is the spec right, which instances fit it, and what a
pipeline schedule looks like. None of them talks to AWS."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from smjobs import api, catalog
from smjobs.api import UsageError, read_spec
from smjobs.cli.shared import (
    RegionOpt,
    SetOpt,
    SpecArg,
    command,
    err,
    fail,
    load,
    notice,
    out,
    spec_region,
)
from smjobs.errors import SpecError
from smjobs.request import source
from smjobs.request.training import build_request


@command()
def validate(spec: SpecArg, region: RegionOpt = None, overrides: SetOpt = None) -> None:
    """Check a spec against every rule; print a summary, or every problem and exit 2."""
    try:
        job = load(spec, region, overrides)
        request = build_request(job, region=spec_region(job, region))
    except (SpecError, UsageError) as exc:
        fail(exc)
    table = Table(title=f"{job.name}: valid", show_header=False)
    table.add_column(overflow="fold")
    table.add_column(overflow="fold")
    compute = job.compute
    table.add_row("strategy", f"{job.distribution.type} ({job.distribution.launcher})")
    table.add_row("instances", f"{compute.instance_count} x {compute.instance_type}")
    if compute.instance_preferences:
        table.add_row("instance preferences", ", ".join(f"{p.instance_count} x {p.instance_type}"
                                                        for p in compute.instance_preferences) + " (SageMaker takes the first it has)")
    table.add_row("processes", f"{request.processes_per_host} per host, world size {request.world_size}")
    table.add_row("image", request.create_training_job["AlgorithmSpecification"]["TrainingImage"])
    table.add_row("entry point", escape(f"{request.source_dir}/{request.entry_point}"))
    table.add_row("hyperparameters", str(len(request.create_training_job["HyperParameters"])))
    manifest = source.manifest_for(request)
    table.add_row("code archive", f"{len(manifest.files)} files, {source.human_bytes(manifest.total_bytes)} "
                  f"({len(manifest.excluded)} left out; `smjobs submit --dry-run` lists them)")
    out.print(table)
    notice(job, region)


@command("plan")
def plan_command(
    spec: SpecArg,
    region: RegionOpt = None,
    overrides: SetOpt = None,
    top: Annotated[int, typer.Option("--top", min=1, help="Alternatives to list.")] = 5,
    png: Annotated[Path | None, typer.Option("--png", help="Also draw estimated cost against step time.")] = None,
) -> None:
    """Choose instances for SPEC: the cheapest configuration that fits, the alternatives, and why the rest do not."""
    from smjobs.checks.validate import parse_spec
    from smjobs.planner.plot import plot
    from smjobs.planner.resolve import plan_spec

    try:
        job, problems = parse_spec(read_spec(spec, overrides or [])[1])
        if problems:
            raise SpecError(problems)
        found = api.plan(job, region=region, top=top)
    except (SpecError, UsageError) as exc:
        fail(exc)
    print_plan(found, top)
    if png is not None:  # the picture shows every configuration that fits: search again without pruning
        everything, _ = plan_spec(job, region, all_types=True, keep=10**6)
        out.print(f"picture: {plot(everything, png, f'{job.name}: time to train vs job cost')}", markup=False)
    if found.choice is None:
        raise typer.Exit(1)


def print_plan(found, top: int = 5) -> None:
    w, a = found.workload, found.assumptions
    shape = w.shape
    out.print(f"[bold]{escape(shape.describe())}[/]; {w.global_batch} samples per step, {w.steps} steps; "
              f"strategy {found.strategy.kind}; prices {found.region}", highlight=False)
    asked = found.constraints.region
    if asked and asked != found.region:
        out.print(f"[yellow]no price table for {asked}: ranked with {found.region}'s prices; "
                  f"`smjobs prices refresh --region {asked}` adds one[/]", highlight=False)
    limit = found.constraints.max_hours
    out.print(f"assumptions: {a.mfu:.0%} of peak FLOPs (MFU without recomputation; plan.mfu sets it, e.g. from a measured "
              f"run), {found.constraints.memory_margin:.0%} memory margin, {a.startup_s:.0f} s start-up"
              + (f", spot at {a.spot_price_fraction:.0%} of on-demand" if found.constraints.spot else "")
              + (f"; time limit {limit:,.1f} h" if limit is not None else ""), highlight=False)
    for text in found.warnings:
        err.print(f"[yellow]warning:[/] {escape(text)}", highlight=False)
    table = Table(title="configurations that fit, cheapest job first (costs within 2% go to the faster)")
    for column in ("", "instances", "layout", "micro-batch", "GiB/GPU", "s/step", "USD/h", "hours", "job USD"):
        table.add_column(column, overflow="fold")
    for i, c in enumerate(found.ranked[:top]):
        spec = catalog.instances().types[c.instance_type]
        table.add_row("choice" if i == 0 else str(i + 1), f"{c.instance_count} x {c.instance_type}", c.describe_layout(),
                      str(c.micro_batch),
                      f"{c.memory.total_gib:.1f} / {spec.gpu_memory_gib:.1f}", f"{c.step.total_s:.2f}", f"{c.usd_per_hour:,.2f}",
                      f"{c.hours:,.1f}", f"{c.job_usd:,.0f}", style="bold green" if i == 0 else None)
    out.print(table)
    if found.rejections:
        rejected = Table(title="instance types with no configuration that fits, and why")
        rejected.add_column("instance type", overflow="fold")
        rejected.add_column("why", overflow="fold")
        grouped: dict[str, list] = {}
        for r in found.rejections:  # one row per type when the numbers differ, one per reason when they do not
            key = r.reason.replace(r.instance_type, "<type>") if r.kind in ("unpriced", "library", "family") else r.instance_type
            grouped.setdefault(key, []).append(r)
        for rows in grouped.values():
            names = ", ".join(r.instance_type for r in rows)
            reason = rows[0].reason if len(rows) == 1 else rows[0].reason.replace(rows[0].instance_type, "these types")
            rejected.add_row(names, reason)
        out.print(rejected)
    if found.choice is None:
        err.print(f"[bold red]{escape(found.why_nothing())}[/]", highlight=False)


@command()
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


