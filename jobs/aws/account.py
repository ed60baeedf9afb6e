"""Where a job's execution role and bucket come from, in an account smjobs did not set up itself.

The role, first found wins:
1. ``--role`` or the spec's ``role_arn``;
2. inside SageMaker Studio or a notebook instance, the notebook's execution role (the SDK's own lookup,
   ``sagemaker.get_execution_role``);
3. the ``smjobs`` CloudFormation stack's RoleArn output (``smjobs infra deploy``);
4. an existing role named ``smjobs-sagemaker-execution``.

The bucket: ``--bucket``, the stack's BucketName, an existing ``smjobs-<account>-<region>``, and in Studio the SDK's
default bucket when it exists. Nothing is created unless ``create_infra`` (``--create-infra``) asks for it; then
the boto3 ``ensure_*`` functions apply the same documents as the template.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from botocore.exceptions import ClientError

from smjobs.aws.context import AwsContext
from smjobs.errors import Problem, SpecError
from smjobs.spec.job import JobSpec

SETUP_FIX = ("run `smjobs infra deploy` (a CloudFormation stack your platform team can review), pass --role and "
             "--bucket, or add --create-infra to create them with boto3 now")


class NoCredentialsError(RuntimeError):
    """No AWS credentials are configured and no emulator endpoint was given."""


@dataclass(frozen=True)
class Resolved:
    account_id: str
    bucket: str
    role_arn: str
    role_source: str = ""
    """Where the role came from, said to the user: "--role", "Studio execution role", "stack smjobs", ..."""


NOTEBOOK_METADATA_FILE = "/opt/ml/metadata/resource-metadata.json"
"""Where SageMaker Studio and notebook instances describe the notebook (the SDK's ``get_execution_role`` reads the
same file)."""


def in_notebook() -> bool:
    """Inside SageMaker Studio or a notebook instance: the notebook's metadata file is there."""
    return os.path.exists(NOTEBOOK_METADATA_FILE)


def notebook_role(aws: AwsContext) -> str | None:
    """The notebook's execution role, found as the SDK finds it but with boto3 alone (either SDK major, or none):
    the metadata's ``ExecutionRoleArn``; else the Studio user profile's role, then its domain's default; else the
    notebook instance's role; else the role whose credentials the notebook runs with. None outside a notebook or
    when none of them can be read."""
    if not in_notebook():
        return None
    try:
        metadata = json.loads(Path(NOTEBOOK_METADATA_FILE).read_text())
    except (OSError, ValueError):
        return None
    if metadata.get("ExecutionRoleArn"):
        return metadata["ExecutionRoleArn"]
    sagemaker = aws.client("sagemaker")
    try:
        if metadata.get("DomainId") and metadata.get("UserProfileName"):
            profile = sagemaker.describe_user_profile(DomainId=metadata["DomainId"], UserProfileName=metadata["UserProfileName"])
            role = profile.get("UserSettings", {}).get("ExecutionRole")
            return role or sagemaker.describe_domain(DomainId=metadata["DomainId"])["DefaultUserSettings"]["ExecutionRole"]
        if metadata.get("ResourceName"):
            return sagemaker.describe_notebook_instance(NotebookInstanceName=metadata["ResourceName"])["RoleArn"]
    except (ClientError, KeyError):
        pass
    return _caller_role(aws)


def _caller_role(aws: AwsContext) -> str | None:
    """The IAM role behind the caller's assumed-role credentials (with its path from IAM when readable)."""
    try:
        arn = aws.client("sts").get_caller_identity()["Arn"]
    except ClientError:
        return None
    found = re.match(r"^(arn:[^:]+):sts::(\d+):assumed-role/([^/]+)/", arn)
    if found is None:
        return None
    partition, account, name = found.groups()
    try:
        return aws.client("iam").get_role(RoleName=name)["Role"]["Arn"]
    except ClientError:
        return f"{partition}:iam::{account}:role/{name}"


def _bucket_exists(aws: AwsContext, name: str) -> bool:
    try:
        aws.client("s3").head_bucket(Bucket=name)
        return True
    except ClientError:
        return False


def _existing_role(aws: AwsContext, name: str) -> str | None:
    try:
        return aws.client("iam").get_role(RoleName=name)["Role"]["Arn"]
    except ClientError:
        return None


def _data_buckets(spec: JobSpec) -> tuple[str, ...]:
    return tuple(uri.split("/")[2] for uri in [spec.output_path, spec.checkpoint_s3_uri, *(c.uri for c in spec.inputs.values())]
                 if uri and uri.startswith("s3://"))


def _mlflow_arns(spec: JobSpec) -> tuple[str, ...]:
    arn = spec.tracking.mlflow.tracking_server_arn if spec.tracking is not None else None
    return (arn,) if arn else ()


def resolve(spec: JobSpec, aws: AwsContext, *, role_arn: str | None = None, bucket: str | None = None,
            create_infra: bool = False) -> Resolved:
    """Find the account, the execution role and the bucket (see the module docstring); raise SpecError naming what
    is missing and how to set it up."""
    from smjobs.infra import default_bucket_name, ensure_bucket, ensure_execution_role
    from smjobs.infra.policies import DEFAULT_ROLE_NAME
    from smjobs.infra.stack import outputs

    if not aws.has_credentials():
        raise NoCredentialsError(
            "No AWS credentials found. Configure them (aws configure, AWS_PROFILE, or an instance role), "
            "or pass --endpoint-url to submit to an emulator such as moto_server; "
            "`smjobs submit --dry-run` shows the request without AWS."
        )
    region = aws.region
    account_id = aws.client("sts").get_caller_identity()["Account"]
    role, source = (role_arn, "--role") if role_arn else (spec.role_arn, "the spec's role_arn")
    if create_infra:
        bucket = ensure_bucket(aws.client("s3"), bucket or default_bucket_name(account_id, region), region)
        if role is None:
            role, source = ensure_execution_role(aws.client("iam"), bucket, region=region, account_id=account_id,
                                                 extra_buckets=_data_buckets(spec), vpc=bool(spec.security.subnets),
                                                 mlflow_arns=_mlflow_arns(spec)), \
                "created by --create-infra"
        return Resolved(account_id, bucket, role, source)
    stack = None
    if role is None and (role := notebook_role(aws)):
        source = "the notebook's execution role"
    if role is None:
        stack = outputs(aws.client("cloudformation"))
        if role := stack.get("RoleArn"):
            source = "stack smjobs"
    if role is None and (role := _existing_role(aws, DEFAULT_ROLE_NAME)):
        source = f"existing role {DEFAULT_ROLE_NAME}"
    if bucket is None:
        stack = stack if stack is not None else outputs(aws.client("cloudformation"))
        candidates = [stack.get("BucketName"), default_bucket_name(account_id, region)]
        if in_notebook():
            candidates.append(f"sagemaker-{region}-{account_id}")  # the SDK's default bucket in Studio
        bucket = next((name for name in candidates if name and _bucket_exists(aws, name)), None)
    problems = []
    if role is None:
        problems.append(Problem("role_arn", f"no execution role found in account {account_id} (no --role, no "
                                "role_arn, no notebook role, no smjobs stack, no role named "
                                f"{DEFAULT_ROLE_NAME}); nothing was created.", SETUP_FIX))
    if bucket is None:
        problems.append(Problem("bucket", f"no project bucket found in {region} (no --bucket, no smjobs stack, no "
                                f"bucket {default_bucket_name(account_id, region)}); nothing was created.", SETUP_FIX))
    if problems:
        raise SpecError(problems)
    return Resolved(account_id, bucket, role, source)
