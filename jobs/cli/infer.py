"""``smjobs infer``: an inference job (a spec with an ``inference`` section) on SageMaker or on this machine."""

from __future__ import annotations

import json
import re
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from smjobs.cli.jobs import CreateInfraOpt, YesOpt, submit
from smjobs.cli.local import RANK_PREFIX, interruptible, report
from smjobs.cli.shared import (
    JOBS,
    EndpointOpt,
    ProfileOpt,
    RegionOpt,
    SetOpt,
    SpecArg,
    aws_call,
    aws_context,
    command,
    err,
    fail,
    load,
    notice,
    out,
    spec_region,
)
from smjobs.errors import SpecError, UsageError

TOTAL = re.compile(r"inference: (\d+) records")
PART = re.compile(r": part \d+ done \((\d+) records\)")


class Backend(str, Enum):
    training_job = "training-job"
    batch_transform = "batch-transform"


@command(panel=JOBS)
def infer(
    spec: SpecArg,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the CreateTrainingJob request as YAML; call no AWS API.")] = False,
    local: Annotated[bool, typer.Option("--local", help="Run on this machine under the container toolkit.")] = False,
    processes: Annotated[int | None, typer.Option("--processes", min=1, help="With --local: processes on this host.")] = None,
    work_dir: Annotated[Path | None, typer.Option("--work-dir", help="With --local: where the /opt/ml tree goes (kept: a rerun skips finished parts).")] = None,
    fresh: Annotated[bool, typer.Option("--fresh", help="With --local: delete the finished parts first.")] = False,
    backend: Annotated[Backend | None, typer.Option("--backend", help="training-job (torchrun over every GPU, "
                       "resumable) or batch-transform (SageMaker Batch Transform); default: the spec's.")] = None,
    endpoint_url: EndpointOpt = None,
    region: RegionOpt = None,
    profile: ProfileOpt = None,
    role: Annotated[str | None, typer.Option("--role", help="Execution role ARN (default: the notebook's role in Studio, then the smjobs stack's).")] = None,
    bucket: Annotated[str | None, typer.Option("--bucket", help="Bucket for code (default: the smjobs stack's).")] = None,
    job_name: Annotated[str | None, typer.Option("--job-name", help="Exact job name (default: name-timestamp).")] = None,
    overrides: SetOpt = None,
    yes: YesOpt = False,
    create_infra: CreateInfraOpt = False,
) -> None:
    """Run a trained model over every record of a data set, data-parallel: on SageMaker as a training job under
    torchrun (finished parts are its checkpoints) or as a Batch Transform job, with --dry-run printing the
    request, or with --local here."""
    overrides = [*(overrides or []), *([f"inference.backend={backend.value}"] if backend else [])]
    try:
        job = load(spec, region, overrides)
    except (SpecError, UsageError) as exc:
        fail(exc)
    if job.inference is None:
        err.print("[bold red]error:[/] not an inference spec: add an `inference` section (model, input, output_path), "
                  "or use `smjobs submit` / `smjobs run` for a training job.", highlight=False)
        raise typer.Exit(2)
    if job.inference.backend == "batch-transform":
        if local:
            err.print("[bold red]error:[/] --local runs the training-job backend (infer.py under torchrun); Batch "
                      "Transform runs only on SageMaker. Drop --backend batch-transform to run here.", highlight=False)
            raise typer.Exit(2)
        _transform(job, dry_run=dry_run, endpoint_url=endpoint_url, region=region, profile=profile, role=role, bucket=bucket,
                   job_name=job_name, create_infra=create_infra)
        return
    if not local:
        submit(spec, dry_run=dry_run, endpoint_url=endpoint_url, region=region, role=role, bucket=bucket,
               job_name=job_name, overrides=overrides, yes=yes, wait=False, create_infra=create_infra)
        return
    raise typer.Exit(interruptible(lambda: _infer_local(job, processes, work_dir, fresh), "predicted"))


def _infer_local(job, processes, work_dir, fresh) -> int:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from smjobs import api
    from smjobs.local import runner as local_run

    try:
        request, layout = api.prepare_local(job, processes=processes, work_dir=work_dir, fresh=fresh,
                                            region=spec_region(job, None), rerun_finished=True)
    except (SpecError, UsageError) as exc:
        fail(exc)
    notice(job, remote=False)
    procs = processes or local_run.default_processes(request)
    out.print(f"[bold]local inference[/] of {escape(job.name)}: {procs} process(es); work dir "
              f"{escape(str(layout.base_dir))}", highlight=False)
    with Progress(TextColumn("records"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=out,
                  transient=True) as progress:
        task = progress.add_task("infer", total=None)

        def show(line: str) -> None:
            match = RANK_PREFIX.match(line)
            if not match:
                out.print(f"[dim]{escape(line)}[/]", highlight=False)
                return
            out.print(f"[cyan]\\[rank {match.group(1)}][/] {escape(line[match.end():])}", highlight=False)
            if total := TOTAL.search(line):
                progress.update(task, total=int(total.group(1)))
            elif part := PART.search(line):
                progress.advance(task, int(part.group(1)))

        result = local_run.launch(request, layout, on_line=show)
    report(result)
    summary_file = layout.output_dir / "data" / "inference-summary.json"
    if result.exit_code == 0 and not result.stopped and summary_file.exists():
        summary = json.loads(summary_file.read_text())
        out.print(f"{summary['records']} records ({summary['bad']} bad, in {summary['errors']}); {summary['this_run']}; "
                  f"predictions: {summary['output']}", markup=False)
    return result.shell_exit_code


def _transform(job, *, dry_run, endpoint_url, region, profile, role, bucket, job_name, create_infra) -> None:
    """--backend batch-transform: print the request, or create the model and the transform job."""
    import yaml

    from smjobs import api
    from smjobs.aws import job_store
    from smjobs.inference.batch_transform import source_manifest

    if dry_run:
        request = api.transform_request(job, region=spec_region(job, region, profile), job_name=job_name)
        for text in request.warnings:
            err.print(f"[yellow]warning:[/] {escape(text)}", highlight=False)
        printed = {**request.to_dict(), "source_archive": source_manifest(request).to_dict()}
        out.print(yaml.safe_dump(printed, sort_keys=False, width=100), end="", markup=False, highlight=False,
                  soft_wrap=True)
        return
    from smjobs.aws.submit import NoCredentialsError

    try:
        aws = aws_context(spec_region(job, region, profile), endpoint_url, profile=profile)
        request = aws_call(lambda: api.submit_transform(job, aws=aws, role_arn=role, bucket=bucket, job_name=job_name,
                                                         create_infra=create_infra))
    except (SpecError, NoCredentialsError) as exc:
        fail(exc)
    job_store.remember(request.job_name, "transform", request.region, endpoint_url)
    for text in request.warnings:
        err.print(f"[yellow]warning:[/] {escape(text)}", highlight=False)
    out.print(f"[green]submitted[/] transform job {escape(request.job_name)} ({job.compute.instance_count} x "
              f"{escape(job.compute.instance_type)}) in {escape(request.region)}; predictions: "
              f"{escape(job.inference.output_path)}", highlight=False)
