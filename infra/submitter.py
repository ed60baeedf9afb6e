"""What the person (or CI role) who runs smjobs needs: an IAM policy per command group, scoped like the execution
role's (``policies.Scope``), from the calls each command makes.

``submitter_policy`` is the whole document (parliament lints it with the others: ``lint.policy_files``);
``markdown_table`` is the table of it in docs/aws-account.md, kept equal to this module by a test. Deploying the
set-up stack (``smjobs infra deploy``) is not in it: creating an IAM role and a bucket through CloudFormation
(``CAPABILITY_NAMED_IAM``) is an administrator's step, done once per account.
"""

from __future__ import annotations

from smjobs.infra.policies import DEFAULT_ROLE_NAME, LOG_GROUPS, STACK_NAME, Scope

# command group -> (what it calls, the actions, the resource kind); SageMaker's read actions take no resource scope
# that a job name can narrow before the job exists, so they are scoped to this account's jobs by ARN.
COMMANDS = (
    ("submit, tune, infer (Batch Transform)", "create the job, tagged",
     ["sagemaker:CreateTrainingJob", "sagemaker:CreateHyperParameterTuningJob", "sagemaker:CreateModel",
      "sagemaker:CreateTransformJob", "sagemaker:AddTags"], "jobs"),
    ("submit, tune, infer", "hand the execution role to SageMaker", ["iam:PassRole"], "role"),
    ("submit, tune, infer", "upload the code archive, local channels and model archive",
     ["s3:PutObject", "s3:GetObject", "s3:ListBucket"], "bucket"),
    ("submit, tune, infer", "find the role and bucket (the smjobs stack, the account)",
     ["cloudformation:DescribeStacks", "iam:GetRole", "sts:GetCallerIdentity"], "lookup"),
    ("submit, tune, infer (in a notebook)", "find the notebook's execution role",
     ["sagemaker:DescribeUserProfile", "sagemaker:DescribeDomain", "sagemaker:DescribeNotebookInstance"], "studio"),
    ("submit, tune, infer", "check the Service Quotas first", ["servicequotas:GetServiceQuota",
                                                               "servicequotas:ListAWSDefaultServiceQuotas"], "any"),
    ("status, cost, tune-status, list, stop", "follow and stop jobs",
     ["sagemaker:DescribeTrainingJob", "sagemaker:DescribeTransformJob", "sagemaker:DescribeHyperParameterTuningJob",
      "sagemaker:ListTrainingJobsForHyperParameterTuningJob", "sagemaker:StopTrainingJob"], "jobs"),
    ("list, submit (quotas)", "find the project's jobs and the running ones",
     ["sagemaker:Search", "sagemaker:ListTrainingJobs", "sagemaker:ListTransformJobs"], "any"),
    ("logs, submit --wait", "read every host's log stream", ["logs:DescribeLogStreams", "logs:GetLogEvents"], "logs"),
)


def _resources(kind: str, scope: Scope, role_name: str) -> list[str] | str:
    sm = f"arn:{scope.partition}:sagemaker:{scope.region}:{scope.account_id}"
    s3 = f"arn:{scope.partition}:s3:::{scope.bucket}"
    logs = f"arn:{scope.partition}:logs:{scope.region}:{scope.account_id}:log-group:"
    return {
        "jobs": [f"{sm}:training-job/*", f"{sm}:hyper-parameter-tuning-job/*", f"{sm}:model/*",
                 f"{sm}:transform-job/*"],
        "role": f"arn:{scope.partition}:iam::{scope.account_id}:role/{role_name}",
        "bucket": [s3, f"{s3}/*"],
        "lookup": [f"arn:{scope.partition}:cloudformation:{scope.region}:{scope.account_id}:stack/{STACK_NAME}/*",
                   f"arn:{scope.partition}:iam::{scope.account_id}:role/{role_name}"],
        "logs": [f"{logs}{group}:*" for group in LOG_GROUPS],
        "studio": [f"{sm}:user-profile/*", f"{sm}:domain/*", f"{sm}:notebook-instance/*"],
    }.get(kind, "*")


def submitter_policy(scope: Scope, role_name: str = DEFAULT_ROLE_NAME) -> dict:
    """The identity policy for running smjobs' commands against the set-up ``scope`` describes."""
    statements = []
    for i, (_commands, _why, actions, kind) in enumerate(COMMANDS):
        statement = {"Sid": f"Smjobs{i}", "Effect": "Allow", "Action": actions,
                     "Resource": _resources(kind, scope, role_name)}
        if kind == "lookup":  # GetCallerIdentity takes no resource: its own statement below
            statement["Action"] = [a for a in actions if a != "sts:GetCallerIdentity"]
        if kind == "role":  # only to SageMaker, never to another service
            statement["Condition"] = {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}
        statements.append(statement)
    statements.append({"Sid": "SmjobsWhoAmI", "Effect": "Allow", "Action": "sts:GetCallerIdentity", "Resource": "*"})
    return {"Version": "2012-10-17", "Statement": statements}


def markdown_table() -> str:
    """docs/aws-account.md's table: each command group, what it does with AWS, and the actions it needs."""
    rows = ["| commands | why | actions |", "|---|---|---|"]
    for commands, why, actions, _kind in COMMANDS:
        rows.append(f"| {commands} | {why} | {', '.join(f'`{a}`' for a in actions)} |")
    return "\n".join(rows) + "\n"
