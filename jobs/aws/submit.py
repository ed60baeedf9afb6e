"""The submission edge: the only module that imports the SageMaker SDK.

It resolves what only AWS knows (account, bucket, role), turns a TrainingRequest into a
``sagemaker.pytorch.PyTorch`` estimator and starts it with ``fit(wait=False)``, and a TransformRequest into a
``PyTorchModel`` and its ``Transformer`` (``transform(wait=False)``). Just before the SDK
sends CreateTrainingJob, a hook checks the real request against botocore's service model and stops it
if the service would reject it.
"""

from __future__ import annotations

import datetime as _dt
import os
import tarfile
import tempfile
from pathlib import Path
from typing import Any

from smjobs.aws.account import NoCredentialsError, Resolved, resolve  # noqa: F401  (the edge's callers use them here)
from smjobs.aws.context import AwsContext
from smjobs.checks import service_model
from smjobs.errors import SpecError
from smjobs.inference import batch_transform
from smjobs.request import manifests, source
from smjobs.request.training import TrainingRequest, build_request
from smjobs.spec.job import JobSpec

os.environ.setdefault("SAGEMAKER_SUPPRESS_V2_WARNING", "1")

CREATE_TRAINING_JOB_EVENT = "provide-client-params.sagemaker.CreateTrainingJob"


def resolved_request(spec: JobSpec, aws: AwsContext, resolved: Resolved, job_name: str | None = None) -> TrainingRequest:
    request = build_request(spec, job_name=job_name, region=aws.region, bucket=resolved.bucket, role_arn=resolved.role_arn)
    problems = service_model.check(request.create_training_job)
    if problems:
        raise SpecError(problems)
    return request


def sdk_config() -> dict:
    """The user's SageMaker SDK config (``sagemaker.config.load_sagemaker_config``), with the SDK's telemetry off
    unless that config turns it on: smjobs does not phone home for its users, and without internet the SDK's
    telemetry call stalls and prints a traceback."""
    from sagemaker.config import load_sagemaker_config

    config = load_sagemaker_config() or {}
    config.setdefault("SchemaVersion", "1.0")
    modules = config.setdefault("SageMaker", {}).setdefault("PythonSDK", {}).setdefault("Modules", {})
    modules.setdefault("TelemetryOptOut", True)
    return config


def sagemaker_session(aws: AwsContext, bucket: str | None = None):
    """The SDK session every submission (and the notebook-role lookup) uses: smjobs' boto3 session and config."""
    import sagemaker

    return sagemaker.Session(boto_session=aws.session, sagemaker_client=aws.client("sagemaker"), default_bucket=bucket,
                             sagemaker_config=sdk_config())


def build_estimator(request: TrainingRequest, session, staged_source: Path | None = None) -> Any:
    """The SDK estimator for ``request``: every argument comes from the request, except that the code is the staged
    archive contents (``smjobs.request.source``) when given."""
    from sagemaker.pytorch import PyTorch

    kwargs = dict(request.estimator)
    if staged_source is not None:
        kwargs["source_dir"] = str(staged_source)
    return PyTorch(role=request.role_arn, sagemaker_session=session, **kwargs)


def guard(sagemaker_client, operation: str = "CreateTrainingJob") -> None:
    """Refuse to send an ``operation`` request that botocore's service model says is invalid."""

    def check(params, **_):
        problems = service_model.check(params, operation)
        if problems:
            raise SpecError(problems)

    sagemaker_client.meta.events.register(f"provide-client-params.sagemaker.{operation}", check,
                                          unique_id=f"smjobs-service-model-guard-{operation}")



def send_instance_preferences(sagemaker_client, request: TrainingRequest) -> None:
    """SDK v2 has no parameter for ``ResourceConfig.InstancePreferences``: put the request's in place of the single
    type and count the estimator sends (first, so that the service-model guard checks the request as sent)."""
    if not request.instance_preferences:
        return

    def rewrite(params, **_):
        resources = params["ResourceConfig"]
        resources.pop("InstanceType", None)
        resources.pop("InstanceCount", None)
        resources["InstancePreferences"] = [dict(p) for p in request.instance_preferences]

    sagemaker_client.meta.events.register_first(CREATE_TRAINING_JOB_EVENT, rewrite, unique_id="smjobs-instance-preferences")


def upload_local_data(session, uri: str, bucket: str, key_prefix: str, scratch: Path) -> str:
    """Upload a local folder, or a local manifest's files (laid out by key in ``scratch``), under ``key_prefix``."""
    if manifests.is_manifest(uri):
        uri = str(manifests.materialize(uri, scratch, link=False))
    return session.upload_data(uri, bucket=bucket, key_prefix=key_prefix)


