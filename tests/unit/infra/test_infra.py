"""infra: the template and the boto3 path apply the same least-privilege documents; the stack deploys through
moto's CloudFormation; submit finds a role and bucket (Studio's, the stack's, an existing one) and creates nothing
unless asked."""

from __future__ import annotations

import ast
import json
import urllib.parse

import pytest
import yaml
from botocore.exceptions import ClientError
from typer.testing import CliRunner

from smjobs.checks.validate import validate_spec
from smjobs.cli import app
from smjobs.errors import SpecError
from smjobs.infra import (
    ensure_bucket,
    ensure_execution_role,
    execution_role_policy,
    policies,
    stack,
    template,
)
from smjobs.infra.lint import Finding, judge, load_allowlist

runner = CliRunner()
ACCOUNT = "123456789012"


def _document(value):
    if not isinstance(value, str):
        return value
    text = urllib.parse.unquote(value)
    try:
        return json.loads(text)
    except json.JSONDecodeError:  # moto's CloudFormation stores a role's inline policy as Python's repr of it
        return ast.literal_eval(text)


def test_ensure_bucket_is_idempotent_and_locked_down(moto_bare):
    s3 = moto_bare.client("s3")
    for _ in range(2):
        assert ensure_bucket(s3, "proj-bucket", "us-east-1") == "proj-bucket"
    assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == ["proj-bucket"]
    block = s3.get_public_access_block(Bucket="proj-bucket")["PublicAccessBlockConfiguration"]
    assert all(block[k] for k in ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets"))
    rule = s3.get_bucket_encryption(Bucket="proj-bucket")["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    deny = json.loads(s3.get_bucket_policy(Bucket="proj-bucket")["Policy"])["Statement"][0]
    assert deny["Effect"] == "Deny" and deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert deny["Resource"] == ["arn:aws:s3:::proj-bucket", "arn:aws:s3:::proj-bucket/*"]
    assert s3.get_bucket_versioning(Bucket="proj-bucket")["Status"] == "Enabled"
    rules = {r["ID"]: r for r in s3.get_bucket_lifecycle_configuration(Bucket="proj-bucket")["Rules"]}
    assert rules["expire-checkpoints"]["Filter"] == {"Prefix": "checkpoints/"}
    assert rules["expire-checkpoints"]["Expiration"] == {"Days": policies.CHECKPOINT_RETENTION_DAYS}
    assert rules["expire-noncurrent-versions"]["NoncurrentVersionExpiration"]["NoncurrentDays"] == 7


def test_ensure_bucket_outside_us_east_1_and_with_kms(moto_bare):
    s3 = moto_bare.session.client("s3", region_name="eu-west-1")
    ensure_bucket(s3, "eu-bucket", "eu-west-1", kms_key_id="alias/data")
    assert s3.get_bucket_location(Bucket="eu-bucket")["LocationConstraint"] == "eu-west-1"
    rule = s3.get_bucket_encryption(Bucket="eu-bucket")["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert rule["ApplyServerSideEncryptionByDefault"] == {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": "alias/data"}


def test_ensure_execution_role_is_idempotent(moto_bare):
    iam = moto_bare.client("iam")
    first = ensure_execution_role(iam, "proj-bucket", account_id=ACCOUNT, region="us-east-1")
    second = ensure_execution_role(iam, "proj-bucket", account_id=ACCOUNT, region="us-east-1", extra_buckets=("data-bucket",))
    assert first == second
    roles = [r["RoleName"] for r in iam.list_roles()["Roles"]]
    assert roles.count("smjobs-sagemaker-execution") == 1
    role = iam.get_role(RoleName="smjobs-sagemaker-execution")["Role"]
    trust = _document(role["AssumeRolePolicyDocument"])["Statement"][0]
    assert trust["Principal"] == {"Service": "sagemaker.amazonaws.com"}
    assert trust["Condition"] == {"StringEquals": {"aws:SourceAccount": ACCOUNT}}
    assert iam.list_role_policies(RoleName="smjobs-sagemaker-execution")["PolicyNames"] == ["smjobs-training-job"]
    policy = _document(iam.get_role_policy(RoleName="smjobs-sagemaker-execution", PolicyName="smjobs-training-job")["PolicyDocument"])
    objects = next(s for s in policy["Statement"] if s["Sid"] == "ProjectBucketObjects")
    assert objects["Resource"] == ["arn:aws:s3:::data-bucket/*", "arn:aws:s3:::proj-bucket/*"]  # updated in place


def test_policy_is_least_privilege():
    policy = execution_role_policy("proj-bucket", region="us-east-1", account_id=ACCOUNT)
    for statement in policy["Statement"]:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        assert not any(a.endswith(":*") or a == "*" for a in actions), statement
        resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        if any(a.startswith("s3:") for a in actions):
            assert all("proj-bucket" in r for r in resources), statement
        if any(a.startswith("logs:") for a in actions):
            assert all(r.startswith(f"arn:aws:logs:us-east-1:{ACCOUNT}:log-group:/aws/sagemaker/") for r in resources)
        if resources == ["*"]:  # only actions AWS gives no resource-level scope
            assert actions in (["cloudwatch:PutMetricData"], ["ecr:GetAuthorizationToken"]), statement
    pulls = next(s for s in policy["Statement"] if s["Sid"] == "PullImages")["Resource"]
    assert "arn:aws:ecr:us-east-1:763104351884:repository/pytorch-training" in pulls
    assert all(":763104351884:" in r or ":658645717510:" in r for r in pulls)  # the DLC and SMP registries only
    sids = {s["Sid"] for s in policy["Statement"]}
    assert "JobVpcInterfaces" not in sids and "JobKmsKeys" not in sids
    with_vpc = execution_role_policy("proj-bucket", vpc=True, kms_key_arns=(f"arn:aws:kms:us-east-1:{ACCOUNT}:key/k",))
    assert {"JobVpcInterfaces", "JobKmsKeys"} <= {s["Sid"] for s in with_vpc["Statement"]}


def test_the_shipped_template_is_the_rendered_one_and_uses_the_same_documents():
    assert template.TEMPLATE_PATH.read_text() == template.render(), "run `python -m smjobs.infra.template`"
    built = template.build()
    role = built["Resources"]["ExecutionRole"]["Properties"]
    statements = role["Policies"][0]["PolicyDocument"]["Statement"]
    sids = [s.get("Sid") for s in statements if "Sid" in s]
    boto3_sids = [s["Sid"] for s in execution_role_policy("b", region="us-east-1")["Statement"]]
    assert sids == boto3_sids  # same statements, in the same order, as the boto3 path
    assert [s["Fn::If"][0] for s in statements if "Fn::If" in s] == ["VpcJobs", "UseKms", "UseMlflow"]
    bucket = built["Resources"]["ProjectBucket"]["Properties"]
    assert bucket["PublicAccessBlockConfiguration"] == policies.PUBLIC_ACCESS_BLOCK
    assert bucket["VersioningConfiguration"] == {"Status": "Enabled"}
    assert [r["Id"] for r in bucket["LifecycleConfiguration"]["Rules"]] == [r.rule_id for r in policies.lifecycle_rules()]
    tls = built["Resources"]["ProjectBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"][0]
    assert tls["Condition"] == {"Bool": {"aws:SecureTransport": "false"}} and tls["Effect"] == "Deny"
    assert {r["Type"] for r in built["Resources"].values() if r.get("Condition") == "VpcJobs"} == {"AWS::EC2::VPCEndpoint"}


def test_deploy_through_moto_cloudformation_makes_the_role_and_bucket(moto_bare):
    cfn = moto_bare.client("cloudformation")
    result = stack.deploy(cfn, template.render(), stack.parameters())
    assert result.action == "created"
    assert result.outputs == {"RoleArn": f"arn:aws:iam::{ACCOUNT}:role/smjobs-sagemaker-execution",
                              "BucketName": f"smjobs-{ACCOUNT}-us-east-1"}
    iam = moto_bare.client("iam")
    trust = _document(iam.get_role(RoleName="smjobs-sagemaker-execution")["Role"]["AssumeRolePolicyDocument"])
    assert trust == policies.trust_policy(ACCOUNT)  # the placeholders resolved to this account
    deployed = _document(iam.get_role_policy(RoleName="smjobs-sagemaker-execution",
                                             PolicyName="smjobs-training-job")["PolicyDocument"])
    # moto leaves AWS::NoValue list items (the VPC and KMS statements not asked for) as None; CloudFormation drops them
    assert None in deployed["Statement"]
    deployed["Statement"] = [s for s in deployed["Statement"] if s is not None]
    assert deployed == execution_role_policy(f"smjobs-{ACCOUNT}-us-east-1", region="us-east-1", account_id=ACCOUNT)
    s3 = moto_bare.client("s3")
    # moto's CloudFormation applies the bucket's encryption; it skips its policy, public access block, versioning and
    # lifecycle (the template test above checks those, and test_ensure_bucket_* the same documents applied by boto3)
    rule = s3.get_bucket_encryption(Bucket=result.outputs["BucketName"])["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    assert stack.deploy(cfn, template.render(), stack.parameters()).action in ("unchanged", "updated")


def test_deploy_with_kms_and_vpc_endpoints(moto_bare):
    ec2 = moto_bare.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.0.0/24")["Subnet"]["SubnetId"]
    group = ec2.create_security_group(GroupName="endpoints", Description="x", VpcId=vpc)["GroupId"]
    table = ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
    key = moto_bare.client("kms").create_key()["KeyMetadata"]["Arn"]
    params = stack.parameters(kms_key_arn=key, vpc_id=vpc, route_table_ids=[table], subnet_ids=[subnet],
                              security_group_ids=[group])
    stack.deploy(moto_bare.client("cloudformation"), template.render(), params)
    endpoints = ec2.describe_vpc_endpoints()["VpcEndpoints"]
    assert sorted(e["ServiceName"].rsplit(".", 1)[-1] for e in endpoints) == ["logs", "monitoring", "s3", "sts"]
    rule = moto_bare.client("s3").get_bucket_encryption(Bucket=f"smjobs-{ACCOUNT}-us-east-1")
    assert rule["ServerSideEncryptionConfiguration"]["Rules"][0]["ApplyServerSideEncryptionByDefault"] == {
        "SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key}
    deployed = _document(moto_bare.client("iam").get_role_policy(RoleName="smjobs-sagemaker-execution",
                                                                 PolicyName="smjobs-training-job")["PolicyDocument"])
    kms = next(s for s in deployed["Statement"] if s["Sid"] == "JobKmsKeys")
    assert kms["Resource"] == [key]
    assert any(s["Sid"] == "JobVpcInterfaces" for s in deployed["Statement"])


def test_cli_infra_deploy_and_template(moto_bare, tmp_path):
    deployed = runner.invoke(app, ["infra", "deploy", "--region", "us-east-1"])
    assert deployed.exit_code == 0, deployed.output
    assert "stack smjobs: created" in deployed.output and f"smjobs-{ACCOUNT}-us-east-1" in deployed.output
    written = runner.invoke(app, ["infra", "template", "--out", str(tmp_path / "t.yaml")])
    assert written.exit_code == 0
    assert yaml.safe_load((tmp_path / "t.yaml").read_text())["Outputs"].keys() == {"RoleArn", "BucketName"}
    refused = runner.invoke(app, ["infra", "deploy", "--region", "us-east-1", "--vpc-id", "vpc-1"])
    assert refused.exit_code == 2 and "--subnet-id" in refused.output


def test_submit_creates_nothing_and_says_how_to_set_up(moto_bare, spec_data):
    from smjobs.aws import submit as sagemaker_edge

    spec = validate_spec(spec_data)
    with pytest.raises(SpecError) as raised:
        sagemaker_edge.resolve(spec, moto_bare)
    assert raised.value.paths() == ["role_arn", "bucket"]
    assert all("smjobs infra deploy" in p.fix and "--create-infra" in p.fix for p in raised.value.problems)
    assert moto_bare.client("s3").list_buckets()["Buckets"] == []
    assert moto_bare.client("iam").list_roles()["Roles"] == []
    created = sagemaker_edge.resolve(spec, moto_bare, create_infra=True)
    assert created.role_source == "created by --create-infra"
    assert [b["Name"] for b in moto_bare.client("s3").list_buckets()["Buckets"]] == [created.bucket]


def test_the_stack_is_found_and_role_or_spec_wins(moto_bare, spec_data):
    from smjobs.aws import submit as sagemaker_edge

    stack.deploy(moto_bare.client("cloudformation"), template.render(), stack.parameters(role_name="team-sagemaker"))
    spec = validate_spec(spec_data)
    found = sagemaker_edge.resolve(spec, moto_bare)
    assert (found.role_arn, found.role_source) == (f"arn:aws:iam::{ACCOUNT}:role/team-sagemaker", "stack smjobs")
    mine = f"arn:aws:iam::{ACCOUNT}:role/mine"
    assert sagemaker_edge.resolve(spec, moto_bare, role_arn=mine).role_arn == mine
    assert sagemaker_edge.resolve(validate_spec({**spec_data, "role_arn": mine}), moto_bare).role_arn == mine


def test_in_a_notebook_the_sdk_lookup_gives_the_notebook_role(moto_aws, spec_data, tmp_path, monkeypatch):
    """A notebook instance: the metadata file names it, and describing the instance gives its role (the SDK's
    lookup, done with boto3)."""
    from smjobs.aws import account
    from smjobs.aws import submit as sagemaker_edge

    notebook_role = f"arn:aws:iam::{ACCOUNT}:role/service-role/AmazonSageMaker-ExecutionRole-1"
    moto_aws.client("sagemaker").create_notebook_instance(NotebookInstanceName="nb", InstanceType="ml.t3.medium",
                                                          RoleArn=notebook_role)
    metadata = tmp_path / "resource-metadata.json"
    metadata.write_text(json.dumps({"ResourceName": "nb"}))
    monkeypatch.setattr(account, "NOTEBOOK_METADATA_FILE", str(metadata))
    spec = validate_spec(spec_data)
    found = sagemaker_edge.resolve(spec, moto_aws)  # the account also has smjobs' role: the notebook's wins
    assert (found.role_arn, found.role_source) == (notebook_role, "the notebook's execution role")
    studio = tmp_path / "studio.json"
    studio.write_text(json.dumps({"DomainId": "d-1", "UserProfileName": "me", "ExecutionRoleArn": notebook_role + "x"}))
    monkeypatch.setattr(account, "NOTEBOOK_METADATA_FILE", str(studio))
    assert sagemaker_edge.resolve(spec, moto_aws).role_arn == notebook_role + "x"
    assert sagemaker_edge.resolve(spec, moto_aws, role_arn=f"arn:aws:iam::{ACCOUNT}:role/r").role_source == "--role"


def test_lint_judge_fails_on_unlisted_and_stale_findings():
    allowed = load_allowlist()
    assert allowed and all(reason for reason in allowed.values())
    listed = next(iter(allowed))
    new = Finding("checkov", "CKV_AWS_999", "AWS::S3::Bucket.ProjectBucket")
    unexpected, stale = judge([Finding(*listed), new], allowed)
    assert unexpected == [new]
    assert set(stale) == set(allowed) - {listed}


def test_the_docs_list_the_submitters_permissions_from_the_policy_module():
    """The AWS account page's permission table is generated from infra/submitter.py, whose policy covers every SageMaker,
    S3, CloudFormation, Service Quotas and Logs action smjobs' own commands call (read from the code's calls)."""
    import re
    from pathlib import Path

    from smjobs.infra import submitter
    from smjobs.infra.policies import Scope

    root = Path(__file__).resolve().parents[3]
    assert submitter.markdown_table() in (root / "docs" / "aws-account.md").read_text()
    allowed = {a for s in submitter.submitter_policy(Scope(bucket="b"))["Statement"]
               for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])}
    # every operation of these services that jobs/aws calls (methods and paginators), named from botocore's models
    import botocore.session
    from botocore import xform_name

    session = botocore.session.get_session()
    prefixes = {"sagemaker": "sagemaker", "s3": "s3", "logs": "logs", "sts": "sts", "service-quotas": "servicequotas",
                "cloudformation": "cloudformation", "iam": "iam"}
    operations = {}
    for service, prefix in prefixes.items():
        for name in session.get_service_model(service).operation_names:
            operations.setdefault(xform_name(name), set()).add(f"{prefix}:{name}")
    called = set()
    for path in (root / "jobs" / "aws").glob("*.py"):
        if path.name in ("sdk.py", "sdk_v3.py"):  # the SDK's own calls, made for users who asked for its objects
            continue
        text = path.read_text()
        for op in set(re.findall(r"\.([a-z][a-z_]+)\(", text)) | set(re.findall(r'get_paginator\("([a-z_]+)"\)', text)):
            if op in operations and op not in ("get_paginator", "get_waiter", "upload_file", "download_file"):
                called |= operations[op]
    called.add("s3:PutObject")  # upload_file
    called = {"s3:ListBucket" if a == "s3:HeadBucket" else a for a in called}  # HeadBucket is authorised by ListBucket
    assert {"sagemaker:CreateTrainingJob", "sagemaker:Search", "logs:GetLogEvents",
            "servicequotas:GetServiceQuota"} <= called  # the reading above finds what it must
    # account.py's --create-infra path (create_bucket, create_role ...) is the administrator's, not in this policy
    admin = {a for a in called if a.split(":")[1].startswith(("CreateBucket", "CreateRole", "Put", "UpdateAssume",
                                                                "CreateStack", "UpdateStack"))} - {"s3:PutObject"}
    called -= admin
    missing = {a for a in called if a not in allowed}
    assert not missing, missing


def test_a_second_regions_stack_is_told_that_role_names_are_global(moto_bare):
    from smjobs.aws.context import AwsContext

    first = runner.invoke(app, ["infra", "deploy", "--region", "us-east-1"])
    assert first.exit_code == 0, first.output
    again = runner.invoke(app, ["infra", "deploy", "--region", "us-east-1"])  # this region's own stack: an update
    assert again.exit_code == 0, again.output
    europe = AwsContext.create(region="eu-west-1")
    second = runner.invoke(app, ["infra", "deploy", "--region", "eu-west-1"], terminal_width=300)
    assert second.exit_code == 1, second.output
    said = " ".join(second.output.split())
    assert "IAM role names are global" in said and "--role-name smjobs-sagemaker-execution-eu-west-1" in said
    assert "--role-arn arn:aws:iam::" in said
    with pytest.raises(ClientError):  # refused before CloudFormation was asked for anything
        europe.client("cloudformation").describe_stacks(StackName="smjobs")
    fixed = runner.invoke(app, ["infra", "deploy", "--region", "eu-west-1", "--role-name",
                                "smjobs-sagemaker-execution-eu-west-1"])
    assert fixed.exit_code == 0, fixed.output
    assert stack.outputs(europe.client("cloudformation"))["RoleArn"].endswith(":role/smjobs-sagemaker-execution-eu-west-1")
