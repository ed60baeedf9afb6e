"""spec -> TrainingRequest: the plain data that is submitted, run locally, printed by --dry-run and tested.

``build_request`` is a pure function: no AWS call, no SDK import. The request carries the CreateTrainingJob
request that ``smjobs submit`` sends as it is (with boto3), and the keyword arguments for SDK v2's
``sagemaker.pytorch.PyTorch`` that make that SDK send the same request (``to_estimator``; a test compares both).
Values only AWS can supply (role, default bucket) show as ``<role>`` / ``<bucket>`` until resolved.
"""

from __future__ import annotations

import datetime as _dt
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from smjobs import catalog
from smjobs.spec.hyperparameters import to_estimator_value, to_wire
from smjobs.spec.job import ENTRY_POINTS_DIR, JobSpec

from smjobs_runtime import CHECKPOINT_DIR_ENV, DISTRIBUTION_ENV, TRACKING_ENV

UNRESOLVED_BUCKET = "<bucket>"
UNRESOLVED_ROLE = "<role>"
DEFAULT_REGION = "us-east-1"
JOB_NAME_SUFFIX_CHARS = len("-20260101-000000")
CONTAINER_LOG_LEVEL = 20  # logging.INFO, the SDK's default


class RequestData:
    """What every request built here shares: printable as plain data, and resolved once role and bucket are."""

    role_arn: str
    bucket: str

    @property
    def resolved(self) -> bool:
        return self.role_arn != UNRESOLVED_ROLE and self.bucket != UNRESOLVED_BUCKET

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False, width=100)


@dataclass(frozen=True)
class TrainingRequest(RequestData):
    """Everything needed to create one training job, as plain data."""

    job_name: str
    region: str
    role_arn: str
    """The execution role, or ``<role>`` before it is resolved."""
    bucket: str
    """Bucket for code and default output, or ``<bucket>`` before it is resolved."""
    source_dir: str
    entry_point: str
    estimator: dict[str, Any]
    """Keyword arguments for ``sagemaker.pytorch.PyTorch`` (without role and session)."""
    inputs: dict[str, dict[str, Any]]
    """Channels for ``fit()``: name -> uri, input_mode, s3_distribution, content_type."""
    processes_per_host: int
    world_size: int
    create_training_job: dict[str, Any] = field(default_factory=dict)
    """The CreateTrainingJob request: what ``submit`` sends, and what the estimator makes SDK v2 send."""
    instance_preferences: tuple[dict[str, Any], ...] = ()
    """``ResourceConfig.InstancePreferences`` ({InstanceType, InstanceCount}, most preferred first), in place of a
    single type and count in the request (``to_estimator`` puts them into v2's call); empty for one type."""

    @property
    def code_uri(self) -> str:
        """Where the code archive goes (``sagemaker_submit_directory``, or the ``code`` channel under network
        isolation): the job's own prefix in the bucket, as the SDK placed it."""
        return f"s3://{self.bucket}/{self.job_name}/source/sourcedir.tar.gz"

    @property
    def strategy_settings(self) -> dict[str, Any]:
        """The distribution settings the job's environment carries to the script (``smjobs_runtime.distribution()``)."""
        return json.loads(self.estimator["environment"][DISTRIBUTION_ENV])


def unique_job_name(base: str, now: _dt.datetime | None = None) -> str:
    """``base`` plus a UTC timestamp, the way the SDK names jobs (``name-YYYYMMDD-HHMMSS``)."""
    now = now or _dt.datetime.now(_dt.timezone.utc)
    return f"{base}-{now:%Y%m%d-%H%M%S}"


def processes_per_host(spec: JobSpec) -> int:
    """The strategy's setting, else the instance's GPU count (1 for an unknown type)."""
    if spec.distribution.processes_per_host is not None:
        return spec.distribution.processes_per_host
    instance = catalog.instances().get(spec.compute.instance_type)
    return instance.gpu_count if instance else 1


