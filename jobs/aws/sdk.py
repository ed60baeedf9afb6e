"""SageMaker's own training objects, built from smjobs' request, for users who want them (pipelines, existing
code): a v2 ``sagemaker.pytorch.PyTorch`` Estimator (``to_estimator``) or a v3 ``sagemaker.train.ModelTrainer``
(``to_model_trainer``, in ``sdk_v3``).

smjobs itself never needs the SDK: ``aws.submit`` sends the request with boto3. These adapters are for the SDK the
user has; each says in one line which one to call when the other major is installed. Both upload the job's code
archive and local channels first (the same files, at the same keys, as ``smjobs submit``), so the object refers
to code already in S3.
"""

from __future__ import annotations

from importlib import metadata
from typing import Any

from smjobs.aws.context import AwsContext
from smjobs.request.training import TrainingRequest

CREATE_TRAINING_JOB_EVENT = "provide-client-params.sagemaker.CreateTrainingJob"


class SdkVersionError(RuntimeError):
    """The SageMaker Python SDK is missing, or is the other major version than the object asked for."""


def sdk_version() -> str | None:
    """The installed ``sagemaker`` distribution's version, or None (read from its metadata: nothing is imported)."""
    try:
        return metadata.version("sagemaker")
    except metadata.PackageNotFoundError:
        return None


def sdk_major() -> int | None:
    version = sdk_version()
    return int(version.split(".")[0]) if version else None


_FOR_INSTALLED = {2: "smjobs.to_estimator(spec) builds v2's PyTorch Estimator",
                  3: "smjobs.to_model_trainer(spec) builds v3's ModelTrainer"}
"""What to call instead, by the major that is installed."""


def require_major(major: int, what: str) -> None:
    """Raise SdkVersionError, in one line, unless SDK ``major`` is installed."""
    version = sdk_version()
    if version is None:
        raise SdkVersionError(f"{what} needs the SageMaker Python SDK v{major}, which is not installed: pip install "
                              f"'sagemaker{'>=2.257,<3' if major == 2 else '>=3.27'}' (smjobs submit needs no SDK).")
    if int(version.split(".")[0]) != major:
        raise SdkVersionError(f"{what} needs the SageMaker Python SDK v{major}; this environment has sagemaker "
                              f"{version}: {_FOR_INSTALLED.get(int(version.split('.')[0]), 'see smjobs.aws.sdk')}, and smjobs submit works with either.")


def with_telemetry_off(config: dict) -> dict:
    """A SageMaker SDK config (v2's or v3's, the same schema) with the SDK's telemetry off unless the config itself
    turns it on: smjobs does not phone home for its users, and without internet the SDK's telemetry call stalls."""
    config.setdefault("SchemaVersion", "1.0")
    modules = config.setdefault("SageMaker", {}).setdefault("PythonSDK", {}).setdefault("Modules", {})
    modules.setdefault("TelemetryOptOut", True)
    return config


def sdk_config() -> dict:
    """The user's SDK v2 config (``sagemaker.config.load_sagemaker_config``), telemetry off by default."""
    from sagemaker.config import load_sagemaker_config

    return with_telemetry_off(load_sagemaker_config() or {})


def sagemaker_session(aws: AwsContext, bucket: str | None = None):
    """A v2 SDK session on smjobs' boto3 session, with ``sdk_config``."""
    import sagemaker

    return sagemaker.Session(boto_session=aws.session, sagemaker_client=aws.client("sagemaker"), default_bucket=bucket,
                             sagemaker_config=sdk_config())


def uploaded_channels(request: TrainingRequest) -> dict[str, dict[str, Any]]:
    """The request's channels as they are once uploaded: name -> (the CreateTrainingJob channel entry)."""
    return {c["ChannelName"]: c for c in request.create_training_job.get("InputDataConfig", []) if c["ChannelName"] != "code"}


def upload_for(request: TrainingRequest, aws: AwsContext, scratch) -> None:
    """The job's code archive and local channels, uploaded where the request names them (as ``submit`` does)."""
    from pathlib import Path

    from smjobs.aws import upload
    from smjobs.request import source

    upload.upload_job_files(aws.client("s3"), request, source.manifest_for(request), Path(scratch))


def _send_instance_preferences(sagemaker_client, request: TrainingRequest) -> None:
    """SDK v2 has no parameter for ``ResourceConfig.InstancePreferences``: put the request's in place of the single
    type and count the estimator sends."""
    if not request.instance_preferences:
        return

    def rewrite(params, **_):
        resources = params["ResourceConfig"]
        resources.pop("InstanceType", None)
        resources.pop("InstanceCount", None)
        resources["InstancePreferences"] = [dict(p) for p in request.instance_preferences]

    sagemaker_client.meta.events.register_first(CREATE_TRAINING_JOB_EVENT, rewrite, unique_id="smjobs-instance-preferences")


def to_estimator(request: TrainingRequest, aws: AwsContext) -> Any:
    """A configured v2 ``sagemaker.pytorch.PyTorch`` for a resolved request, its code and local channels already
    uploaded. Every argument comes from the request; ``source_dir`` is the uploaded archive, so the SDK sends the
    same ``sagemaker_submit_directory``, and ``image_uri`` is the request's image. Start it with ``estimator.fit(estimator.smjobs_inputs,
    job_name=estimator.smjobs_job_name)`` (the channels and name the dry run shows)."""
    import tempfile

    require_major(2, "to_estimator")
    if not request.resolved:
        raise ValueError("the request's role and bucket are unresolved; build it with resolve() first")
    from sagemaker.inputs import TrainingInput
    from sagemaker.pytorch import PyTorch

    with tempfile.TemporaryDirectory(prefix="smjobs-estimator-") as tmp:
        upload_for(request, aws, tmp)
    session = sagemaker_session(aws, request.bucket)
    _send_instance_preferences(session.sagemaker_client, request)
    # the request's image, not v2's own table (which ends at 2.8.0): the same image smjobs sends
    image = request.create_training_job["AlgorithmSpecification"]["TrainingImage"]
    estimator = PyTorch(role=request.role_arn, sagemaker_session=session, image_uri=image,
                        **{**request.estimator, "source_dir": request.code_uri})
    estimator.smjobs_inputs = {
        name: TrainingInput(c["DataSource"]["S3DataSource"]["S3Uri"], input_mode=c["InputMode"],
                            distribution=c["DataSource"]["S3DataSource"]["S3DataDistributionType"],
                            content_type=c.get("ContentType"), s3_data_type=c["DataSource"]["S3DataSource"]["S3DataType"])
        for name, c in uploaded_channels(request).items()} or None
    estimator.smjobs_job_name = request.job_name
    return estimator
