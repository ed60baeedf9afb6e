"""``smjobs tune`` and ``smjobs tune-status``: hyperparameter tuning on SageMaker, or the same search here."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from smjobs.cli.shared import (
    JOBS,
    EndpointOpt,
    JobRegionOpt,
    OutputOpt,
    ProfileOpt,
    RegionOpt,
    SetOpt,
    SpecArg,
    aws_call,
    aws_context,
    command,
    emit,
    err,
    fail,
    json_output,
    load,
    out,
    spec_region,
)
from smjobs.errors import SpecError, UsageError
from smjobs.tables import print_table


def _say_space(request) -> None:
    """What narrowing removed and what the tuning job costs (stderr: a dry run's stdout stays plain YAML)."""
    for line in request.removed:
        err.print(f"[yellow]narrowed:[/] {escape(line)}", highlight=False)
    for note in request.notes:
        err.print(f"[yellow]notice:[/] {escape(note)}", highlight=False)
    e = request.estimate
    if e["trial_usd"] is None:
        err.print(f"cost: {e['trials']} trials; no price for a trial ({escape(e['basis'])})", highlight=False)
        return
    capped = f" (the ${e['budget_usd']:,.2f} budget pays for {e['trials']} of {e['asked_trials']})" if e["capped_by_budget"] else ""
    err.print(f"cost: {e['trials']} trials x ${e['trial_usd']:,.2f} = about ${e['total_usd']:,.2f}{capped}; a trial "
              f"about {e['trial_hours']:.2f} h ({escape(e['basis'])})", highlight=False)


@command(panel=JOBS)
def tune(
    spec: SpecArg,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the CreateHyperParameterTuningJob request; call no AWS API.")] = False,
    local: Annotated[bool, typer.Option("--local", help="Run the search here with Optuna, each trial a local run.")] = False,
    trials: Annotated[int, typer.Option("--trials", min=1, help="With --local: how many trials.")] = 5,
    processes: Annotated[int | None, typer.Option("--processes", min=1, help="With --local: processes per trial.")] = None,
    work_dir: Annotated[Path | None, typer.Option("--work-dir", help="With --local: where the trials' /opt/ml trees and the plot go.")] = None,
    endpoint_url: EndpointOpt = None,
    region: RegionOpt = None,
    profile: ProfileOpt = None,
    role: Annotated[str | None, typer.Option("--role", help="Execution role ARN (default: the notebook's role in Studio, then the smjobs stack's).")] = None,
    bucket: Annotated[str | None, typer.Option("--bucket", help="Bucket for code and output (default: the smjobs stack's).")] = None,
    job_name: Annotated[str | None, typer.Option("--job-name", help="Exact tuning job name (default: name-timestamp).")] = None,
    overrides: SetOpt = None,
    create_infra: Annotated[bool, typer.Option("--create-infra", help="Create the execution role and bucket with boto3 when none is found (else: `smjobs infra deploy`).")] = False,
) -> None:
    """Tune a job's hyperparameters: a SageMaker tuning job (memory-safe space, priced first), its request with
    --dry-run, or the same search here with --local."""
    import yaml

    from smjobs import api
    from smjobs.aws import job_store
    from smjobs.aws.submit import NoCredentialsError

    try:
        job = load(spec, region, overrides)
        if job.tuning is None:
            raise UsageError("not a tuning spec: add a `tuning` section (parameters, objective)")
        if local:
            return _tune_local(job, trials, processes, work_dir)
        if dry_run:
            request = api.tuning_request(job, region=spec_region(job, region, profile), job_name=job_name)
            _say_space(request)
            out.print(yaml.safe_dump(request.to_dict(), sort_keys=False, width=100), end="", markup=False,
                      highlight=False, soft_wrap=True)
            return None
        aws = aws_context(spec_region(job, region, profile), endpoint_url, profile=profile)
        request = aws_call(lambda: api.submit_tuning(job, aws=aws, role_arn=role, bucket=bucket, job_name=job_name,
                                                      create_infra=create_infra))
    except (SpecError, UsageError, NoCredentialsError) as exc:
        fail(exc)
    _say_space(request)
    out.print(f"[green]submitted[/] tuning job {escape(request.job_name)}: {request.estimate['trials']} trials, "
              f"{job.tuning.max_parallel_trials} at once, each {request.training.world_size} processes on "
              f"{job.compute.instance_count} x {escape(job.compute.instance_type)}", highlight=False)
    job_store.remember(request.job_name, "tuning", request.training.region, endpoint_url)
    out.print(f"  status: smjobs tune-status {request.job_name}", markup=False)
    return None


def _tune_local(job, trials, processes, work_dir) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from smjobs import api

    names = list(job.tuning.parameters)
    with Progress(TextColumn("trials"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=out,
                  transient=True) as progress:
        task = progress.add_task("tune", total=trials)

        def done(trial) -> None:
            values = ", ".join(f"{n}={_short(trial.values[n])}" for n in names)
            objective = "-" if trial.objective is None else f"{trial.objective:.6g}"
            out.print(f"trial {trial.number}: {trial.state}, {job.tuning.objective.metric} = {objective} ({values}; "
                      f"{trial.seconds:.1f} s)" + (f": {trial.failure}" if trial.failure else ""), markup=False, highlight=False,
                      soft_wrap=True)
            progress.advance(task)

        result = api.tune_local(job, trials=trials, work_dir=work_dir, processes=processes, on_trial=done)
    table = Table(title=f"local tuning of {escape(job.name)} ({job.tuning.objective.goal} {escape(job.tuning.objective.metric)})")
    for column in ("trial", *names, "objective", "state", "seconds"):
        table.add_column(escape(column))
    for row in result.table():
        style = "bold green" if result.best is not None and row["trial"] == result.best.number else None
        table.add_row(*(escape(_short(row[c])) for c in ("trial", *names, "objective", "state", "seconds")), style=style)
    print_table(out, table)
    if result.best is None:
        err.print("[bold red]no trial completed[/]: see the trials' logs above", highlight=False)
        raise typer.Exit(1)
    values = ", ".join(f"{n}={_short(v)}" for n, v in result.best.values.items())
    out.print(f"best: trial {result.best.number}, {job.tuning.objective.metric} = {result.best.objective:.6g} ({values})",
              markup=False, highlight=False)
    if result.plot:
        out.print(f"plot: {result.plot}", markup=False)


def _trial(row: dict) -> dict:
    """A trial of ``tuning_status`` as ``schemas.Trial`` takes it (hyperparameter values are strings on the wire)."""
    return {**row, "hyperparameters": {k: str(v) for k, v in row["hyperparameters"].items()}}


def _short(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else ("-" if value is None else str(value))


@command("tune-status", panel=JOBS)
def tune_status(job: Annotated[str, typer.Argument(help="Tuning job name (as `smjobs tune` printed it).")],
                endpoint_url: EndpointOpt = None, region: JobRegionOpt = None, profile: ProfileOpt = None,
                output: OutputOpt = "text") -> None:
    """Show a tuning job: its trials with their objective values and cost so far, and the best trial."""
    from smjobs.aws import job_store

    show_tuning(aws_context(*job_store.where(job, region, endpoint_url), f" for {job}", profile=profile), job)


def show_tuning(aws, name: str) -> None:
    from rich.table import Table

    from smjobs.aws.tuning import tuning_status

    summary = aws_call(tuning_status, aws, name)
    if json_output():
        from smjobs.cli.schemas import TuneStatusOutput

        emit(TuneStatusOutput(**{**summary, "trials": [_trial(t) for t in summary["trials"]],
                                 "best": _trial(summary["best"]) if summary["best"] else None}))
        return
    out.print(f"{summary['name']}: {summary['status']} ({summary['strategy']}, {summary['objective']}); cost so far "
              f"about ${summary['usd_so_far']:,.2f}", markup=False, highlight=False)
    names = sorted({k for t in summary["trials"] for k in t["hyperparameters"]})
    table = Table()
    for column in ("trial", "status", *names, "objective", "instances", "USD"):
        table.add_column(escape(column))
    for t in summary["trials"]:
        usd = "-" if t["usd"] is None else f"{t['usd']:,.2f}"
        table.add_row(escape(t["name"]), escape(str(t["status"])), *(escape(str(t["hyperparameters"].get(n, "-"))) for n in names),
                      escape(_short(t["objective"])), escape(t["instances"]), usd,
                      style="bold green" if summary["best"] and t["name"] == summary["best"]["name"] else None)
    print_table(out, table)
    best = summary["best"]
    out.print(f"best: {best['name']} ({summary['objective']} = {best['objective']:.6g})" if best else "best: none yet",
              markup=False, highlight=False)