def source_dir(spec: JobSpec) -> Path:
    return Path(spec.source_dir).resolve() if spec.source_dir else ENTRY_POINTS_DIR


def script_hyperparameters(spec: JobSpec) -> dict[str, Any]:
    """Hyperparameters as handed to the SDK: the user's own (lists/dicts as JSON text), which become the script's
    ``--key value`` arguments, plus the processes per host for the launcher (``sagemaker_*`` keys are not passed)."""
    hps = {key: to_estimator_value(value) for key, value in spec.hyperparameters.items()}
    hps["sagemaker_mpi_num_of_processes_per_host"] = processes_per_host(spec)
    return hps


def job_environment(spec: JobSpec) -> dict[str, str]:
    """The container's environment: the user's variables plus the strategy's settings as JSON (never flags), and the
    checkpoint folder when it is not SageMaker's default."""
    env = dict(spec.environment)
    env[DISTRIBUTION_ENV] = json.dumps(spec.distribution.script_settings(), separators=(",", ":"))
    if spec.checkpoint_local_path != JobSpec.model_fields["checkpoint_local_path"].default:
        env[CHECKPOINT_DIR_ENV] = spec.checkpoint_local_path
    return env


def tracking_environment(spec: JobSpec, job_name: str) -> dict[str, str]:
    """``tracking.mlflow`` as the script reads it (``smjobs_runtime.start_tracking``): the server (a SageMaker
    MLflow ARN is a tracking URI to the sagemaker-mlflow plugin), the experiment (default: the spec's name) and the
    run's name (default: the job's)."""
    if spec.tracking is None:
        return {}
    mlflow = spec.tracking.mlflow
    settings = {"tracking_uri": mlflow.tracking_server_arn or mlflow.tracking_uri,
                "experiment": mlflow.experiment or spec.name, "run_name": mlflow.run_name or job_name}
    return {TRACKING_ENV: json.dumps(settings, separators=(",", ":"))}


def mlflow_config(spec: JobSpec, job_name: str) -> dict[str, str] | None:
    """CreateTrainingJob's MlflowConfig, for SageMaker managed MLflow (``tracking.mlflow.tracking_server_arn``)."""
    if spec.tracking is None or not spec.tracking.mlflow.tracking_server_arn:
        return None
    mlflow = spec.tracking.mlflow
    return {"MlflowResourceArn": mlflow.tracking_server_arn, "MlflowExperimentName": mlflow.experiment or spec.name,
            "MlflowRunName": mlflow.run_name or job_name}


def training_image(spec: JobSpec, region: str) -> str | None:
    """The job's image: ``compute.image_uri`` when the spec names one, else the one the SDK picks: SMP v2 jobs
    run in smdistributed-modelparallel, the rest in SageMaker's PyTorch training image of framework_version
    (pytorch-training, or the Amazon Linux 2023 ``pytorch`` from 2.11)."""
    if spec.compute.image_uri:
        return spec.compute.image_uri
    fw = catalog.frameworks()
    if spec.distribution.type == "smp_v2":
        return fw.smp_v2_image_uri(spec.framework_version, region, spec.compute.instance_type)
    return fw.image_uri(spec.framework_version, spec.py_version, region)


MANAGED_TAG = ("smjobs:managed-by", "smjobs")
SPEC_TAG = "smjobs:spec"


def job_tags(spec: JobSpec) -> list[dict[str, str]]:
    """smjobs' two tags, then the spec's (which may not redefine them: rules_job refuses the ``smjobs:`` prefix)."""
    tags = {MANAGED_TAG[0]: MANAGED_TAG[1], SPEC_TAG: spec.name, **spec.tags}
    return [{"Key": k, "Value": v} for k, v in tags.items()]


