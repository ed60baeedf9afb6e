"""Tuning jobs on SageMaker: the CreateHyperParameterTuningJob request the dry run prints, sent as it is with
boto3 after the trials' code and local channels are uploaded (checked against botocore's service model as it is
sent); and a tuning job's trials, objective values and cost so far, read back (``smjobs tune-status``).
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
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
from smjobs.tuning.request import PARENT_RUN_PENDING, TuningRequest
from smjobs.tuning.tracking import create_parent_run

from smjobs_runtime import TRACKING_ENV

OPERATION = "CreateHyperParameterTuningJob"
log = logging.getLogger(__name__)


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
    if request.tracking is not None:
        _set_parent_run(request, start_parent_run(request))
    sagemaker.create_hyper_parameter_tuning_job(**request.create_tuning_job)
    return request.job_name


def start_parent_run(request: TuningRequest) -> str | None:
    """The tuning job's own MLflow run, which every trial's run names as its parent (SageMaker runs the trials as
    separate training jobs, so the parent is made here, before any starts): in the spec's server, tagged with the
    tuning job's name, with the search's strategy and objective as params. It stays RUNNING; the trials' runs
    carry the results. None, with a warning, when MLflow is not installed here or the server cannot be reached:
    the trials are then tracked without a parent."""
    tracking = request.tracking
    config = request.create_tuning_job["HyperParameterTuningJobConfig"]
    objective = config["HyperParameterTuningJobObjective"]
    try:
        _, run_id = create_parent_run(tracking["tracking_uri"], tracking["experiment"], tracking["run_name"], {
            "strategy": config["Strategy"], "objective": f"{objective['Type']} {objective['MetricName']}"},
            tags={"smjobs.tuning_job": request.job_name})
    except ImportError:
        log.warning("MLflow is not installed here (pip install 'smjobs[tracking]'): the trials' runs get no parent run")
        return None
    except Exception as exc:  # noqa: BLE001  (any MLflow or network failure: the tuning job goes on without it)
        log.warning("could not create the tuning job's MLflow run in %s (%s): the trials' runs get no parent run",
                    tracking["tracking_uri"], exc)
        return None
    log.info("MLflow run %s (the trials' parent) in experiment %r", run_id, tracking["experiment"])
    return run_id


def _set_parent_run(request: TuningRequest, run_id: str | None) -> None:
    """Put the parent run's id where the dry run shows PARENT_RUN_PENDING (or drop it, without a parent)."""
    environment = request.create_tuning_job["TrainingJobDefinition"]["Environment"]
    settings = json.loads(environment[TRACKING_ENV])
    if settings.get("parent_run_id") == PARENT_RUN_PENDING:
        settings.pop("parent_run_id")
        if run_id is not None:
            settings["parent_run_id"] = run_id
        environment[TRACKING_ENV] = json.dumps(settings, separators=(",", ":"))


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
