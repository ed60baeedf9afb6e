"""Deploy the set-up template as a CloudFormation stack, and read what a deployed stack made.

``smjobs infra deploy`` creates the stack, or updates it when it exists, waits for it, and prints its outputs
(the role ARN and the bucket). ``submit`` finds the role and bucket through ``outputs``; nothing else creates them.
"""

from __future__ import annotations

from dataclasses import dataclass

from botocore.exceptions import ClientError, WaiterError

from smjobs.infra.policies import DEFAULT_ROLE_NAME, STACK_NAME


@dataclass(frozen=True)
class StackResult:
    stack_name: str
    action: str
    """"created", "updated" or "unchanged"."""
    outputs: dict[str, str]


def parameters(*, role_name: str | None = None, kms_key_arn: str | None = None, checkpoint_days: int | None = None,
               access_log_bucket: str | None = None, vpc_id: str | None = None, route_table_ids: list[str] = (),
               subnet_ids: list[str] = (), security_group_ids: list[str] = (), mlflow_arns: list[str] = ()) -> list[dict]:
    """CloudFormation parameters for what was given; the template's defaults for the rest."""
    given = {
        "RoleName": role_name, "KmsKeyArn": kms_key_arn,
        "CheckpointRetentionDays": str(checkpoint_days) if checkpoint_days is not None else None,
        "AccessLogBucket": access_log_bucket, "VpcId": vpc_id,
        "RouteTableIds": ",".join(route_table_ids) or None, "SubnetIds": ",".join(subnet_ids) or None,
        "SecurityGroupIds": ",".join(security_group_ids) or None, "MlflowResourceArns": ",".join(mlflow_arns) or None,
    }
    return [{"ParameterKey": k, "ParameterValue": v} for k, v in given.items() if v is not None]


def role_taken(iam, cloudformation, role_name: str, stack_name: str = STACK_NAME) -> str | None:
    """Why the stack cannot make its execution role: IAM role names are global to the account, so a role of that
    name made by a stack in another region (or by hand) makes CloudFormation fail after minutes. None when the name
    is free or this region's stack owns it."""
    try:
        arn = iam.get_role(RoleName=role_name)["Role"]["Arn"]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "NoSuchEntity":
            return None
        raise
    try:
        resources = cloudformation.describe_stack_resources(StackName=stack_name)["StackResources"]
    except ClientError as exc:
        if "does not exist" not in str(exc):
            raise
        resources = []
    if any(r.get("ResourceType") == "AWS::IAM::Role" and r.get("PhysicalResourceId") == role_name for r in resources):
        return None
    region = cloudformation.meta.region_name
    return (f"the execution role name {role_name} is taken: a role of that name exists ({arn}), made by an smjobs "
            f"stack in another region or by hand, and IAM role names are global to the account. To fix: pass "
            f"--role-name {role_name}-{region} for this region's stack (submit finds the role through the stack), or "
            f"skip the stack and submit with --role-arn {arn}")


def deploy(cloudformation, template_body: str, params: list[dict], stack_name: str = STACK_NAME, *,
           iam=None) -> StackResult:
    """Create or update ``stack_name`` and wait until it settles; raise RuntimeError with the stack's reason.
    With ``iam``, a role name taken outside this stack is refused first, before anything is created."""
    kwargs = {"StackName": stack_name, "TemplateBody": template_body, "Parameters": params,
              "Capabilities": ["CAPABILITY_NAMED_IAM"], "Tags": [{"Key": "managed-by", "Value": "smjobs"}]}
    if iam is not None:
        role_name = next((p["ParameterValue"] for p in params if p["ParameterKey"] == "RoleName"), DEFAULT_ROLE_NAME)
        taken = role_taken(iam, cloudformation, role_name, stack_name)
        if taken:
            raise RuntimeError(taken)
    try:
        cloudformation.describe_stacks(StackName=stack_name)
        exists = True
    except ClientError as exc:
        if "does not exist" not in str(exc):
            raise
        exists = False
    try:
        if exists:
            try:
                cloudformation.update_stack(**kwargs)
            except ClientError as exc:
                if "No updates are to be performed" in str(exc):
                    return StackResult(stack_name, "unchanged", outputs(cloudformation, stack_name))
                raise
            cloudformation.get_waiter("stack_update_complete").wait(StackName=stack_name,
                                                                    WaiterConfig={"Delay": 5, "MaxAttempts": 360})
        else:
            cloudformation.create_stack(**kwargs, OnFailure="ROLLBACK")
            cloudformation.get_waiter("stack_create_complete").wait(StackName=stack_name,
                                                                    WaiterConfig={"Delay": 5, "MaxAttempts": 360})
    except WaiterError as exc:
        raise RuntimeError(f"stack {stack_name} did not finish: {_failure(cloudformation, stack_name) or exc}") from None
    return StackResult(stack_name, "updated" if exists else "created", outputs(cloudformation, stack_name))


def _failure(cloudformation, stack_name: str) -> str | None:
    events = cloudformation.describe_stack_events(StackName=stack_name)["StackEvents"]
    reasons = [f"{e['LogicalResourceId']}: {e['ResourceStatusReason']}" for e in events
               if e.get("ResourceStatus", "").endswith("FAILED") and e.get("ResourceStatusReason")]
    return "; ".join(reasons[:3]) or None


def outputs(cloudformation, stack_name: str = STACK_NAME) -> dict[str, str]:
    """The stack's outputs (RoleArn, BucketName); empty when there is no such stack."""
    try:
        stacks = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
    except ClientError as exc:
        if "does not exist" in str(exc):
            return {}
        raise
    if not stacks or not stacks[0].get("StackStatus", "").endswith("_COMPLETE") or "ROLLBACK" in stacks[0]["StackStatus"]:
        return {}
    return {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}
