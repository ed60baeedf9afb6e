"""ensure_bucket and ensure_execution_role: the boto3 path to the set-up the CloudFormation template makes.

Create or bring up to date, never duplicate. Both apply the documents of ``infra/policies.py``, the same ones the
template (``infra/template.py``) renders, so the demo and the tests make what a platform team reviews. Teams
deploy the template (``smjobs infra deploy``); these functions run only when asked (``--create-infra``).
"""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import ClientError

from smjobs.infra import policies


def ensure_bucket(s3, name: str, region: str, *, kms_key_id: str | None = None) -> str:
    """Create ``name`` if missing; (re)apply the public-access block, default encryption, the TLS-only policy,
    versioning and the lifecycle rules."""
    try:
        s3.head_bucket(Bucket=name)
    except ClientError as exc:
        if exc.response["Error"]["Code"] not in ("404", "NoSuchBucket", "NotFound"):
            raise
        kwargs: dict[str, Any] = {"Bucket": name}
        if region != "us-east-1":  # us-east-1 rejects an explicit LocationConstraint
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
        s3.create_bucket(**kwargs)
    s3.put_public_access_block(Bucket=name, PublicAccessBlockConfiguration=dict(policies.PUBLIC_ACCESS_BLOCK))
    default = (
        {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": kms_key_id} if kms_key_id else {"SSEAlgorithm": "AES256"}
    )
    s3.put_bucket_encryption(
        Bucket=name,
        ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": default, "BucketKeyEnabled": bool(kms_key_id)}]
        },
    )
    s3.put_bucket_policy(Bucket=name, Policy=json.dumps(policies.bucket_policy(name, policies.partition_of(region))))
    s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    s3.put_bucket_lifecycle_configuration(
        Bucket=name, LifecycleConfiguration={"Rules": [rule.api() for rule in policies.lifecycle_rules()]}
    )
    return name


def execution_role_policy(
    bucket: str,
    *,
    region: str | None = None,
    account_id: str | None = None,
    extra_buckets: tuple[str, ...] = (),
    vpc: bool = False,
    kms_key_arns: tuple[str, ...] = (),
    mlflow_arns: tuple[str, ...] = (),
) -> dict:
    """The execution role's permissions for ``bucket`` in ``region`` (any region when None)."""
    from smjobs import catalog

    accounts = catalog.frameworks().image_accounts(region) if region else ()
    scope = policies.Scope(bucket=bucket, partition=policies.partition_of(region), region=region or "*",
                           account_id=account_id or "*", image_accounts=accounts or ("*",),
                           extra_buckets=tuple(extra_buckets))
    return policies.execution_role_policy(scope, vpc=vpc, kms_key_arns=kms_key_arns, mlflow_arns=mlflow_arns)


def ensure_execution_role(
    iam,
    bucket: str,
    *,
    role_name: str = policies.DEFAULT_ROLE_NAME,
    region: str | None = None,
    account_id: str | None = None,
    extra_buckets: tuple[str, ...] = (),
    vpc: bool = False,
    kms_key_arns: tuple[str, ...] = (),
    mlflow_arns: tuple[str, ...] = (),
) -> str:
    """Create the SageMaker execution role or bring its trust and permissions up to date; return its ARN."""
    trust = json.dumps(policies.trust_policy(account_id))
    try:
        arn = iam.get_role(RoleName=role_name)["Role"]["Arn"]
        iam.update_assume_role_policy(RoleName=role_name, PolicyDocument=trust)
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "NoSuchEntity":
            raise
        arn = iam.create_role(
            RoleName=role_name,
            AssumeRolePolicyDocument=trust,
            Description="SageMaker training and transform jobs launched by smjobs",
            Tags=[{"Key": "managed-by", "Value": "smjobs"}],
        )["Role"]["Arn"]
    policy = execution_role_policy(bucket, region=region, account_id=account_id, extra_buckets=extra_buckets, vpc=vpc,
                                   kms_key_arns=kms_key_arns, mlflow_arns=mlflow_arns)
    iam.put_role_policy(RoleName=role_name, PolicyName=policies.POLICY_NAME, PolicyDocument=json.dumps(policy))
    return arn
