"""The submission edge of tuning jobs: a TuningRequest becomes the SDK's ``HyperparameterTuner`` around the same
``PyTorch`` estimator a training job uses, started with ``fit(wait=False)``; and a tuning job's trials, objective
values and cost so far, read back (``smjobs tune-status``).

The CreateHyperParameterTuningJob request is checked against botocore's service model as it is sent.
"""

from __future__ import annotations

import datetime as _dt
import tempfile
from pathlib import Path
from typing import Any

from smjobs import catalog
from smjobs.aws.context import AwsContext
from smjobs.aws.submit import build_estimator, guard, sagemaker_session, training_inputs
from smjobs.request import source
from smjobs.tuning.request import TuningRequest


def _ranges(ranges: dict[str, dict[str, Any]]) -> dict:
    from sagemaker.tuner import CategoricalParameter, ContinuousParameter, IntegerParameter

    out = {}
    for name, r in ranges.items():
        if r["type"] == "categorical":
            out[name] = CategoricalParameter(r["values"])
        elif r["type"] == "integer":
            out[name] = IntegerParameter(r["min"], r["max"], scaling_type=r["scaling"])
        else:
            out[name] = ContinuousParameter(r["min"], r["max"], scaling_type=r["scaling"])
    return out


def build_tuner(request: TuningRequest, estimator) -> Any:
    """The SDK's tuner for ``request``, every argument from the request."""
    from sagemaker.tuner import (
        HyperbandStrategyConfig,
        HyperparameterTuner,
        InstanceConfig,
        StrategyConfig,
        TuningJobCompletionCriteriaConfig,
        WarmStartConfig,
        WarmStartTypes,
    )

    config = request.create_tuning_job["HyperParameterTuningJobConfig"]
    kwargs = dict(request.tuner)
    if "StrategyConfig" in config:
        band = config["StrategyConfig"]["HyperbandStrategyConfig"]
        kwargs["strategy_config"] = StrategyConfig(HyperbandStrategyConfig(min_resource=band["MinResource"],
                                                                           max_resource=band["MaxResource"]))
    if "TuningJobCompletionCriteria" in config:
        criteria = config["TuningJobCompletionCriteria"]
        kwargs["completion_criteria_config"] = TuningJobCompletionCriteriaConfig(
            target_objective_metric_value=criteria.get("TargetObjectiveMetricValue"),
            max_number_of_training_jobs_not_improving=criteria.get("BestObjectiveNotImproving", {}).get(
                "MaxNumberOfTrainingJobsNotImproving"),
            complete_on_convergence=criteria.get("ConvergenceDetected", {}).get("CompleteOnConvergence") == "Enabled")
    if "WarmStartConfig" in request.create_tuning_job:
        warm = request.create_tuning_job["WarmStartConfig"]
        kwargs["warm_start_config"] = WarmStartConfig(WarmStartTypes(warm["WarmStartType"]), parents={
            p["HyperParameterTuningJobName"] for p in warm["ParentHyperParameterTuningJobs"]})
    tuner = HyperparameterTuner(estimator, hyperparameter_ranges=_ranges(request.ranges), **kwargs)
    if request.instance_configs:
        tuner.override_resource_config(instance_configs=[InstanceConfig(**c) for c in request.instance_configs])
    return tuner


def submit_tuning(request: TuningRequest, aws: AwsContext) -> str:
    """Upload local channels and the code, and start the tuning job without waiting; return its name."""
    training = request.training
    if not training.resolved:
        raise ValueError("the request's role and bucket are unresolved; resolve them first")
    session = sagemaker_session(aws, training.bucket)
    guard(session.sagemaker_client, "CreateHyperParameterTuningJob")
    with tempfile.TemporaryDirectory(prefix="smjobs-tuning-") as tmp:
        inputs = training_inputs(session, training, Path(tmp))
        staged = source.stage(source.manifest_for(training), Path(tmp) / "source")
        tuner = build_tuner(request, build_estimator(training, session, staged))
        tuner.fit(inputs or None, job_name=request.job_name, wait=False, include_cls_metadata=False)
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