def training_inputs(session, request: TrainingRequest, scratch: Path) -> dict:
    """The job's channels as the SDK's TrainingInputs, local ones uploaded under the job's prefix."""
    from sagemaker.inputs import TrainingInput

    inputs = {}
    for name, channel in request.inputs.items():
        uri, data_type = channel["uri"], channel.get("s3_data_type", "S3Prefix")
        if not uri.startswith("s3://"):
            uri, data_type = upload_local_data(session, uri, request.bucket, f"{request.job_name}/input/{name}",
                                               scratch / "inputs" / name), "S3Prefix"
        inputs[name] = TrainingInput(uri, input_mode=channel["input_mode"], distribution=channel["s3_distribution"],
                                     content_type=channel.get("content_type"), s3_data_type=data_type)
    return inputs


def submit(request: TrainingRequest, aws: AwsContext) -> str:
    """Upload local channels, create the estimator and start the job without waiting; return its name."""
    if not request.resolved:
        raise ValueError("the request's role and bucket are unresolved; build it with resolve() first")
    session = sagemaker_session(aws, request.bucket)
    send_instance_preferences(session.sagemaker_client, request)
    guard(session.sagemaker_client)
    with tempfile.TemporaryDirectory(prefix="smjobs-source-") as tmp:
        inputs = training_inputs(session, request, Path(tmp))
        # the SDK tars source_dir whole: hand it exactly the manifest's files (what --dry-run listed)
        staged = source.stage(source.manifest_for(request), Path(tmp) / "source")
        estimator = build_estimator(request, session, staged)
        estimator.fit(inputs or None, wait=False, logs=False, job_name=request.job_name)
    return request.job_name


def count_s3_objects(aws: AwsContext, uri: str, enough: int) -> int:
    """Objects under an S3 prefix, counted up to ``enough`` (all that matters for idle instances)."""
    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    page = aws.client("s3").list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=enough)
    return len(page.get("Contents", []))


def _packed_model(path: Path, scratch: Path) -> Path:
    """A local model.pt (or weights) as the model.tar.gz SageMaker unpacks into /opt/ml/model."""
    if path.name.endswith(".tar.gz"):
        return path
    archive = scratch / "model.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(path, arcname=path.name)
    return archive


def submit_transform(request: batch_transform.TransformRequest, aws: AwsContext) -> str:
    """Upload a local model and input, create the SDK's PyTorchModel and its Transformer, and start the transform
    job without waiting; return its name. Both requests are checked against the service model as they are sent."""
    from sagemaker.pytorch import PyTorchModel

    if not request.resolved:
        raise ValueError("the request's role and bucket are unresolved; resolve them first")
    session = sagemaker_session(aws, request.bucket)
    for operation in ("CreateModel", "CreateTransformJob"):
        guard(session.sagemaker_client, operation)
    with tempfile.TemporaryDirectory(prefix="smjobs-transform-") as tmp:
        model_kwargs, transform_kwargs = dict(request.model), dict(request.transform)
        local_model = batch_transform.local_model_file(request.model_source)
        if local_model is not None:
            session.upload_data(str(_packed_model(local_model, Path(tmp))), bucket=request.bucket,
                                key_prefix=f"{request.job_name}/input/model")
        if not request.input_source.startswith("s3://"):
            upload_local_data(session, request.input_source, request.bucket, f"{request.job_name}/input/data",
                              Path(tmp) / "input")
        model_kwargs["source_dir"] = str(source.stage(batch_transform.source_manifest(request), Path(tmp) / "code"))
        model = PyTorchModel(role=request.role_arn, sagemaker_session=session, **model_kwargs)
        model.transformer(**request.transformer).transform(**transform_kwargs)
    return request.job_name


def status(aws: AwsContext, job_name: str) -> dict[str, Any]:
    """A summary of DescribeTrainingJob."""
    job = aws.client("sagemaker").describe_training_job(TrainingJobName=job_name)
    resources = job.get("ResourceConfig", {})
    return {
        "name": job["TrainingJobName"],
        "status": job.get("TrainingJobStatus"),
        "secondary_status": job.get("SecondaryStatus"),
        "instances": f"{resources.get('InstanceCount')} x {resources.get('InstanceType')}",
        "created": _iso(job.get("CreationTime")),
        "started": _iso(job.get("TrainingStartTime")),
        "ended": _iso(job.get("TrainingEndTime")),
        "billable_s": job.get("BillableTimeInSeconds"),
        "failure_reason": job.get("FailureReason"),
        "model_artifacts": job.get("ModelArtifacts", {}).get("S3ModelArtifacts"),
        "metrics": {m["MetricName"]: m["Value"] for m in job.get("FinalMetricDataList", [])},
    }


def _iso(value) -> str | None:
    return value.isoformat() if isinstance(value, _dt.datetime) else value
