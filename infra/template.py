"""The CloudFormation template of smjobs' account set-up, rendered from the policy documents in ``policies``.

``infra/smjobs.cfn.yaml`` is this template as a file, for review and for deploying with any CloudFormation tool;
a test keeps it equal to ``render()``. It makes:

- the execution role SageMaker assumes for smjobs' jobs (trust with a source-account condition; permissions scoped
  to the project bucket, the jobs' log groups, the Deep Learning Container repositories of the region, and, when
  asked, the VPC network interfaces and the bucket's KMS key);
- the project bucket: public access blocked, default encryption (SSE-S3, or SSE-KMS with a key you name),
  a TLS-only bucket policy, versioning, and lifecycle rules (checkpoints, old versions, unfinished uploads);
- optionally, the VPC endpoints jobs without internet access need (S3 gateway; CloudWatch Logs, CloudWatch and STS
  interfaces).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from smjobs.infra import policies

TEMPLATE_PATH = Path(__file__).with_name("smjobs.cfn.yaml")
_PLACEHOLDER = re.compile(r"\$\{([A-Za-z0-9:]+)\}")
# Registry accounts come from the catalog, per region; a region has one or two (the SMP v2 images' own).
_IMAGE_VARS = {"ImageAccount1": "First", "ImageAccount2": "Second"}
_INTERFACE_ENDPOINTS = {"LogsEndpoint": "logs", "MonitoringEndpoint": "monitoring", "StsEndpoint": "sts"}


def _sub(value: Any) -> Any:
    """Turn every string with a ``${...}`` placeholder into Fn::Sub (registry accounts via the region's mapping)."""
    if isinstance(value, dict):
        return {k: _sub(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_sub(v) for v in value]
    if isinstance(value, str) and _PLACEHOLDER.search(value):
        used = {name: {"Fn::FindInMap": ["ImageRegistries", {"Ref": "AWS::Region"}, key]}
                for name, key in _IMAGE_VARS.items() if f"${{{name}}}" in value}
        return {"Fn::Sub": [value, used] if used else value}
    return value


def _registry_mapping() -> dict:
    from smjobs import catalog

    frameworks = catalog.frameworks()
    mapping = {}
    for region in frameworks.image_regions():
        accounts = frameworks.image_accounts(region)
        mapping[region] = {"First": accounts[0], "Second": accounts[-1]}
    return mapping


def _parameters() -> dict:
    return {
        "RoleName": {"Type": "String", "Default": policies.DEFAULT_ROLE_NAME,
                     "Description": "Name of the execution role SageMaker assumes for smjobs' jobs."},
        "KmsKeyArn": {"Type": "String", "Default": "",
                      "Description": "KMS key ARN for the bucket's default encryption; empty: SSE-S3 (AES256)."},
        "CheckpointRetentionDays": {"Type": "Number", "Default": policies.CHECKPOINT_RETENTION_DAYS, "MinValue": 1,
                                    "Description": f"Days after which objects under {policies.CHECKPOINT_PREFIX} expire."},
        "NoncurrentVersionRetentionDays": {"Type": "Number", "Default": policies.NONCURRENT_VERSION_RETENTION_DAYS,
                                           "MinValue": 1,
                                           "Description": "Days an overwritten or deleted object version is kept."},
        "AccessLogBucket": {"Type": "String", "Default": "",
                            "Description": "Bucket that receives the project bucket's server access logs; empty: none."},
        "VpcId": {"Type": "String", "Default": "",
                  "Description": "VPC of VPC-only jobs; empty: no VPC endpoints and no network-interface permissions."},
        "RouteTableIds": {"Type": "CommaDelimitedList", "Default": "",
                          "Description": "Route tables of the job subnets, for the S3 gateway endpoint."},
        "SubnetIds": {"Type": "CommaDelimitedList", "Default": "",
                      "Description": "Job subnets, for the interface endpoints (Logs, CloudWatch, STS)."},
        "SecurityGroupIds": {"Type": "CommaDelimitedList", "Default": "",
                             "Description": "Security groups of the interface endpoints (HTTPS from the job subnets)."},
        "MlflowResourceArns": {"Type": "CommaDelimitedList", "Default": "",
                               "Description": "SageMaker MLflow tracking servers or apps jobs log runs to; empty: none."},
    }


def _role() -> dict:
    scope = policies.Scope(bucket="${ProjectBucket}", partition="${AWS::Partition}", region="${AWS::Region}",
                           account_id="${AWS::AccountId}", image_accounts=tuple(f"${{{n}}}" for n in _IMAGE_VARS))
    statements: list[Any] = policies.job_statements(scope)
    statements.append({"Fn::If": ["VpcJobs", policies.vpc_statement(), {"Ref": "AWS::NoValue"}]})
    statements.append({"Fn::If": ["UseKms", policies.kms_statement([{"Ref": "KmsKeyArn"}]), {"Ref": "AWS::NoValue"}]})
    statements.append({"Fn::If": ["UseMlflow", {**policies.mlflow_statement([]), "Resource": {"Ref": "MlflowResourceArns"}},
                                  {"Ref": "AWS::NoValue"}]})
    return {
        "Type": "AWS::IAM::Role",
        "Properties": {
            "RoleName": {"Ref": "RoleName"},
            "Description": "SageMaker training and transform jobs launched by smjobs",
            "AssumeRolePolicyDocument": policies.trust_policy("${AWS::AccountId}"),
            "Policies": [{"PolicyName": policies.POLICY_NAME,
                          "PolicyDocument": {"Version": "2012-10-17", "Statement": statements}}],
            "Tags": [{"Key": "managed-by", "Value": "smjobs"}],
        },
    }


def _bucket() -> dict:
    kms = {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": {"Ref": "KmsKeyArn"}}
    rules = policies.lifecycle_rules({"Ref": "CheckpointRetentionDays"}, {"Ref": "NoncurrentVersionRetentionDays"})
    return {
        "Type": "AWS::S3::Bucket",
        "DeletionPolicy": "Retain",  # models and outputs outlive the stack
        "UpdateReplacePolicy": "Retain",
        "Properties": {
            "BucketName": "smjobs-${AWS::AccountId}-${AWS::Region}",
            "PublicAccessBlockConfiguration": dict(policies.PUBLIC_ACCESS_BLOCK),
            "BucketEncryption": {"ServerSideEncryptionConfiguration": [{
                "ServerSideEncryptionByDefault": {"Fn::If": ["UseKms", kms, {"SSEAlgorithm": "AES256"}]},
                "BucketKeyEnabled": {"Fn::If": ["UseKms", True, False]},
            }]},
            "VersioningConfiguration": {"Status": "Enabled"},
            "OwnershipControls": {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]},
            "LifecycleConfiguration": {"Rules": [rule.cfn() for rule in rules]},
            "LoggingConfiguration": {"Fn::If": ["AccessLogs", {"DestinationBucketName": {"Ref": "AccessLogBucket"},
                                                               "LogFilePrefix": "smjobs-${AWS::AccountId}-${AWS::Region}/"},
                                                {"Ref": "AWS::NoValue"}]},
            "Tags": [{"Key": "managed-by", "Value": "smjobs"}],
        },
    }


def _endpoints() -> dict:
    resources: dict[str, Any] = {
        "S3GatewayEndpoint": {
            "Type": "AWS::EC2::VPCEndpoint",
            "Condition": "VpcJobs",
            "Properties": {"VpcId": {"Ref": "VpcId"}, "ServiceName": "com.amazonaws.${AWS::Region}.s3",
                           "VpcEndpointType": "Gateway", "RouteTableIds": {"Ref": "RouteTableIds"}},
        }
    }
    for name, service in _INTERFACE_ENDPOINTS.items():
        resources[name] = {
            "Type": "AWS::EC2::VPCEndpoint",
            "Condition": "VpcJobs",
            "Properties": {"VpcId": {"Ref": "VpcId"}, "ServiceName": f"com.amazonaws.${{AWS::Region}}.{service}",
                           "VpcEndpointType": "Interface", "PrivateDnsEnabled": True,
                           "SubnetIds": {"Ref": "SubnetIds"}, "SecurityGroupIds": {"Ref": "SecurityGroupIds"}},
        }
    return resources


def build() -> dict:
    """The template as data."""
    resources = {
        "ExecutionRole": _role(),
        "ProjectBucket": _bucket(),
        "ProjectBucketPolicy": {
            "Type": "AWS::S3::BucketPolicy",
            "Properties": {"Bucket": {"Ref": "ProjectBucket"},
                           "PolicyDocument": policies.bucket_policy("${ProjectBucket}", "${AWS::Partition}")},
        },
        **_endpoints(),
    }
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": "smjobs: the SageMaker execution role and project bucket (least privilege), optional VPC endpoints",
        "Parameters": _parameters(),
        "Conditions": {
            "UseKms": {"Fn::Not": [{"Fn::Equals": [{"Ref": "KmsKeyArn"}, ""]}]},
            "VpcJobs": {"Fn::Not": [{"Fn::Equals": [{"Ref": "VpcId"}, ""]}]},
            "AccessLogs": {"Fn::Not": [{"Fn::Equals": [{"Ref": "AccessLogBucket"}, ""]}]},
            "UseMlflow": {"Fn::Not": [{"Fn::Equals": [{"Fn::Join": ["", {"Ref": "MlflowResourceArns"}]}, ""]}]},
        },
        "Rules": {"VpcEndpointsNeedTheirNetwork": {
            "RuleCondition": {"Fn::Not": [{"Fn::Equals": [{"Ref": "VpcId"}, ""]}]},
            "Assertions": [{"Assert": {"Fn::Not": [{"Fn::Equals": [{"Fn::Join": ["", {"Ref": name}]}, ""]}]},
                            "AssertDescription": f"With VpcId set, {name} must name at least one."}
                           for name in ("RouteTableIds", "SubnetIds", "SecurityGroupIds")],
        }},
        "Mappings": {"ImageRegistries": _registry_mapping()},
        "Resources": _sub(resources),
        "Outputs": {
            "RoleArn": {"Description": "Execution role for smjobs' jobs", "Value": {"Fn::GetAtt": ["ExecutionRole", "Arn"]}},
            "BucketName": {"Description": "Project bucket for code, data, checkpoints and models",
                           "Value": {"Ref": "ProjectBucket"}},
        },
    }


def render() -> str:
    header = ("# Generated by `python -m smjobs.infra.template` from infra/policies.py; edit those, not this file.\n"
              "# Deploy: `smjobs infra deploy`, or any CloudFormation tool with CAPABILITY_NAMED_IAM.\n")
    return header + yaml.safe_dump(build(), sort_keys=False, width=120)


if __name__ == "__main__":
    TEMPLATE_PATH.write_text(render())
    print(TEMPLATE_PATH)