def build_request(
    spec: JobSpec,
    *,
    job_name: str | None = None,
    region: str | None = None,
    bucket: str | None = None,
    role_arn: str | None = None,
) -> TrainingRequest:
    """Turn a (validated) spec into the request. Pure: the same inputs give the same request."""
    region = region or spec.region or DEFAULT_REGION
    bucket = bucket or UNRESOLVED_BUCKET
    role_arn = role_arn or spec.role_arn or UNRESOLVED_ROLE
    job_name = job_name or unique_job_name(spec.name)
    compute, security = spec.compute, spec.security
    output_path = spec.output_path or f"s3://{bucket}/"
    hps = script_hyperparameters(spec)
    ppn = processes_per_host(spec)

    estimator: dict[str, Any] = {
        "entry_point": spec.entry_point,
        "source_dir": str(source_dir(spec)),
        "framework_version": spec.framework_version,
        "py_version": spec.py_version,
        "instance_type": compute.instance_type,
        "instance_count": compute.instance_count,
        "volume_size": compute.volume_size_gb,
        "max_run": compute.max_run_s,
        "use_spot_instances": compute.use_spot,
        "hyperparameters": hps,
        "distribution": spec.distribution.distribution(ppn),
        "output_path": output_path,
        "code_location": f"s3://{bucket}",
        "enable_network_isolation": security.network_isolation,
        "encrypt_inter_container_traffic": security.encrypt_inter_container_traffic,
        "enable_sagemaker_metrics": True,
        "disable_profiler": True,
        "debugger_hook_config": False,
        "environment": {**job_environment(spec), **tracking_environment(spec, job_name)},
    }
    # every job carries smjobs' tags (`smjobs list` finds the project's jobs by them) and the spec's own
    estimator["tags"] = job_tags(spec)
    # Optional collections are left out when empty: the SDK would send empty ones.
    if spec.metric_definitions:
        estimator["metric_definitions"] = [{"Name": m.name, "Regex": m.regex} for m in spec.metric_definitions]
    if compute.use_spot and compute.max_wait_s is not None:
        estimator["max_wait"] = compute.max_wait_s
    if spec.checkpoint_s3_uri:
        estimator["checkpoint_s3_uri"] = spec.checkpoint_s3_uri
        estimator["checkpoint_local_path"] = spec.checkpoint_local_path
    if security.subnets:
        estimator["subnets"] = list(security.subnets)
    if security.security_group_ids:
        estimator["security_group_ids"] = list(security.security_group_ids)
    if security.volume_kms_key:
        estimator["volume_kms_key"] = security.volume_kms_key
    if security.output_kms_key:
        estimator["output_kms_key"] = security.output_kms_key

    inputs = {
        name: {k: v for k, v in channel.model_dump().items() if v is not None}
        for name, channel in spec.inputs.items()
    }
    request = TrainingRequest(
        job_name=job_name,
        region=region,
        role_arn=role_arn,
        bucket=bucket,
        source_dir=str(source_dir(spec)),
        entry_point=spec.entry_point,
        estimator=estimator,
        inputs=inputs,
        processes_per_host=ppn,
        world_size=ppn * compute.instance_count,
        instance_preferences=tuple({"InstanceType": p.instance_type, "InstanceCount": p.instance_count}
                                   for p in compute.instance_preferences),
    )
    return _with_create_training_job(request, spec)


