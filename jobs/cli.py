"""The ``smjobs`` command line: validate, submit (or dry-run), status, logs.

Bad input exits with code 2 and a list of problems, never a traceback; nothing is uploaded and no job is
created. The SageMaker SDK is imported only when a job is really submitted.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from jobs.errors import SpecError
from jobs.request import build_request
from jobs.spec import JobSpec, example_path, read_spec_data
from jobs.validate import validate_spec

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Validated distributed PyTorch jobs for SageMaker.")
out = Console()
err = Console(stderr=True, soft_wrap=True)  # problems stay one line each: easy to read in CI logs and to grep

SpecArg = Annotated[str, typer.Argument(help="Job spec file (YAML or JSON), or the name of a shipped example.")]
RegionOpt = Annotated[str | None, typer.Option("--region", help="AWS region (default: the spec's, then AWS config).")]
EndpointOpt = Annotated[
    str | None, typer.Option("--endpoint-url", help="Send every AWS call to this endpoint, e.g. a moto server.")
]


SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", help="Override a field: key=value sets a hyperparameter, a.b=value any spec field. Repeatable."),
]


class UsageError(Exception):
    """Input the command cannot use; reported with exit code 2."""


def parse_value(raw: str):
    """A --set value: JSON when it parses (numbers, true, lists), else YAML, else the text itself."""
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        pass
    try:
        return yaml.safe_load(raw) if raw else ""
    except yaml.YAMLError:
        return raw


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """Apply ``--set`` overrides to spec data (a copy): ``steps=10``, ``compute.instance_count=1``."""
    data = json.loads(json.dumps(data))
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--set {item!r}: expected key=value")
        path = key.split(".") if "." in key else ["hyperparameters", key]
        node = data
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise UsageError(f"--set {item!r}: {part} is not a mapping")
        node[path[-1]] = parse_value(raw)
    return data


def load(spec: str, region: str | None = None, overrides: list[str] | None = None) -> JobSpec:
    """Read and validate a spec file (or shipped example by name), with ``--set`` overrides applied."""
    path = Path(spec)
    if not path.exists():
        try:
            path = example_path(spec)
        except FileNotFoundError as exc:
            raise UsageError(f"{spec}: no such file. {exc}") from None
    try:
        data = read_spec_data(path)
    except (yaml.YAMLError, json.JSONDecodeError, ValueError) as exc:
        raise UsageError(f"{path}: cannot read the spec: {exc}") from None
    if data.get("source_dir") and not Path(data["source_dir"]).is_absolute():
        data["source_dir"] = str((path.parent / data["source_dir"]).resolve())  # relative to the spec file
    return validate_spec(apply_overrides(data, overrides or []), region=region)


def _region(spec: JobSpec, region: str | None) -> str | None:
    return region or spec.region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")


def _fail(exc: Exception) -> None:
    if isinstance(exc, SpecError):
        err.print(f"[bold red]{len(exc.problems)} problem(s) in the job spec[/] (nothing was sent to AWS):")
        for problem in exc.problems:
            err.print(f"  [red]-[/] [bold]{problem.path or '<spec>'}[/]: {problem.message}", highlight=False)
            if problem.fix:
                err.print(f"      To fix: {problem.fix}", highlight=False)
    else:
        err.print(f"[bold red]error:[/] {exc}", highlight=False)
    raise typer.Exit(2)


@app.command()
def validate(spec: SpecArg, region: RegionOpt = None, overrides: SetOpt = None) -> None:
    """Check a spec against every rule; print a summary, or every problem and exit 2."""
    try:
        job = load(spec, region, overrides)
        request = build_request(job, region=_region(job, region))
    except (SpecError, UsageError) as exc:
        _fail(exc)
    table = Table(title=f"{job.name}: valid", show_header=False)
    table.add_column(overflow="fold")
    table.add_column(overflow="fold")
    compute = job.compute
    table.add_row("strategy", f"{job.distribution.type} ({job.distribution.launcher})")
    table.add_row("instances", f"{compute.instance_count} x {compute.instance_type}")
    table.add_row("processes", f"{request.processes_per_host} per host, world size {request.world_size}")
    table.add_row("image", request.create_training_job["AlgorithmSpecification"]["TrainingImage"])
    table.add_row("entry point", f"{request.source_dir}/{request.entry_point}")
    table.add_row("hyperparameters", str(len(request.create_training_job["HyperParameters"])))
    out.print(table)
    _notice(job)


def _notice(job: JobSpec) -> None:
    if job.distribution.notice:
        err.print(f"[yellow]notice:[/] {job.distribution.notice}", highlight=False)


@app.command()
def submit(
    spec: SpecArg,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the request as YAML; call no AWS API.")] = False,
    endpoint_url: EndpointOpt = None,
    region: RegionOpt = None,
    role: Annotated[str | None, typer.Option("--role", help="Execution role ARN (default: smjobs' own role).")] = None,
    bucket: Annotated[str | None, typer.Option("--bucket", help="Bucket for code and output.")] = None,
    job_name: Annotated[str | None, typer.Option("--job-name", help="Exact job name (default: name-timestamp).")] = None,
    overrides: SetOpt = None,
) -> None:
    """Validate and submit a job (fit with wait=False), or print its request with --dry-run."""
    try:
        job = load(spec, region, overrides)
        if role is not None:
            job = validate_spec({**job.to_dict(), "role_arn": role}, region=region)
        if dry_run:
            request = build_request(job, job_name=job_name, region=_region(job, region), bucket=bucket)
            out.print(request.to_yaml(), end="", highlight=False, markup=False, soft_wrap=True)
            return
    except (SpecError, UsageError) as exc:
        _fail(exc)
    _notice(job)
    from botocore.exceptions import BotoCoreError, ClientError

    from jobs import sagemaker_edge
    from jobs.aws import AwsContext

    aws = AwsContext.create(region=_region(job, region) or "us-east-1", endpoint_url=endpoint_url)
    try:
        resolved = sagemaker_edge.resolve(job, aws, role_arn=role, bucket=bucket)
        request = sagemaker_edge.resolved_request(job, aws, resolved, job_name=job_name)
        name = sagemaker_edge.submit(request, aws)
    except (SpecError, sagemaker_edge.NoCredentialsError) as exc:
        _fail(exc)
    except (ClientError, BotoCoreError) as exc:
        err.print(f"[bold red]AWS error:[/] {exc}", highlight=False)
        raise typer.Exit(1) from None
    out.print(f"[green]submitted[/] {name} ({request.world_size} processes on "
              f"{job.compute.instance_count} x {job.compute.instance_type}) in {aws.region}")
    out.print(f"  status: smjobs status {name}" + (f" --endpoint-url {endpoint_url}" if endpoint_url else ""))


@app.command()
def run(
    spec: SpecArg,
    local: Annotated[bool, typer.Option("--local", help="Run on this machine (the only mode so far).")] = False,
    processes: Annotated[int | None, typer.Option("--processes", min=1, help="Processes on this host (default: the job's per-host count, at most the CPUs).")] = None,
    work_dir: Annotated[Path | None, typer.Option("--work-dir", help="Where the /opt/ml tree goes (default: runs/<name>); kept, so a re-run resumes from its checkpoints.")] = None,
    fresh: Annotated[bool, typer.Option("--fresh", help="Delete the work dir's checkpoints and model first.")] = False,
    overrides: SetOpt = None,
) -> None:
    """Run the job as SageMaker would, on this machine, under the container toolkit (no Docker)."""
    from jobs import local as local_run

    if not local:
        err.print("[bold red]error:[/] only local runs exist so far: add --local, or use `smjobs submit`.")
        raise typer.Exit(2)
    try:
        job = load(spec, None, overrides)
        request = build_request(job, region=_region(job, None))
        procs = processes or local_run.default_processes(request)
        work = work_dir or Path("runs") / job.name
        if fresh:
            for sub in ("checkpoints", "model", "output"):
                shutil.rmtree(work / sub, ignore_errors=True)
        layout = local_run.prepare(request, work, procs)
    except (SpecError, UsageError) as exc:
        _fail(exc)
    compute = job.compute
    out.print(f"[bold]local run[/] of {job.name}: 1 host x {procs} process(es) standing in for "
              f"{compute.instance_count} x {compute.instance_type} ({request.world_size} processes); "
              f"work dir {layout.base_dir}", highlight=False)
    result = run_with_progress(request, layout)
    report(result)
    raise typer.Exit(result.exit_code)


STEP = re.compile(r"\bstep=(\d+)")
RANK_PREFIX = re.compile(r"^\[default(\d+)\]:")


def run_with_progress(request, layout, *, show_toolkit: bool = True):
    """Launch a prepared local run; print rank lines (and the toolkit's own, dimmed) with a progress bar."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from jobs import local as local_run

    total = request.estimator["hyperparameters"].get("steps")
    with Progress(TextColumn("training"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=out, transient=True, disable=not isinstance(total, int)) as progress:
        task = progress.add_task("train", total=total if isinstance(total, int) else None)

        def show(line: str) -> None:
            match = RANK_PREFIX.match(line)
            if match:
                out.print(f"[cyan]\\[rank {match.group(1)}][/] {line[match.end():]}", highlight=False)
                step = STEP.search(line)
                if step:
                    progress.update(task, completed=int(step.group(1)))
            elif show_toolkit:
                out.print(f"[dim]{escape(line)}[/]", highlight=False)

        return local_run.launch(request, layout, on_line=show)


def report(result) -> None:
    """Where the model, output and checkpoints of a local run are, its metrics and any failure."""
    status = "[green]succeeded[/]" if result.exit_code == 0 else f"[red]failed (exit code {result.exit_code})[/]"
    table = Table(title=f"local run {status} in {result.duration_s:.1f} s", show_header=False)
    table.add_column(overflow="fold")
    table.add_column(overflow="fold")
    models = sorted(str(p) for p in result.layout.model_dir.rglob("*") if p.is_file())
    table.add_row("model", ", ".join(models) or "(none saved)")
    table.add_row("output", str(result.layout.output_dir))
    table.add_row("checkpoints", str(result.layout.checkpoint_dir))
    for name, value in result.metrics.items():
        table.add_row(f"metric {name}", f"{value:g}")
    if result.failure:
        table.add_row("failure", escape(result.failure.strip().splitlines()[-1]))
    out.print(table)


@app.command()
def schedule(
    stages: Annotated[int, typer.Option("--stages", min=1, help="Pipeline ranks (pp degree).")] = 4,
    microbatches: Annotated[int, typer.Option("--microbatches", min=1)] = 8,
    schedule_name: Annotated[str, typer.Option("--schedule", help="GPipe, 1F1B, Interleaved1F1B, LoopedBFS, InterleavedZeroBubble, ZBVZeroBubble, DualPipeV.")] = "1F1B",
    virtual_stages: Annotated[int, typer.Option("--virtual-stages", min=1, help="Stages per rank (interleaved: >= 2).")] = 1,
    png: Annotated[Path | None, typer.Option("--png", help="Where to write the picture (default: schedule-<name>-p<P>-m<M>.png).")] = None,
) -> None:
    """Show a pipeline schedule's timeline (forward and backward slots per rank) and its bubble fraction."""
    from pydantic import ValidationError

    from jobs import degrees, schedule_model
    from jobs.strategies import PipelineParallel

    try:
        strategy = PipelineParallel(pp_degree=stages, microbatches=microbatches, schedule=schedule_name,
                                    virtual_stages=virtual_stages)
    except ValidationError:
        _fail(UsageError(f"--schedule {schedule_name!r}: choose one of {', '.join(schedule_model.PIPELINE_SCHEDULES)}"))
    problems = degrees.check_pipeline(strategy, degrees.Cluster(1, stages), None, None)
    if problems:
        _fail(SpecError(problems))
    timeline = schedule_model.simulate(schedule_name, stages, microbatches, virtual_stages)
    out.print(f"[bold]{schedule_name}[/]: {stages} ranks x {timeline.virtual_stages} stage(s) each, {microbatches} micro-batches "
              "(F = forward, B = backward, I/W = input/weight gradient; time in forwards of a rank's share)")
    for line in schedule_model.render_text(timeline):
        out.print(line, highlight=False, markup=False, soft_wrap=True)
    theory = schedule_model.theoretical_bubble(schedule_name, stages, microbatches, timeline.virtual_stages)
    formula = {"GPipe": "(p-1)/(m+p-1)", "1F1B": "(p-1)/(m+p-1)"}.get(schedule_name, "(p-1)/(v*m+p-1)")
    if schedule_name in schedule_model.ZERO_BUBBLE:
        formula = "about 0 in theory"
    out.print(f"bubble: {timeline.bubble_fraction:.1%} of rank-time (model); {formula}: {theory:.1%}")
    path = png or Path(f"schedule-{schedule_name}-p{stages}-m{microbatches}.png")
    schedule_model.plot(timeline, path)
    out.print(f"picture: {path}")


def _aws_call(fn, *args: Any):
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return fn(*args)
    except (ClientError, BotoCoreError) as exc:
        err.print(f"[bold red]AWS error:[/] {exc}", highlight=False)
        raise typer.Exit(1) from None


@app.command()
def status(job: str, endpoint_url: EndpointOpt = None, region: RegionOpt = None) -> None:
    """Show a training job's status, timings and final metrics."""
    from jobs import sagemaker_edge
    from jobs.aws import AwsContext

    aws = AwsContext.create(region=region, endpoint_url=endpoint_url)
    summary = _aws_call(sagemaker_edge.status, aws, job)
    table = Table(title=job, show_header=False)
    for key, value in summary.items():
        if value not in (None, {}, ""):
            table.add_row(key, json.dumps(value) if isinstance(value, dict) else str(value))
    out.print(table)


@app.command()
def logs(job: str, endpoint_url: EndpointOpt = None, region: RegionOpt = None) -> None:
    """Print a training job's CloudWatch log so far."""
    from jobs import sagemaker_edge
    from jobs.aws import AwsContext

    aws = AwsContext.create(region=region, endpoint_url=endpoint_url)
    lines = _aws_call(lambda: list(sagemaker_edge.logs(aws, job)))
    if not lines:
        out.print(f"no log streams for {job} yet")
    for line in lines:
        out.print(line, highlight=False, markup=False)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
