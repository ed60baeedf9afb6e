"""The account set-up as data: the execution role's trust and permissions, and the bucket's lock-down.

One source for both ways smjobs sets an account up: the CloudFormation template (``infra/template.py``) renders
these documents with ``${AWS::Region}``-style placeholders, and the boto3 ``ensure_*`` functions (``infra/aws.py``)
with the real names. What a platform team reviews in the template is what the demo and the tests create.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

DEFAULT_ROLE_NAME = "smjobs-sagemaker-execution"
POLICY_NAME = "smjobs-training-job"
STACK_NAME = "smjobs"
# Checkpoints put under this prefix of the project bucket expire (lifecycle rule); everything else is kept.
CHECKPOINT_PREFIX = "checkpoints/"
CHECKPOINT_RETENTION_DAYS = 30
NONCURRENT_VERSION_RETENTION_DAYS = 7
ABORT_MULTIPART_AFTER_DAYS = 7
# Repositories of the AWS Deep Learning Containers that smjobs' jobs pull: training, Batch Transform, SMP v2.
# pytorch: the Amazon Linux 2023 family (2.11 and newer); a spec's own compute.image_uri needs its own pull permission
IMAGE_REPOSITORIES = ("pytorch-training", "pytorch", "pytorch-inference", "smdistributed-modelparallel")
# The log groups SageMaker writes a training job's and a transform job's logs to.
LOG_GROUPS = ("/aws/sagemaker/TrainingJobs", "/aws/sagemaker/TransformJobs")


@dataclass(frozen=True)
class Scope:
    """The names a policy is scoped to: real ones (boto3) or CloudFormation placeholders (the template)."""

    bucket: str
    partition: str = "aws"
    region: str = "*"
    account_id: str = "*"
    image_accounts: tuple[str, ...] = ("*",)
    """Accounts of the ECR registries the job's images come from (the Deep Learning Containers' accounts)."""
    extra_buckets: tuple[str, ...] = ()
    """Data buckets a spec names besides the project bucket."""


def partition_of(region: str | None) -> str:
    if region and region.startswith("cn-"):
        return "aws-cn"
    if region and region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


def default_bucket_name(account_id: str, region: str) -> str:
    return f"smjobs-{account_id}-{region}"


def trust_policy(account_id: str | None = None) -> dict:
    """SageMaker may assume the role; with ``account_id``, only while acting for this account (confused deputy)."""
    statement: dict[str, Any] = {
        "Effect": "Allow",
        "Principal": {"Service": "sagemaker.amazonaws.com"},
        "Action": "sts:AssumeRole",
    }
    if account_id:
        statement["Condition"] = {"StringEquals": {"aws:SourceAccount": account_id}}
    return {"Version": "2012-10-17", "Statement": [statement]}


def job_statements(scope: Scope) -> list[dict]:
    """What every training or transform job needs: its bucket(s), its log groups, its metrics and its images."""
    buckets = sorted({scope.bucket, *scope.extra_buckets})
    s3 = f"arn:{scope.partition}:s3:::"
    logs = f"arn:{scope.partition}:logs:{scope.region}:{scope.account_id}:log-group:"
    return [
        {
            "Sid": "ProjectBucketObjects",
            "Effect": "Allow",
            "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"],
            "Resource": [f"{s3}{b}/*" for b in buckets],
        },
        {
            "Sid": "ProjectBucketListing",
            "Effect": "Allow",
            "Action": ["s3:ListBucket", "s3:GetBucketLocation"],
            "Resource": [f"{s3}{b}" for b in buckets],
        },
        {
            "Sid": "JobLogGroups",
            "Effect": "Allow",
            "Action": ["logs:CreateLogGroup", "logs:DescribeLogStreams"],
            "Resource": [f"{logs}{group}:*" for group in LOG_GROUPS],
        },
        {
            "Sid": "JobLogStreams",
            "Effect": "Allow",
            "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": [f"{logs}{group}:log-stream:*" for group in LOG_GROUPS],
        },
        {
            # PutMetricData has no resource-level permissions; the namespace condition is the scope it allows
            "Sid": "JobMetrics",
            "Effect": "Allow",
            "Action": "cloudwatch:PutMetricData",
            "Resource": "*",
            "Condition": {"StringLike": {"cloudwatch:namespace": "/aws/sagemaker/*"}},
        },
        {
            # GetAuthorizationToken has no resource-level permissions either
            "Sid": "PullImagesAuth",
            "Effect": "Allow",
            "Action": "ecr:GetAuthorizationToken",
            "Resource": "*",
        },
        {
            "Sid": "PullImages",
            "Effect": "Allow",
            "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"],
            "Resource": [f"arn:{scope.partition}:ecr:{scope.region}:{account}:repository/{repo}"
                         for account in dict.fromkeys(scope.image_accounts) for repo in IMAGE_REPOSITORIES],
        },
    ]


def vpc_statement() -> dict:
    """The network interfaces SageMaker creates in the job's subnets. EC2 gives these actions no resource-level
    scope that SageMaker's own calls would satisfy, so the resource is ``*`` (AWS's documented policy does the same)."""
    return {
        "Sid": "JobVpcInterfaces",
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


def kms_statement(key_arns: list | tuple) -> dict:
    """Encrypt and decrypt with the bucket's (or the job's volume) KMS keys."""
    return {
        "Sid": "JobKmsKeys",
        "Effect": "Allow",
        "Action": ["kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey", "kms:CreateGrant", "kms:DescribeKey"],
        "Resource": list(key_arns),
    }


# What a job's script calls on a SageMaker managed MLflow tracking server or app to log one run: find or create its
# experiment, create or continue its run, log parameters, metrics and tags, and end it (the MLflow REST API's
# operations, which the sagemaker-mlflow service authorises one action each). Artifacts go to the server's
# artifact store in S3: in the project bucket, ProjectBucketObjects covers them.
MLFLOW_ACTIONS = (
    "sagemaker-mlflow:GetExperimentByName",
    "sagemaker-mlflow:CreateExperiment",
    "sagemaker-mlflow:CreateRun",
    "sagemaker-mlflow:GetRun",
    "sagemaker-mlflow:UpdateRun",
    "sagemaker-mlflow:LogBatch",
    "sagemaker-mlflow:LogMetric",
    "sagemaker-mlflow:LogParam",
    "sagemaker-mlflow:SetTag",
)


def mlflow_statement(resource_arns: list | tuple) -> dict:
    """Log a job's run to these SageMaker MLflow tracking servers or apps (a spec's tracking_server_arn)."""
    return {"Sid": "JobMlflowTracking", "Effect": "Allow", "Action": list(MLFLOW_ACTIONS), "Resource": list(resource_arns)}


def execution_role_policy(scope: Scope, *, vpc: bool = False, kms_key_arns: tuple[str, ...] = (),
                          mlflow_arns: tuple[str, ...] = ()) -> dict:
    """The permissions of the execution role: a job's needs, plus VPC interfaces, KMS keys and MLflow tracking
    servers when asked."""
    statements = job_statements(scope)
    if vpc:
        statements.append(vpc_statement())
    if kms_key_arns:
        statements.append(kms_statement(kms_key_arns))
    if mlflow_arns:
        statements.append(mlflow_statement(mlflow_arns))
    return {"Version": "2012-10-17", "Statement": statements}


def bucket_policy(bucket: str, partition: str = "aws") -> dict:
    """Refuse every request to the bucket that does not use TLS."""
    arn = f"arn:{partition}:s3:::{bucket}"
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "DenyInsecureTransport",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:*",
                "Resource": [arn, f"{arn}/*"],
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            }
        ],
    }


PUBLIC_ACCESS_BLOCK = {
    "BlockPublicAcls": True,
    "IgnorePublicAcls": True,
    "BlockPublicPolicy": True,
    "RestrictPublicBuckets": True,
}


@dataclass(frozen=True)
class LifecycleRule:
    """One bucket lifecycle rule, rendered as S3's API wants it (``api``) or as CloudFormation does (``cfn``)."""

    rule_id: str
    prefix: str
    expire_days: Any = None
    noncurrent_days: Any = None
    abort_multipart_days: Any = None

    def api(self) -> dict:
        rule: dict[str, Any] = {"ID": self.rule_id, "Filter": {"Prefix": self.prefix}, "Status": "Enabled"}
        if self.expire_days is not None:
            rule["Expiration"] = {"Days": self.expire_days}
        if self.noncurrent_days is not None:
            rule["NoncurrentVersionExpiration"] = {"NoncurrentDays": self.noncurrent_days}
        if self.abort_multipart_days is not None:
            rule["AbortIncompleteMultipartUpload"] = {"DaysAfterInitiation": self.abort_multipart_days}
        return rule

    def cfn(self) -> dict:
        rule: dict[str, Any] = {"Id": self.rule_id, "Status": "Enabled"}
        if self.prefix:
            rule["Prefix"] = self.prefix
        if self.expire_days is not None:
            rule["ExpirationInDays"] = self.expire_days
        if self.noncurrent_days is not None:
            rule["NoncurrentVersionExpiration"] = {"NoncurrentDays": self.noncurrent_days}
        if self.abort_multipart_days is not None:
            rule["AbortIncompleteMultipartUpload"] = {"DaysAfterInitiation": self.abort_multipart_days}
        return rule


def lifecycle_rules(checkpoint_days: Any = CHECKPOINT_RETENTION_DAYS,
                    noncurrent_days: Any = NONCURRENT_VERSION_RETENTION_DAYS) -> list[LifecycleRule]:
    """Checkpoints expire after ``checkpoint_days``; overwritten or deleted versions after ``noncurrent_days``;
    unfinished multipart uploads after a week. Models and outputs are kept."""
    return [
        LifecycleRule("expire-checkpoints", CHECKPOINT_PREFIX, expire_days=checkpoint_days, noncurrent_days=1),
        LifecycleRule("expire-noncurrent-versions", "", noncurrent_days=noncurrent_days,
                      abort_multipart_days=ABORT_MULTIPART_AFTER_DAYS),
    ]