def _with_create_training_job(request: TrainingRequest, spec: JobSpec) -> TrainingRequest:
    est = request.estimator
    image = training_image(spec, request.region)
    code_uri = request.code_uri
    isolated = est["enable_network_isolation"]
    sdk_hps = {
        # With network isolation the container cannot fetch the code: the SDK mounts it as a channel.
        "sagemaker_submit_directory": "/opt/ml/input/data/code/sourcedir.tar.gz" if isolated else code_uri,
        "sagemaker_program": request.entry_point,
        "sagemaker_container_log_level": CONTAINER_LOG_LEVEL,
        "sagemaker_job_name": request.job_name,
        "sagemaker_region": request.region,
        **spec.distribution.sdk_hyperparameters(spec.compute.instance_type),
    }
    algorithm: dict[str, Any] = {"TrainingInputMode": "File", "TrainingImage": image or "<no image>"}
    if "metric_definitions" in est:
        algorithm["MetricDefinitions"] = est["metric_definitions"]
    algorithm["EnableSageMakerMetricsTimeSeries"] = est["enable_sagemaker_metrics"]
    output: dict[str, Any] = {"S3OutputPath": est["output_path"]}
    if "output_kms_key" in est:
        output["KmsKeyId"] = est["output_kms_key"]
    stopping: dict[str, Any] = {"MaxRuntimeInSeconds": est["max_run"]}
    if "max_wait" in est:
        stopping["MaxWaitTimeInSeconds"] = est["max_wait"]
    resources: dict[str, Any] = {"VolumeSizeInGB": est["volume_size"]}
    if request.instance_preferences:  # the service picks one: InstanceType and InstanceCount must be absent
        resources["InstancePreferences"] = [dict(p) for p in request.instance_preferences]
    else:
        resources.update(InstanceCount=est["instance_count"], InstanceType=est["instance_type"])
    if "volume_kms_key" in est:
        resources["VolumeKmsKeyId"] = est["volume_kms_key"]
    ctj: dict[str, Any] = {
        "AlgorithmSpecification": algorithm,
        "OutputDataConfig": output,
        "TrainingJobName": request.job_name,
        "StoppingCondition": stopping,
        "ResourceConfig": resources,
        "RoleArn": request.role_arn,
        "HyperParameters": {k: to_wire(v) for k, v in {**est["hyperparameters"], **sdk_hps}.items()},
    }
    channels = []
    for name, channel in request.inputs.items():
        uri = channel["uri"]
        data_type = channel.get("s3_data_type", "S3Prefix")
        if not uri.startswith("s3://"):  # a local directory (or manifest's files), uploaded at submit as a prefix
            uri, data_type = f"s3://{request.bucket}/{request.job_name}/input/{name}", "S3Prefix"
        entry: dict[str, Any] = {
            "DataSource": {
                "S3DataSource": {
                    "S3DataType": data_type,
                    "S3Uri": uri,
                    "S3DataDistributionType": channel["s3_distribution"],
                }
            },
            "InputMode": channel["input_mode"],
            "ChannelName": name,
        }
        if "content_type" in channel:
            entry["ContentType"] = channel["content_type"]
        channels.append(entry)
    if isolated:
        channels.append({
            "DataSource": {
                "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": code_uri, "S3DataDistributionType": "FullyReplicated"}
            },
            "ChannelName": "code",
        })
    if channels:
        ctj["InputDataConfig"] = channels
    ctj["Environment"] = est["environment"]
    if "tags" in est:
        ctj["Tags"] = est["tags"]
    if "subnets" in est or "security_group_ids" in est:
        ctj["VpcConfig"] = {"Subnets": est.get("subnets", []), "SecurityGroupIds": est.get("security_group_ids", [])}
    if est["enable_network_isolation"]:
        ctj["EnableNetworkIsolation"] = True
    if est["encrypt_inter_container_traffic"]:
        ctj["EnableInterContainerTrafficEncryption"] = True
    if est["use_spot_instances"]:
        ctj["EnableManagedSpotTraining"] = True
    if "checkpoint_s3_uri" in est:
        ctj["CheckpointConfig"] = {"S3Uri": est["checkpoint_s3_uri"], "LocalPath": est["checkpoint_local_path"]}
    ctj["ProfilerConfig"] = {"DisableProfiler": True}  # disable_profiler=True; the debugger hook is off too
    if (mlflow := mlflow_config(spec, request.job_name)) is not None:
        ctj["MlflowConfig"] = mlflow
    return TrainingRequest(**{**asdict(request), "create_training_job": ctj})
