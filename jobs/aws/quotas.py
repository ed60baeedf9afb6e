"""Service Quotas before submit: a job that needs more instances than the account may run is refused here,
not after SageMaker has queued it.

SageMaker's instance quotas are named "<type> for training job usage", "<type> for spot training job usage" and
"<type> for transform job usage"; many GPU types default to 0. The names are looked up in the service's default
quota list (their codes differ per type), then the account's applied value is read by code. Instances already
taken by the account's running jobs of that type count against the quota too. A quota that cannot be read (no
permission, no such quota in the region, an emulator without Service Quotas) is said, and the submission goes on.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from botocore.exceptions import BotoCoreError, ClientError

from smjobs.errors import Problem

SERVICE_CODE = "sagemaker"
_USAGE = {"training": "training job usage", "spot": "spot training job usage", "transform": "transform job usage"}


@dataclass(frozen=True)
class QuotaReport:
    problems: list[Problem] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)


def quota_name(instance_type: str, usage: str) -> str:
    return f"{instance_type} for {_USAGE[usage]}"


def _default_quotas(client) -> dict[str, dict]:
    """Quota name -> the service's default entry (QuotaCode, Value)."""
    pages = client.get_paginator("list_aws_default_service_quotas").paginate(ServiceCode=SERVICE_CODE)
    return {quota["QuotaName"]: quota for page in pages for quota in page.get("Quotas", [])}


def _applied_value(client, quota: dict) -> float:
    try:
        return client.get_service_quota(ServiceCode=SERVICE_CODE, QuotaCode=quota["QuotaCode"])["Quota"]["Value"]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "NoSuchResourceException":
            return quota["Value"]  # never changed in this account: the default applies
        raise


def _running_instances(sagemaker, instance_type: str, usage: str) -> int:
    """Instances of ``instance_type`` that the account's jobs in progress hold (first 100 jobs)."""
    if usage == "transform":
        jobs = sagemaker.list_transform_jobs(StatusEquals="InProgress", MaxResults=100)["TransformJobSummaries"]
        described = [sagemaker.describe_transform_job(TransformJobName=j["TransformJobName"])["TransformResources"]
                     for j in jobs]
        return sum(r["InstanceCount"] for r in described if r.get("InstanceType") == instance_type)
    jobs = sagemaker.list_training_jobs(StatusEquals="InProgress", MaxResults=100)["TrainingJobSummaries"]
    total = 0
    for summary in jobs:
        job = sagemaker.describe_training_job(TrainingJobName=summary["TrainingJobName"])
        resources = job.get("ResourceConfig", {})
        if resources.get("InstanceType") == instance_type and bool(job.get("EnableManagedSpotTraining")) == (usage == "spot"):
            total += resources.get("InstanceCount", 0)
    return total


def check(aws, instance_type: str, instance_count: int, *, usage: str = "training",
          field_path: str = "compute.instance_count") -> QuotaReport:
    """Compare ``instance_count`` (plus what running jobs hold) with the account's quota for ``usage``
    ("training", "spot" or "transform")."""
    name = quota_name(instance_type, usage)
    region = aws.region
    try:
        client = aws.client("service-quotas")
        quota = _default_quotas(client).get(name)
        if quota is None:
            return QuotaReport(notices=[f"Service Quotas has no quota named {name!r} in {region}; not checked "
                                        "(the type may not be offered there)."])
        limit = _applied_value(client, quota)
        in_use = _running_instances(aws.client("sagemaker"), instance_type, usage)
    except (ClientError, BotoCoreError, KeyError) as exc:
        code = exc.response.get("Error", {}).get("Code", "") if isinstance(exc, ClientError) else ""
        hint = (" (reading it needs servicequotas:GetServiceQuota and servicequotas:ListAWSDefaultServiceQuotas)"
                if "AccessDenied" in code else "")
        return QuotaReport(notices=[f"could not read the Service Quota {name!r} in {region} ({code or exc}); going "
                                    f"on without checking it{hint}."])
    if instance_count + in_use <= limit:
        return QuotaReport()
    busy = f" and running jobs already hold {in_use}" if in_use else ""
    how = (f"request an increase in the Service Quotas console (Amazon SageMaker, {name!r}), or "
           f"`aws service-quotas request-service-quota-increase --service-code {SERVICE_CODE} --quota-code "
           f"{quota['QuotaCode']} --desired-value {instance_count + in_use} --region {region}`; or choose an instance "
           "type with quota (`smjobs plan` lists alternatives)")
    return QuotaReport(problems=[Problem(field_path, f"needs {instance_count} x {instance_type}, but the quota "
                                         f"{name!r} ({quota['QuotaCode']}) in {region} is {limit:g}{busy}.", how)])
