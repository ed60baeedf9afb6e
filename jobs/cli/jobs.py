"""``smjobs submit``, and a job's life after it: ``status``, ``logs``, ``stop``, ``list``, ``cost``.

The habits are those of ``aws sagemaker`` and ``sky``: ``submit --wait``, ``logs --follow``, ``status --watch``,
``list --status/--since``. ``submit`` shows the estimated cost and the Service Quotas check before anything starts,
and remembers the job's region and endpoint (``smjobs.aws.job_store``) for the other commands.
"""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer
from rich.markup import escape

from smjobs.cli.shared import (
    JOBS,
    AccountRegionOpt,
    EndpointOpt,
    JobRegionOpt,
    OutputOpt,
    ProfileOpt,
    RegionOpt,
    SetOpt,
    SpecArg,
    aws_call,
    aws_context,
    aws_error,
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
from smjobs.tables import print_table

JobArg = Annotated[str, typer.Argument(help="Training job name (as `smjobs submit` or `smjobs list` printed it).")]
YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Submit without asking to confirm the estimated cost.")]
CreateInfraOpt = Annotated[bool, typer.Option(
    "--create-infra", help="Create the execution role and bucket with boto3 when none is found (else: `smjobs infra deploy`).")]
WaitOpt = Annotated[bool, typer.Option("--wait", help="Wait until the job ends, following its logs; exit 1 unless it completes.")]
POLL_S = 15.0


def _context(job: str, region: str | None, endpoint_url: str | None, profile: str | None = None):
    """The AwsContext for a command on ``job``: the flags, else where submit sent it, else the AWS config."""
    from smjobs.aws import job_store


    region, endpoint_url = job_store.where(job, region, endpoint_url)
    return aws_context(region, endpoint_url, f" for {job} (it was not submitted from here, and none is configured)",
                       profile=profile)


def _interactive() -> bool:
    """Whether someone at a terminal can answer (CI and pipes cannot: there submit goes on without asking)."""
    return sys.stdin.isatty()


def _confirm(estimate_text: str, yes: bool) -> None:
    out.print(f"estimated cost: {escape(estimate_text)}", highlight=False)
    if yes or not _interactive():
        return
    if not typer.confirm("Start this job?", default=False):
        err.print("not submitted; nothing was created", markup=False)
        raise typer.Exit(1)


@command(panel=JOBS)
def submit(
    spec: SpecArg,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the request as YAML; call no AWS API.")] = False,
    endpoint_url: EndpointOpt = None,
    region: RegionOpt = None,
    profile: ProfileOpt = None,
    role: Annotated[str | None, typer.Option("--role", help="Execution role ARN (default: the notebook's role in Studio, then the smjobs stack's).")] = None,
    bucket: Annotated[str | None, typer.Option("--bucket", help="Bucket for code and output (default: the smjobs stack's).")] = None,
    job_name: Annotated[str | None, typer.Option("--job-name", help="Exact job name (default: name-timestamp).")] = None,
    overrides: SetOpt = None,
    yes: YesOpt = False,
    wait: WaitOpt = False,
    create_infra: CreateInfraOpt = False,
    output: OutputOpt = "text",
) -> None:
    """Validate and submit a job (its dry run's CreateTrainingJob, sent as printed), or print it with --dry-run."""
    import yaml

    from smjobs import api
    from smjobs.aws import job_store
    from smjobs.checks.validate import validate_spec
    from smjobs.planner.estimate import estimate
    from smjobs.request import source
    from smjobs.request.training import DEFAULT_REGION, build_request

    try:
        job = load(spec, region, overrides)
        if role is not None:
            job = validate_spec({**job.to_dict(), "role_arn": role}, region=region)
        if dry_run:
            where = spec_region(job, region, profile)
            if where is None:
                err.print("notice: no AWS region is configured (--region, the spec, AWS_REGION, ~/.aws/config): the dry run "
                          f"shows {DEFAULT_REGION}'s image", markup=False)
            request = build_request(job, job_name=job_name, region=where, bucket=bucket)
            notice(job, region)
            printed = {**request.to_dict(), "source_archive": source.manifest_for(request).to_dict()}
            if json_output():
                from smjobs.cli.schemas import DryRunOutput

                emit(DryRunOutput(**printed))
                return
            out.print(yaml.safe_dump(printed, sort_keys=False, width=100), end="", highlight=False, markup=False, soft_wrap=True)
            return
    except (SpecError, UsageError) as exc:
        fail(exc)
    notice(job, region)
    from botocore.exceptions import BotoCoreError, ClientError

    from smjobs.aws import submit as sagemaker_edge

    if problems := sagemaker_edge.tracking_problems(job):  # before any AWS call
        fail(SpecError(problems))

    aws = aws_context(spec_region(job, region, profile), endpoint_url, profile=profile)
    guess = estimate(job, aws.region)
    try:
        resolved = sagemaker_edge.resolve(job, aws, role_arn=role, bucket=bucket, create_infra=create_infra)
        request = sagemaker_edge.resolved_request(job, aws, resolved, job_name=job_name)
        aws_call(api.check_quotas, aws, job)  # an unreadable quota prints as a notice
        out.print(f"role {escape(resolved.role_arn)} ({escape(resolved.role_source)}); bucket {escape(resolved.bucket)}",
                  highlight=False)
        _confirm(f"{guess.describe()}, in {aws.region}", yes)
        name = sagemaker_edge.submit(request, aws)
    except (SpecError, sagemaker_edge.NoCredentialsError) as exc:
        fail(exc)
    except (ClientError, BotoCoreError) as exc:
        aws_error(exc)
    job_store.remember(name, "training", aws.region, endpoint_url, guess.usd)
    out.print(f"[green]submitted[/] {escape(name)} ({request.world_size} processes on "
              f"{job.compute.instance_count} x {job.compute.instance_type}) in {aws.region}")
    if wait:
        raise typer.Exit(_follow(aws, name))
    out.print(f"  next: smjobs status {name} --watch | smjobs logs {name} --follow | smjobs stop {name} | "
              f"smjobs cost {name}", markup=False)


def _follow(aws, name: str) -> int:
    """Print the job's logs from the start until it ends; its exit code (0 only when it completed)."""
    from smjobs.aws import lifecycle

    def stream() -> dict:
        for record in lifecycle.log_records(aws, name, follow=True, poll_s=POLL_S):
            _print_log(record)
        return lifecycle.describe(aws, name)

    final = aws_call(stream)
    status = final.get("TrainingJobStatus")
    if json_output():
        from smjobs.cli.schemas import LogEnd

        emit(LogEnd(name=name, status=status, failure_reason=final.get("FailureReason")))
        return 0 if status == "Completed" else 1
    color = "green" if status == "Completed" else "red"
    reason = f" ({escape(final['FailureReason'])})" if final.get("FailureReason") else ""
    out.print(f"[{color}]{escape(name)}: {status}[/]{reason}", highlight=False)
    return 0 if status == "Completed" else 1


@command(panel=JOBS)
def status(
    job: JobArg,
    endpoint_url: EndpointOpt = None,
    region: JobRegionOpt = None,
    profile: ProfileOpt = None,
    watch: Annotated[bool, typer.Option("--watch", "-w", help="Keep printing status changes until the job ends.")] = False,
    output: OutputOpt = "text",
) -> None:
    """Show a training job's status, timings and final metrics (or a tuning job's trials, as tune-status)."""
    from botocore.exceptions import ClientError
    from rich.table import Table

    from smjobs.aws import lifecycle
    from smjobs.aws import submit as sagemaker_edge

    aws = _context(job, region, endpoint_url, profile)

    def training_job():
        try:
            return sagemaker_edge.status(aws, job)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("ValidationException", "ResourceNotFound"):
                return None  # not a training job: perhaps a tuning job
            raise

    summary = aws_call(training_job)
    if summary is None:
        from smjobs.cli.tune import show_tuning

        show_tuning(aws, job)
        return
    if watch and summary["status"] not in lifecycle.TERMINAL:
        def show(described):
            (err if json_output() else out).print(f"{escape(job)}: {described.get('TrainingJobStatus')} / {described.get('SecondaryStatus')}",
                      highlight=False)
        aws_call(lambda: lifecycle.wait(aws, job, poll_s=POLL_S, on_change=show))
        summary = aws_call(training_job)
    if json_output():
        from smjobs.cli.schemas import StatusOutput

        emit(StatusOutput(**summary))
        return
    table = Table(title=escape(job), show_header=False)
    for key, value in summary.items():
        if value not in (None, {}, ""):
            table.add_row(key, escape(json.dumps(value) if isinstance(value, dict) else str(value)))
    print_table(out, table)


@command(panel=JOBS)
def logs(
    job: JobArg,
    endpoint_url: EndpointOpt = None,
    region: JobRegionOpt = None,
    profile: ProfileOpt = None,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new lines, from every host, until the job ends.")] = False,
    output: OutputOpt = "text",
) -> None:
    """Print a training job's CloudWatch log, every host's stream, each line prefixed with its host (-o json: a
    JSON document per line)."""
    aws = _context(job, region, endpoint_url, profile)
    if follow:
        raise typer.Exit(_follow(aws, job))
    from smjobs.aws import lifecycle

    records = aws_call(lambda: list(lifecycle.log_records(aws, job)))
    if not records:
        (err if json_output() else out).print(f"no log streams for {job} yet", markup=False)
    for record in records:
        _print_log(record)


def _print_log(record) -> None:
    """One log line: ``[host rank N] text``, or a ``LogLine`` document under ``-o json``."""
    from smjobs.aws.lifecycle import labelled

    if json_output():
        from smjobs.cli.schemas import LogLine

        emit(LogLine(host=record.host, rank=record.rank, message=record.message))
    else:
        out.print(labelled(record.host, record.raw), highlight=False, markup=False)


@command(panel=JOBS)
def stop(job: JobArg, endpoint_url: EndpointOpt = None, region: JobRegionOpt = None, profile: ProfileOpt = None) -> None:
    """Stop a running training job (SageMaker sends SIGTERM; checkpoints already uploaded are kept)."""
    from smjobs.aws import lifecycle

    aws = _context(job, region, endpoint_url, profile)
    before = aws_call(lambda: lifecycle.stop(aws, job))
    if before == "InProgress":
        out.print(f"stopping {escape(job)} (it was InProgress); `smjobs status {escape(job)} --watch` shows when it has stopped")
    else:
        out.print(f"{escape(job)} is {escape(before)}: nothing to stop")


@command("list", panel=JOBS)
def list_command(
    status_filter: Annotated[list[str] | None, typer.Option("--status", help="Only jobs in this status (InProgress, Completed, Failed, Stopping, Stopped). Repeatable.")] = None,
    since: Annotated[str | None, typer.Option("--since", help="Only jobs created since: 30m, 6h, 2d, 1w, or an ISO date.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="At most this many jobs, newest first.")] = 50,
    endpoint_url: EndpointOpt = None,
    region: AccountRegionOpt = None,
    profile: ProfileOpt = None,
    output: OutputOpt = "text",
) -> None:
    """List the project's training jobs (tagged smjobs:managed-by=smjobs), newest first."""
    from rich.table import Table

    from smjobs.aws import lifecycle

    statuses = tuple(status_filter or ())
    valid = ("InProgress", "Completed", "Failed", "Stopping", "Stopped")
    wrong = [s for s in statuses if s not in valid]
    if wrong:
        fail(UsageError(f"--status {', '.join(wrong)}: choose from {', '.join(valid)}"))
    try:
        when = lifecycle.parse_since(since) if since else None
    except ValueError:
        fail(UsageError(f"--since {since!r}: give 30m, 6h, 2d, 1w or an ISO date such as 2026-11-01"))
    aws = aws_context(region, endpoint_url, profile=profile)
    rows = aws_call(lambda: lifecycle.list_jobs(aws, statuses=statuses, since=when, limit=limit))
    if json_output():
        from smjobs.cli.schemas import JobRow, ListOutput

        emit(ListOutput(region=aws.region, jobs=[
            JobRow(name=r.name, status=r.status, created=r.created.isoformat(timespec="seconds") if r.created else None,
                   instances=r.instances, spec=r.spec) for r in rows]))
        return
    table = Table(title=f"smjobs training jobs in {aws.region}")
    for column in ("name", "status", "created", "instances", "spec"):
        table.add_column(column)
    for row in rows:
        table.add_row(escape(row.name), row.status, row.created.isoformat(timespec="seconds") if row.created else "",
                      row.instances, escape(row.spec))
    print_table(out, table)
    if not rows:
        out.print("no jobs match", markup=False)


@command(panel=JOBS)
def cost(job: JobArg, endpoint_url: EndpointOpt = None, region: JobRegionOpt = None, profile: ProfileOpt = None,
         output: OutputOpt = "text") -> None:
    """What a training job cost: billable seconds x instances x the catalog's price, with spot savings."""
    from rich.table import Table

    from smjobs.aws import job_store, lifecycle

    aws = _context(job, region, endpoint_url, profile)
    c = aws_call(lambda: lifecycle.cost(aws, job))
    record = job_store.recall(job)
    estimated = record.estimated_usd if record is not None else None
    if json_output():
        from smjobs.cli.schemas import CostOutput

        emit(CostOutput(name=c.name, status=c.status, running=c.status not in lifecycle.TERMINAL,
                        instance_type=c.instance_type, instance_count=c.instance_count, spot=c.spot,
                        usd_per_hour=c.usd_per_hour, price_source=c.price_source, training_s=c.training_s,
                        billable_s=c.billable_s, usd=c.usd, on_demand_usd=c.on_demand_usd, spot_savings=c.spot_savings,
                        estimated_usd_at_submit=estimated))
        return
    table = Table(title=f"{escape(job)} ({c.status})", show_header=False)
    table.add_column()
    table.add_column()
    table.add_row("instances", f"{c.instance_count} x {c.instance_type}" + (" (managed spot)" if c.spot else ""))
    table.add_row("training time", f"{c.training_s:,} s")
    table.add_row("billable time", f"{c.billable_s:,} s")
    table.add_row("price", f"${c.usd_per_hour:,.4f}/h per instance" if c.usd_per_hour is not None else "unknown")
    table.add_row("price source", escape(c.price_source))
    if c.usd is not None:
        table.add_row("cost", f"${c.usd:,.2f} = {c.billable_s:,} s / 3600 x {c.instance_count} x ${c.usd_per_hour:,.4f}")
    if c.spot_savings is not None and c.on_demand_usd is not None:
        table.add_row("spot savings", f"{c.spot_savings:.0%} (${c.on_demand_usd - c.usd:,.2f} less than on demand)")
    if estimated is not None:
        table.add_row("estimated at submit", f"${estimated:,.2f}")
    print_table(out, table)
    if c.status not in lifecycle.TERMINAL:
        out.print("the job is still running: this is the cost so far", markup=False)
