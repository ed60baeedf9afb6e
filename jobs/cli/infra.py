"""``smjobs infra``: the account set-up as a CloudFormation stack (``deploy``), its template (``template``) and the
policy linters over it (``lint``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from smjobs.cli.shared import (
    ACCOUNT,
    AccountRegionOpt,
    Command,
    EndpointOpt,
    Group,
    ProfileOpt,
    app,
    aws_call,
    aws_context,
    err,
    out,
)
from smjobs.tables import print_table

infra = typer.Typer(cls=Group, no_args_is_help=True, help="Set up an AWS account for smjobs: the execution role and the bucket.")
app.add_typer(infra, name="infra", rich_help_panel=ACCOUNT)


@infra.command(cls=Command)
def template(
    output: Annotated[Path | None, typer.Option("--out", "-o", help="Write the template here instead of printing it.")] = None,
) -> None:
    """Print the CloudFormation template (the same file as infra/smjobs.cfn.yaml), for review or other tools."""
    from smjobs.infra.template import render

    if output is None:
        out.print(render(), end="", markup=False, highlight=False, soft_wrap=True)
        return
    output.write_text(render())
    err.print(f"wrote {output}", markup=False)


@infra.command(cls=Command)
def deploy(
    region: AccountRegionOpt = None,
    endpoint_url: EndpointOpt = None,
    profile: ProfileOpt = None,
    stack_name: Annotated[str, typer.Option("--stack-name", help="CloudFormation stack name; submit looks for 'smjobs'.")] = "smjobs",
    role_name: Annotated[str | None, typer.Option("--role-name", help="Execution role name (default: smjobs-sagemaker-execution).")] = None,
    kms_key_arn: Annotated[str | None, typer.Option("--kms-key-arn", help="Encrypt the bucket with this KMS key (default: SSE-S3).")] = None,
    checkpoint_days: Annotated[int | None, typer.Option("--checkpoint-days", min=1, help="Expire objects under checkpoints/ after this many days (default 30).")] = None,
    access_log_bucket: Annotated[str | None, typer.Option("--access-log-bucket", help="Send the bucket's server access logs to this bucket.")] = None,
    vpc_id: Annotated[str | None, typer.Option("--vpc-id", help="Add the VPC endpoints (S3, Logs, CloudWatch, STS) that VPC-only jobs need in this VPC.")] = None,
    route_table_ids: Annotated[list[str] | None, typer.Option("--route-table-id", help="With --vpc-id: a route table of the job subnets. Repeatable.")] = None,
    subnet_ids: Annotated[list[str] | None, typer.Option("--subnet-id", help="With --vpc-id: a job subnet. Repeatable.")] = None,
    security_group_ids: Annotated[list[str] | None, typer.Option("--security-group-id", help="With --vpc-id: a security group of the endpoints. Repeatable.")] = None,
    mlflow_arns: Annotated[list[str] | None, typer.Option("--mlflow-arn", help="Let jobs log runs to this SageMaker MLflow tracking server or app (a spec's tracking.mlflow.tracking_server_arn). Repeatable.")] = None,
) -> None:
    """Create or update the smjobs stack (role and bucket) through CloudFormation, and print what it made."""
    from rich.table import Table

    from smjobs.infra import stack
    from smjobs.infra.template import render

    if vpc_id and not (route_table_ids and subnet_ids and security_group_ids):
        err.print("[bold red]error:[/] --vpc-id needs --route-table-id, --subnet-id and --security-group-id "
                  "(each at least once); nothing was deployed.", highlight=False)
        raise typer.Exit(2)
    aws = aws_context(region, endpoint_url, profile=profile)
    params = stack.parameters(role_name=role_name, kms_key_arn=kms_key_arn, checkpoint_days=checkpoint_days,
                              access_log_bucket=access_log_bucket, vpc_id=vpc_id, route_table_ids=route_table_ids or [],
                              subnet_ids=subnet_ids or [], security_group_ids=security_group_ids or [],
                              mlflow_arns=mlflow_arns or [])
    out.print(f"deploying stack {escape(stack_name)} in {aws.region} (CloudFormation; this can take a few minutes)",
              highlight=False)
    try:
        result = aws_call(lambda: stack.deploy(aws.client("cloudformation"), render(), params, stack_name,
                                               iam=aws.client("iam")))
    except RuntimeError as exc:
        err.print(f"[bold red]deploy failed:[/] {escape(str(exc))}", highlight=False)
        raise typer.Exit(1) from None
    table = Table(title=f"stack {escape(stack_name)}: {result.action}", show_header=False)
    for key, value in result.outputs.items():
        table.add_row(key, escape(value))
    print_table(out, table)
    if stack_name != "smjobs":
        out.print(f"submit finds the stack named smjobs by itself; pass --role {result.outputs.get('RoleArn')} "
                  f"--bucket {result.outputs.get('BucketName')} for this one", markup=False)


@infra.command(cls=Command)
def lint(
    tools: Annotated[Path | None, typer.Option("--tools", help="Folder with cfn-lint, checkov and parliament (default: .venv/lint/bin, then PATH).")] = None,
) -> None:
    """Run cfn-lint, checkov and parliament on the template and policies; fail on findings not allowlisted."""
    from smjobs.infra.lint import main as lint_main

    default = Path(".venv/lint/bin")
    folder = tools or (default if default.is_dir() else None)
    raise typer.Exit(lint_main(["--tools", str(folder)] if folder else []))
