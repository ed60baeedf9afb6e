"""``make demo``: validate the example DDP job, run it locally with 2 processes, print the request, set up the account
(the CloudFormation template) and submit to moto.

The local run goes through SageMaker's own container toolkit on this machine (no Docker, no GPU).
No AWS account is used: ``moto.mock_aws()`` stands in for CloudFormation, S3, IAM, STS and SageMaker. What the demo shows
as "sent" is the CreateTrainingJob request captured by botocore's own hook as boto3 sends it, not moto's echo.
"""

from __future__ import annotations

import copy
import json
import shutil
import sys
from pathlib import Path

from rich.console import Console
from rich.syntax import Syntax

from smjobs.checks.validate import validate_spec
from smjobs.errors import SpecError
from smjobs.request.training import build_request
from smjobs.spec.job import example_path, read_spec_data

EXAMPLE = "ddp_mlp"
REGION = "us-east-1"


def _show(console: Console, text: str, language: str) -> None:
    """Highlighted in a terminal; as plain text in a pipe or file, where it must parse (no wrap, no colour)."""
    if console.is_terminal:
        console.print(Syntax(text, language, word_wrap=True))
    else:
        console.print(text, markup=False, highlight=False, soft_wrap=True)


def main(example: str = EXAMPLE) -> int:
    console = Console(soft_wrap=not sys.stdout.isatty())
    path = example_path(example)
    console.rule(f"1. validate {path.name}")
    try:
        spec = validate_spec(read_spec_data(path), region=REGION)
    except SpecError as exc:
        console.print(str(exc))
        return 2
    console.print(f"[green]valid[/]: {spec.distribution.type} on {spec.compute.instance_count} x {spec.compute.instance_type}")

    console.rule("2. local run: 2 processes under the SageMaker container toolkit")
    from smjobs.cli.local import report, run_with_progress
    from smjobs.local import runner as local

    request = build_request(spec, region=REGION)
    layout = local.prepare(request, Path("runs") / spec.name, processes=2)
    for stale in ("checkpoints", "model"):  # start fresh: a kept checkpoint would resume a finished run
        shutil.rmtree(layout.base_dir / stale, ignore_errors=True)
        (layout.base_dir / stale).mkdir()
    result = run_with_progress(request, layout, show_toolkit=False)
    report(result)
    if result.exit_code != 0:
        return result.exit_code

    console.rule("3. the request SageMaker would get (dry run, no AWS call)")
    _show(console, request.to_yaml(), "yaml")

    console.rule("4. submit to moto (in process)")
    from moto import mock_aws

    from smjobs.aws import submit as sagemaker_edge
    from smjobs.aws.context import AwsContext

    with mock_aws():
        aws = AwsContext.create(region=REGION)
        sent: list[dict] = []
        aws.client("sagemaker").meta.events.register(
            sagemaker_edge.CREATE_TRAINING_JOB_EVENT, lambda params, **_: sent.append(copy.deepcopy(params))
        )
        from smjobs.infra import stack, template

        deployed = stack.deploy(aws.client("cloudformation"), template.render(), stack.parameters())
        console.print(f"set-up: CloudFormation stack {deployed.stack_name} {deployed.action} (`smjobs infra deploy`): "
                      f"{deployed.outputs}")
        resolved = sagemaker_edge.resolve(spec, aws)  # finds the stack's role and bucket; creates nothing
        request = sagemaker_edge.resolved_request(spec, aws, resolved)
        name = sagemaker_edge.submit(request, aws)
        console.print(f"[green]submitted[/] {name}; role {resolved.role_arn}; bucket {resolved.bucket}")
        console.print("CreateTrainingJob as boto3 sent it:")
        _show(console, json.dumps(sent[0], indent=2, default=str), "json")
        same = sent[0] == request.create_training_job
        console.print(f"dry run equals the request sent: [{'green' if same else 'red'}]{same}[/]")
        keys = [o["Key"] for o in aws.client("s3").list_objects_v2(Bucket=resolved.bucket)["Contents"]]
        console.print(f"uploaded: {', '.join(keys)}")
        console.print(f"status (moto): {sagemaker_edge.status(aws, name)['status']}")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
