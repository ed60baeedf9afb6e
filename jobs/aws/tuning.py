"""Tuning jobs on SageMaker: the CreateHyperParameterTuningJob request the dry run prints, sent as it is with
boto3 after the trials' code and local channels are uploaded (checked against botocore's service model as it is
sent); and a tuning job's trials, objective values and cost so far, read back (``smjobs tune-status``).
"""

from __future__ import annotations

import datetime as _dt
import tempfile
from pathlib import Path
from typing import Any

from smjobs import catalog
from smjobs.aws import upload
from smjobs.aws.context import AwsContext
from smjobs.aws.submit import guard
from smjobs.checks import service_model
from smjobs.errors import SpecError
from smjobs.request import source
from smjobs.tuning.request import TuningRequest

OPERATION = "CreateHyperParameterTuningJob"


def submit_tuning(request: TuningRequest, aws: AwsContext) -> str:
    """Upload the trials' code archive and local channels to the URIs the request names, then send
    CreateHyperParameterTuningJob as it is with boto3; return the tuning job's name."""
    training = request.training
    if not training.resolved:
        raise ValueError("the request's role and bucket are unresolved; resolve them first")
    sagemaker = aws.client("sagemaker")
    guard(sagemaker, OPERATION)
    problems = service_model.check(request.create_tuning_job, OPERATION)
    if problems:
        raise SpecError(problems)
    with tempfile.TemporaryDirectory(prefix="smjobs-tuning-") as tmp:
        upload.upload_job_files(aws.client("s3"), training, source.manifest_for(training), Path(tmp))
    sagemaker.create_hyper_parameter_tuning_job(**request.create_tuning_job)
    return request.job_name


def _trials(client, name: str) -> list[dict]:
    trials, kwargs = [], {"HyperParameterTuningJobName": name, "MaxResults": 100}
    while True:
        page = client.list_training_jobs_for_hyper_parameter_tuning_job(**kwargs)
        trials += page["TrainingJobSummaries"]
        if not page.get("NextToken"):
            return trials
        kwargs["NextToken"] = page["NextToken"]


def _seconds(job: dict, now: _dt.datetime) -> float:
    """Billable seconds: as SageMaker reports them once a trial ends, else the time since it started."""
    if job.get("BillableTimeInSeconds"):
        return float(job["BillableTimeInSeconds"])
    start, end = job.get("TrainingStartTime"), job.get("TrainingEndTime") or now
    return max(0.0, (end - start).total_seconds()) if isinstance(start, _dt.datetime) else 0.0


def tuning_status(aws: AwsContext, name: str, now: _dt.datetime | None = None) -> dict[str, Any]:
    """The tuning job, its trials (status, objective, hyperparameters, cost so far) and its best trial."""
    client = aws.client("sagemaker")
    job = client.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)
    config = job["HyperParameterTuningJobConfig"]
    objective = config.get("HyperParameterTuningJobObjective", {})
    now = now or _dt.datetime.now(_dt.timezone.utc)
    prices, rows, total = catalog.prices(), [], 0.0
    for trial in _trials(client, name):
        detail = client.describe_training_job(TrainingJobName=trial["TrainingJobName"])
        resources = detail.get("ResourceConfig", {})
        price = prices.price(resources.get("InstanceType", ""), aws.region)
        seconds = _seconds(detail, now)
        usd = price.usd_per_hour * resources.get("InstanceCount", 1) * seconds / 3600 if price else None
        if detail.get("EnableManagedSpotTraining") and usd is not None and detail.get("BillableTimeInSeconds"):
            usd = price.usd_per_hour * resources.get("InstanceCount", 1) * detail["BillableTimeInSeconds"] / 3600
        total += usd or 0.0
        metric = trial.get("FinalHyperParameterTuningJobObjectiveMetric", {})
        rows.append({"name": trial["TrainingJobName"], "status": trial.get("TrainingJobStatus"),
                     "objective": metric.get("Value"), "hyperparameters": trial.get("TunedHyperParameters", {}),
                     "instances": f"{resources.get('InstanceCount')} x {resources.get('InstanceType')}",
                     "seconds": seconds, "usd": usd})
    scored = [r for r in rows if r["objective"] is not None]
    pick = min if objective.get("Type", "Minimize") == "Minimize" else max
    best = pick(scored, key=lambda r: r["objective"]) if scored else None
    return {"name": name, "status": job.get("HyperParameterTuningJobStatus"), "strategy": config.get("Strategy"),
            "objective": f"{objective.get('Type', '')} {objective.get('MetricName', '')}".strip(),
            "counters": job.get("TrainingJobStatusCounters", {}), "trials": rows, "usd_so_far": total,
            "best": best}
