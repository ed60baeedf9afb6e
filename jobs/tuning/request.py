"""spec + prepared space -> TuningRequest: the plain data ``smjobs tune --dry-run`` prints and ``submit_tuning`` sends.

Pure, like ``build_request``: the trial's TrainingRequest (the estimator the SDK's ``HyperparameterTuner`` wraps),
the tuner's keyword arguments, the narrowed ranges, and the CreateHyperParameterTuningJob request the SDK will send
for them (predicted here; the tests compare it with what the SDK sends). Only ``sagemaker_tuning`` touches the SDK.
"""

from __future__ import annotations

import datetime as _dt
import json
from dataclasses import asdict, dataclass, field
from typing import Any

import yaml

from smjobs.request.training import TrainingRequest, build_request
from smjobs.spec.job import JobSpec
from smjobs.spec.tuning import tuning_name
from smjobs.tuning.space import Estimate
from smjobs.tuning.trials import Space, trial_data

from smjobs_runtime import TRACKING_ENV

SCALING = {"auto": "Auto", "linear": "Linear", "log": "Logarithmic", "reverse_log": "ReverseLogarithmic"}
WARM_START = {"identical_data_and_algorithm": "IdenticalDataAndAlgorithm", "transfer_learning": "TransferLearning"}
ESTIMATOR_METADATA = {"sagemaker_estimator_class_name": '"PyTorch"', "sagemaker_estimator_module": '"sagemaker.pytorch.estimator"'}
"""Static hyperparameters the SDK adds to every tuning job of a PyTorch estimator."""
PARENT_RUN_PENDING = "<created at submit>"
"""The trials' ``parent_run_id`` in the dry run: the tuning job's own MLflow run exists only once it is submitted
(``smjobs.aws.tuning.start_parent_run``), as the role and bucket are resolved only then."""


@dataclass(frozen=True)
class TuningRequest:
    job_name: str
    training: TrainingRequest
    """One trial's job: the estimator the tuner wraps."""
    tuner: dict[str, Any]
    """Keyword arguments of ``HyperparameterTuner`` (without the estimator and the ranges)."""
    ranges: dict[str, dict[str, Any]]
    """The narrowed search space: name -> {type, min, max, scaling} or {type, values}."""
    instance_configs: tuple[dict[str, Any], ...]
    removed: tuple[str, ...]
    """What narrowing removed, and why."""
    estimate: dict[str, Any]
    create_tuning_job: dict[str, Any] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    tracking: dict[str, Any] | None = None
    """The tuning job's own MLflow run, created at submit (tracking_uri, experiment, run_name); each trial's run is
    its child. None without a ``tracking`` section."""

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["training"] = {k: out["training"][k] for k in ("job_name", "source_dir", "entry_point", "processes_per_host", "world_size")}
        return out

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False, width=100)


def trial_spec(spec: JobSpec) -> JobSpec:
    """The job each trial runs: the spec without its tuning section, with the objective among its metrics."""
    return JobSpec.model_validate(trial_data(spec, {}))


def _range(p) -> dict[str, Any]:
    if p.type == "categorical":
        return {"type": "categorical", "values": list(p.values)}
    low, high = (int(p.min), int(p.max)) if p.type == "integer" else (p.min, p.max)
    return {"type": p.type, "min": low, "max": high, "scaling": SCALING[p.scaling]}


def _wire_ranges(ranges: dict[str, dict[str, Any]]) -> dict[str, list]:
    """ParameterRanges as the SDK writes them for a framework estimator (categorical values JSON-encoded)."""
    out: dict[str, list] = {"ContinuousParameterRanges": [], "CategoricalParameterRanges": [], "IntegerParameterRanges": []}
    for name, r in ranges.items():
        if r["type"] == "categorical":
            # the SDK makes each value a string, then JSON-encodes it: 16 -> '"16"' (the script reads "16")
            out["CategoricalParameterRanges"].append({"Name": name, "Values": [json.dumps(str(v)) for v in r["values"]]})
        else:
            key = "ContinuousParameterRanges" if r["type"] == "continuous" else "IntegerParameterRanges"
            out[key].append({"Name": name, "MinValue": str(r["min"]), "MaxValue": str(r["max"]), "ScalingType": r["scaling"]})
    return out


