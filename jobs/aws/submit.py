"""Submission: the request the dry run prints is the request sent, with boto3, whichever SageMaker SDK major is
installed, or none.

``resolve`` finds what only AWS knows (account, bucket, role; ``aws.account``), ``resolved_request`` builds the
request with them, and ``submit`` / ``submit_transform`` upload the job's files (``aws.upload``) and send
CreateTrainingJob, or CreateModel and CreateTransformJob, as they are. Just before each is sent, a hook checks
the real request against botocore's service model and stops it if the service would reject it. The SDK's own
objects (an Estimator, a ModelTrainer) are built from the same request in ``aws.sdk`` for users who want them.
"""

from __future__ import annotations

import datetime as _dt
import logging
import tarfile
import tempfile
from pathlib import Path
from typing import Any

from smjobs.aws import upload
from smjobs.aws.account import NoCredentialsError, Resolved, resolve  # noqa: F401  (the edge's callers use them here)
from smjobs.aws.context import AwsContext
from smjobs.checks import service_model
from smjobs.errors import Problem, SpecError
from smjobs.inference import batch_transform
from smjobs.request import source
from smjobs.request.training import TrainingRequest, build_request
from smjobs.spec.job import JobSpec

CREATE_TRAINING_JOB_EVENT = "provide-client-params.sagemaker.CreateTrainingJob"
log = logging.getLogger(__name__)


def tracking_problems(spec: JobSpec) -> list[Problem]:
    """A job bound for SageMaker with a tracking section must name a server: locally smjobs provides a store."""
    if spec.tracking is None or spec.tracking.mlflow.tracking_server_arn or spec.tracking.mlflow.tracking_uri:
        return []
    return [Problem("tracking.mlflow", "names no MLflow server, and a job on SageMaker has no local store to log to",
                    "set tracking_server_arn (SageMaker managed MLflow) or tracking_uri (any other server); without "
                    "either, only local runs are tracked")]


def resolved_request(spec: JobSpec, aws: AwsContext, resolved: Resolved, job_name: str | None = None) -> TrainingRequest:
    log.info("account %s: role %s (%s), bucket %s", resolved.account_id, resolved.role_arn, resolved.role_source,
             resolved.bucket)
    request = build_request(spec, job_name=job_name, region=aws.region, bucket=resolved.bucket, role_arn=resolved.role_arn)
    problems = tracking_problems(spec) + service_model.check(request.create_training_job)
    if problems:
        raise SpecError(problems)
    return request


def guard(sagemaker_client, operation: str = "CreateTrainingJob") -> None:
    """Refuse to send an ``operation`` request that botocore's service model says is invalid."""

    def check(params, **_):
        problems = service_model.check(params, operation)
        if problems:
            raise SpecError(problems)

    sagemaker_client.meta.events.register(f"provide-client-params.sagemaker.{operation}", check,
                                          unique_id=f"smjobs-service-model-guard-{operation}")


def submit(request: TrainingRequest, aws: AwsContext) -> str:
    """Upload the code archive (the manifest's files) and the local channels to the URIs the request names, then
    send the request as it is with boto3 (``CreateTrainingJob``); return the job's name."""
    if not request.resolved:
        raise ValueError("the request's role and bucket are unresolved; build it with resolve() first")
    sagemaker = aws.client("sagemaker")
    guard(sagemaker)
    problems = service_model.check(request.create_training_job)
    if problems:  # checked before anything is uploaded, and again (by the guard) as it is sent
        raise SpecError(problems)
    with tempfile.TemporaryDirectory(prefix="smjobs-source-") as tmp:
        upload.upload_job_files(aws.client("s3"), request, source.manifest_for(request), Path(tmp))
    sagemaker.create_training_job(**request.create_training_job)
    log.info("CreateTrainingJob %s sent to %s", request.job_name, sagemaker.meta.endpoint_url)
    return request.job_name


def count_s3_objects(aws: AwsContext, uri: str, enough: int) -> int:
    """Objects under an S3 prefix, counted up to ``enough`` (all that matters for idle instances)."""
    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    page = aws.client("s3").list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=enough)
    return len(page.get("Contents", []))


def _model_files(request: batch_transform.TransformRequest, aws: AwsContext, scratch: Path) -> list[tuple[Path, str]]:
    """The model's files, for the top of the served archive: a local file as it is, a local or S3 model.tar.gz
    unpacked (an S3 one downloaded first)."""
    local = batch_transform.local_model_file(request.model_source)
    if local is None:  # in S3: a model.tar.gz, as a training job leaves it
        bucket, key = upload.split_uri(request.model_source)
        local = scratch / "model-in.tar.gz"
        aws.client("s3").download_file(bucket, key, str(local))
    if not local.name.endswith(".tar.gz"):
        return [(local, local.name)]
    unpacked = scratch / "model"
    with tarfile.open(local) as tar:
        tar.extractall(unpacked, filter="data")
    return [(path, path.relative_to(unpacked).as_posix()) for path in sorted(unpacked.rglob("*")) if path.is_file()]


def submit_transform(request: batch_transform.TransformRequest, aws: AwsContext) -> str:
    """Pack the model with its code (``code/``, where the inference container looks) into the archive the model
    request names, upload it and a local input, then send CreateModel and CreateTransformJob as they are; return
    the job's name. Both requests are checked against the service model before anything is uploaded."""
    if not request.resolved:
        raise ValueError("the request's role and bucket are unresolved; resolve them first")
    sagemaker, s3 = aws.client("sagemaker"), aws.client("s3")
    for operation, params in (("CreateModel", request.create_model), ("CreateTransformJob", request.create_transform_job)):
        guard(sagemaker, operation)
        problems = service_model.check(params, operation)
        if problems:
            raise SpecError(problems)
    with tempfile.TemporaryDirectory(prefix="smjobs-transform-") as tmp:
        scratch = Path(tmp)
        archive = upload.pack(batch_transform.source_manifest(request), scratch / "model.tar.gz", under="code/",
                              extra=tuple(_model_files(request, aws, scratch)))
        upload.upload_file(s3, archive, request.create_model["PrimaryContainer"]["ModelDataUrl"])
        if not request.input_source.startswith("s3://"):
            data = request.create_transform_job["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"]
            upload.upload_channel(s3, request.input_source, data, scratch / "input")
    sagemaker.create_model(**request.create_model)
    sagemaker.create_transform_job(**request.create_transform_job)
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
