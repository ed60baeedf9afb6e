"""ensure_bucket and ensure_execution_role: create or bring up to date, never duplicate.

The role SageMaker assumes for a training job gets only what such a job uses: the project bucket,
its own CloudWatch log group and metrics namespace, pulling the training images, and (when asked)
the VPC network interfaces and KMS keys of the job.
"""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import ClientError

DEFAULT_ROLE_NAME = "smjobs-sagemaker-execution"
POLICY_NAME = "smjobs-training-job"
# Repositories of the AWS Deep Learning Containers that smjobs' jobs run in.
TRAINING_IMAGE_REPOSITORIES = ("pytorch-training", "smdistributed-modelparallel")


def default_bucket_name(account_id: str, region: str) -> str:
    return f"smjobs-{account_id}-{region}"


def ensure_bucket(s3, name: str, region: str, *, kms_key_id: str | None = None) -> str:
    """Create ``name`` if missing; (re)apply the public-access block and default encryption."""
    try:
        s3.head_bucket(Bucket=name)
    except ClientError as exc:
        if exc.response["Error"]["Code"] not in ("404", "NoSuchBucket", "NotFound"):
            raise
        kwargs: dict[str, Any] = {"Bucket": name}
        if region != "us-east-1":  # us-east-1 rejects an explicit LocationConstraint
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
        s3.create_bucket(**kwargs)
    s3.put_public_access_block(
        Bucket=name,
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": True,
            "IgnorePublicAcls": True,
            "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True,
        },
    )
    default = (
        {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": kms_key_id} if kms_key_id else {"SSEAlgorithm": "AES256"}
    )
    s3.put_bucket_encryption(
        Bucket=name,
        ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": default, "BucketKeyEnabled": bool(kms_key_id)}]
        },
    )
    return name


def trust_policy(account_id: str | None = None) -> dict:
    statement: dict[str, Any] = {
        "Effect": "Allow",
        "Principal": {"Service": "sagemaker.amazonaws.com"},
        "Action": "sts:AssumeRole",
    }
    if account_id:  # confused-deputy guard: only SageMaker acting for this account
        statement["Condition"] = {"StringEquals": {"aws:SourceAccount": account_id}}
    return {"Version": "2012-10-17", "Statement": [statement]}


def execution_role_policy(
    bucket: str, *, extra_buckets: tuple[str, ...] = (), vpc: bool = False, kms_key_arns: tuple[str, ...] = ()
) -> dict:
    """The permissions a training job needs, scoped to ``bucket`` (and the data buckets a spec names)."""
    buckets = sorted({bucket, *extra_buckets})
    statements: list[dict[str, Any]] = [
        {
            "Sid": "ProjectBucketObjects",
            "Effect": "Allow",
            "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"],
            "Resource": [f"arn:aws:s3:::{b}/*" for b in buckets],
        },
        {
            "Sid": "ProjectBucketListing",
            "Effect": "Allow",
            "Action": ["s3:ListBucket", "s3:GetBucketLocation"],
            "Resource": [f"arn:aws:s3:::{b}" for b in buckets],
        },
        {
            "Sid": "TrainingJobLogs",
            "Effect": "Allow",
            "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
            "Resource": "arn:aws:logs:*:*:log-group:/aws/sagemaker/TrainingJobs*",
        },
        {
            "Sid": "TrainingJobMetrics",
            "Effect": "Allow",
            "Action": "cloudwatch:PutMetricData",
            "Resource": "*",
            "Condition": {"StringLike": {"cloudwatch:namespace": "/aws/sagemaker/*"}},
        },
        {"Sid": "PullTrainingImagesAuth", "Effect": "Allow", "Action": "ecr:GetAuthorizationToken", "Resource": "*"},
        {
            "Sid": "PullTrainingImages",
            "Effect": "Allow",
            "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"],
            "Resource": [f"arn:aws:ecr:*:*:repository/{repo}" for repo in TRAINING_IMAGE_REPOSITORIES],
        },
    ]
    if vpc:
        statements.append(
            {
                "Sid": "TrainingJobVpcInterfaces",
                "Effect": "Allow",
                "Action": [
                    "ec2:CreateNetworkInterface",
                    "ec2:CreateNetworkInterfacePermission",
                    "ec2:DeleteNetworkInterface",
                    "ec2:DeleteNetworkInterfacePermission",
                    "ec2:DescribeNetworkInterfaces",
                    "ec2:DescribeVpcs",
                    "ec2:DescribeDhcpOptions",
                    "ec2:DescribeSubnets",
                    "ec2:DescribeSecurityGroups",
                ],
                "Resource": "*",
            }
        )
    if kms_key_arns:
        statements.append(
            {
                "Sid": "TrainingJobKmsKeys",
                "Effect": "Allow",
                "Action": ["kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey", "kms:CreateGrant", "kms:DescribeKey"],
                "Resource": list(kms_key_arns),
            }
        )
    return {"Version": "2012-10-17", "Statement": statements}


def ensure_execution_role(
    iam,
    bucket: str,
    *,
    role_name: str = DEFAULT_ROLE_NAME,
    account_id: str | None = None,
    extra_buckets: tuple[str, ...] = (),
    vpc: bool = False,
    kms_key_arns: tuple[str, ...] = (),
) -> str:
    """Create the SageMaker execution role or bring its trust and permissions up to date; return its ARN."""
    trust = json.dumps(trust_policy(account_id))
    try:
        arn = iam.get_role(RoleName=role_name)["Role"]["Arn"]
        iam.update_assume_role_policy(RoleName=role_name, PolicyDocument=trust)
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "NoSuchEntity":
            raise
        arn = iam.create_role(
            RoleName=role_name,
            AssumeRolePolicyDocument=trust,
            Description="SageMaker training jobs launched by smjobs",
            Tags=[{"Key": "managed-by", "Value": "smjobs"}],
        )["Role"]["Arn"]
    iam.put_role_policy(
        RoleName=role_name,
        PolicyName=POLICY_NAME,
        PolicyDocument=json.dumps(
            execution_role_policy(bucket, extra_buckets=extra_buckets, vpc=vpc, kms_key_arns=kms_key_arns)
        ),
    )
    return arn
