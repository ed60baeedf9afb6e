"""infra: the bucket and the execution role are created once, brought up to date after, and least-privilege."""

from __future__ import annotations

import json
import urllib.parse

from smjobs.infra import ensure_bucket, ensure_execution_role, execution_role_policy


def test_ensure_bucket_is_idempotent_and_locked_down(moto_aws):
    s3 = moto_aws.client("s3")
    for _ in range(2):
        assert ensure_bucket(s3, "proj-bucket", "us-east-1") == "proj-bucket"
    assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == ["proj-bucket"]
    block = s3.get_public_access_block(Bucket="proj-bucket")["PublicAccessBlockConfiguration"]
    assert all(block[k] for k in ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets"))
    rule = s3.get_bucket_encryption(Bucket="proj-bucket")["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"


def test_ensure_bucket_outside_us_east_1_and_with_kms(moto_aws):
    s3 = moto_aws.session.client("s3", region_name="eu-west-1")
    ensure_bucket(s3, "eu-bucket", "eu-west-1", kms_key_id="alias/data")
    assert s3.get_bucket_location(Bucket="eu-bucket")["LocationConstraint"] == "eu-west-1"
    rule = s3.get_bucket_encryption(Bucket="eu-bucket")["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert rule["ApplyServerSideEncryptionByDefault"] == {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": "alias/data"}


def _document(value):
    return json.loads(urllib.parse.unquote(value)) if isinstance(value, str) else value


def test_ensure_execution_role_is_idempotent(moto_aws):
    iam = moto_aws.client("iam")
    first = ensure_execution_role(iam, "proj-bucket", account_id="123456789012")
    second = ensure_execution_role(iam, "proj-bucket", account_id="123456789012", extra_buckets=("data-bucket",))
    assert first == second
    roles = [r["RoleName"] for r in iam.list_roles()["Roles"]]
    assert roles.count("smjobs-sagemaker-execution") == 1
    role = iam.get_role(RoleName="smjobs-sagemaker-execution")["Role"]
    trust = _document(role["AssumeRolePolicyDocument"])["Statement"][0]
    assert trust["Principal"] == {"Service": "sagemaker.amazonaws.com"}
    assert trust["Condition"] == {"StringEquals": {"aws:SourceAccount": "123456789012"}}
    assert iam.list_role_policies(RoleName="smjobs-sagemaker-execution")["PolicyNames"] == ["smjobs-training-job"]
    policy = _document(iam.get_role_policy(RoleName="smjobs-sagemaker-execution", PolicyName="smjobs-training-job")["PolicyDocument"])
    objects = next(s for s in policy["Statement"] if s["Sid"] == "ProjectBucketObjects")
    assert objects["Resource"] == ["arn:aws:s3:::data-bucket/*", "arn:aws:s3:::proj-bucket/*"]  # updated in place


def test_policy_is_least_privilege():
    policy = execution_role_policy("proj-bucket")
    for statement in policy["Statement"]:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        assert not any(a.endswith(":*") or a == "*" for a in actions), statement
        if any(a.startswith("s3:") for a in actions):
            assert all("proj-bucket" in r for r in statement["Resource"]), statement
    sids = {s["Sid"] for s in policy["Statement"]}
    assert "TrainingJobVpcInterfaces" not in sids and "TrainingJobKmsKeys" not in sids
    with_vpc = execution_role_policy("proj-bucket", vpc=True, kms_key_arns=("arn:aws:kms:us-east-1:123456789012:key/k",))
    assert {"TrainingJobVpcInterfaces", "TrainingJobKmsKeys"} <= {s["Sid"] for s in with_vpc["Statement"]}