def build_tuning_request(spec: JobSpec, space: Space, estimate: Estimate, *, job_name: str | None = None,
                         region: str | None = None, bucket: str | None = None, role_arn: str | None = None,
                         now: _dt.datetime | None = None) -> TuningRequest:
    t = spec.tuning
    now = now or _dt.datetime.now(_dt.timezone.utc)
    name = job_name or f"{tuning_name(spec)}-{now:%y%m%d-%H%M%S}"
    training = build_request(trial_spec(spec), job_name=name, region=region, bucket=bucket, role_arn=role_arn)
    ranges = {n: _range(p) for n, p in space.parameters.items()}
    grid_all = t.strategy == "Grid" and not estimate.capped and t.max_trials is None
    tuner: dict[str, Any] = {
        "objective_metric_name": t.objective.metric, "objective_type": t.objective.goal.capitalize(),
        "metric_definitions": training.estimator.get("metric_definitions", []), "strategy": t.strategy,
        "max_jobs": None if grid_all else estimate.trials, "max_parallel_jobs": t.max_parallel_trials,
        "early_stopping_type": t.early_stopping.capitalize(), "base_tuning_job_name": tuning_name(spec),
    }
    if t.random_seed is not None:
        tuner["random_seed"] = t.random_seed
    if t.max_runtime_s is not None:
        tuner["max_runtime_in_seconds"] = t.max_runtime_s
    configs = tuple({"instance_type": k, "instance_count": c, "volume_size": spec.compute.volume_size_gb}
                    for k, c in space.configs) if t.instance_configs else ()

    ctj = training.create_training_job
    tuned = set(ranges)
    definition: dict[str, Any] = {
        "StaticHyperParameters": {**{k: v for k, v in ctj["HyperParameters"].items() if k not in tuned}, **ESTIMATOR_METADATA},
        "RoleArn": ctj["RoleArn"], "OutputDataConfig": ctj["OutputDataConfig"], "StoppingCondition": ctj["StoppingCondition"],
        "AlgorithmSpecification": {k: v for k, v in ctj["AlgorithmSpecification"].items()
                                   if k in ("TrainingInputMode", "MetricDefinitions", "TrainingImage")},
    }
    if configs:
        definition["HyperParameterTuningResourceConfig"] = {"InstanceConfigs": [
            {"InstanceCount": c["instance_count"], "InstanceType": c["instance_type"], "VolumeSizeInGB": c["volume_size"]}
            for c in configs]}
    else:
        definition["ResourceConfig"] = ctj["ResourceConfig"]
    for key in ("InputDataConfig", "VpcConfig", "CheckpointConfig", "Environment"):
        if key in ctj:
            definition[key] = ctj[key]
    tracking = _trials_tracking(definition, spec, name)
    for key in ("EnableNetworkIsolation", "EnableInterContainerTrafficEncryption", "EnableManagedSpotTraining"):
        if ctj.get(key):
            definition[key] = ctj[key]
    wire_ranges = {k: v for k, v in _wire_ranges(ranges).items()}
    config: dict[str, Any] = {
        "Strategy": t.strategy,
        "ResourceLimits": {**({} if grid_all else {"MaxNumberOfTrainingJobs": estimate.trials}),
                           "MaxParallelTrainingJobs": t.max_parallel_trials,
                           **({"MaxRuntimeInSeconds": t.max_runtime_s} if t.max_runtime_s else {})},
        "TrainingJobEarlyStoppingType": tuner["early_stopping_type"],
        **({"RandomSeed": t.random_seed} if t.random_seed is not None else {}),
        "HyperParameterTuningJobObjective": {"Type": tuner["objective_type"], "MetricName": t.objective.metric},
        "ParameterRanges": wire_ranges,
    }
    if t.hyperband is not None:
        config["StrategyConfig"] = {"HyperbandStrategyConfig": {"MinResource": t.hyperband.min_resource,
                                                                 "MaxResource": t.hyperband.max_resource}}
    if t.completion is not None:
        criteria: dict[str, Any] = {}
        if t.completion.target is not None:
            criteria["TargetObjectiveMetricValue"] = t.completion.target
        if t.completion.trials_without_improvement is not None:
            criteria["BestObjectiveNotImproving"] = {"MaxNumberOfTrainingJobsNotImproving": t.completion.trials_without_improvement}
        criteria["ConvergenceDetected"] = {"CompleteOnConvergence": "Enabled" if t.completion.stop_on_convergence else "Disabled"}
        config["TuningJobCompletionCriteria"] = criteria
    request: dict[str, Any] = {"HyperParameterTuningJobName": name, "HyperParameterTuningJobConfig": config,
                               "TrainingJobDefinition": definition}
    if t.warm_start is not None:
        request["WarmStartConfig"] = {"WarmStartType": WARM_START[t.warm_start.type], "ParentHyperParameterTuningJobs": [
            {"HyperParameterTuningJobName": p} for p in t.warm_start.parents]}
    if "tags" in training.estimator:
        request["Tags"] = training.estimator["tags"]
    summary = {"trials": estimate.trials, "asked_trials": estimate.asked_trials, "trial_usd": estimate.trial_usd,
               "trial_hours": estimate.trial_hours, "total_usd": estimate.total_usd, "basis": estimate.basis,
               "capped_by_budget": estimate.capped, "budget_usd": t.max_usd}
    return TuningRequest(name, training, tuner, ranges, configs, tuple(str(r) for r in space.removed), summary, request,
                         space.notes, tracking)


def _trials_tracking(definition: dict[str, Any], spec: JobSpec, name: str) -> dict[str, Any] | None:
    """With a tracking section: each trial's run is a child of the tuning job's run and takes its own training
    job's name (the script reads TRAINING_JOB_NAME, which SageMaker sets), not the tuning job's; returns the
    parent run's settings."""
    if spec.tracking is None or TRACKING_ENV not in definition.get("Environment", {}):
        return None
    settings = json.loads(definition["Environment"][TRACKING_ENV])
    parent = {"tracking_uri": settings["tracking_uri"], "experiment": settings["experiment"],
              "run_name": spec.tracking.mlflow.run_name or name}
    settings.pop("run_name", None)
    settings["parent_run_id"] = PARENT_RUN_PENDING
    definition["Environment"] = {**definition["Environment"], TRACKING_ENV: json.dumps(settings, separators=(",", ":"))}
    return parent
