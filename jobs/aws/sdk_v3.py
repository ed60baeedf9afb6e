"""SageMaker Python SDK v3's ``sagemaker.train.ModelTrainer``, built from smjobs' resolved request
(``to_model_trainer``), for users whose kernel has SDK v3. smjobs itself submits with boto3 (``aws.submit``).

``to_model_trainer`` uploads the job's code archive and local channels (``sdk.upload_for``: the same files at
the same keys as ``smjobs submit``) and returns a configured trainer. It sends nothing to SageMaker, nor to
IAM (v3's own role check is off: ``_role_already_resolved``). ``trainer.train(wait=False)`` uploads v3's
``sm_drivers`` and starts the job.

How the request maps onto v3, and why:
- Code: ``SourceCode(source_dir=request.code_uri)``, the ``sourcedir.tar.gz`` already in S3. It holds exactly
  the manifest's files (the archive ``smjobs submit`` uploads); v3 takes an S3 ``.tar.gz`` (its ``code``
  channel mounts it, ``sm_train.sh`` untars it); and no local folder has to outlive this call (a ModelTrainer
  is a pydantic model that takes no extra attributes, so it could not keep a TemporaryDirectory alive).
- Hyperparameters: the user's keys only. The ``sagemaker_*`` keys are the v2 container toolkit's; v3's driver
  would pass them to the script as arguments. v3 sends strings as they are; in the container its
  ``environment.py`` JSON-decodes each value into SM_HPS, and its launcher decodes it again and writes
  non-strings back as JSON: ``--key <text>``. Each key gets smjobs' own wire value, so HyperParameters and
  SM_HPS are what smjobs' job has, unless the script's argument would then read differently from the toolkit's
  ``str()``: booleans (``true`` for ``True``) and null (``null`` for an empty argument). Those get the
  toolkit's text as a JSON string: the same argument, and SM_HPS holds "True" rather than true. Lists and
  dicts (JSON text in smjobs) reach the script re-spaced (``[256, 256]``): the same JSON. Refused:
  one-character keys (the toolkit passes ``-k``, v3 ``--k``) and values with a ``'`` (v3 writes SM_HPS into a
  shell file inside single quotes).
- Distribution: torchrun strategies -> ``Torchrun(process_count_per_node=processes_per_host)``; SMP v2 -> the
  same with ``smp=SMP(**parameters)``; SMP v1 -> ``MPI`` on one instance, its parameters as the
  ``mp_parameters`` hyperparameter (v3 exports it as ``SM_HP_MP_PARAMETERS``, as the toolkit does), with the
  toolkit's ``-bind-to none -map-by slot`` and then the strategy's custom MPI options. Refused
  (``ModelTrainerUnsupported``, before anything is uploaded): SMP v1 on more than one instance, and SMDDP
  (``distributed_config`` says why).
- Instances (type and count, or ``instance_preferences``, which v3's Compute has), volume and its KMS key,
  spot and max wait, stopping condition, output path and KMS key, checkpoints, VPC, network isolation,
  inter-container encryption, channels (S3 URI, input mode, distribution, data type, content type),
  environment, tags and metric definitions all come from ``request.create_training_job``. Fields it leaves
  unset may come from the user's SDK config, as for any ModelTrainer.
- Job name: v3 names each ``train()``'s job ``<base_job_name>-<timestamp>``. The base is the spec's name, and
  ``input_s3_key_prefix`` is the request's job name, so v3's drivers land under the request's S3 prefix.

What v3 sends that smjobs' request has not: the ``code`` and ``sm_drivers`` channels (smjobs has ``code`` only
under network isolation, with the same archive), the ``/bin/bash -c ...sm_train.sh`` container entrypoint and
arguments, and ``OutputDataConfig.CompressionType: GZIP`` (the service's default). What it leaves out: the
``sagemaker_*`` hyperparameters (archive, entry point, launcher and process count travel in
``sourcecode.json`` and ``distributed.json`` instead), ``EnableSageMakerMetricsTimeSeries`` and
``ProfilerConfig`` (ModelTrainer has no field for them). For SMP v2, v3 writes ``mp_parameters`` itself (the
same values), and the script receives it as JSON rather than the toolkit's ``k=v,k2=v2``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import tempfile
from typing import Any

from smjobs.aws.context import AwsContext
from smjobs.aws.sdk import require_major, upload_for, uploaded_channels, with_telemetry_off
from smjobs.request.training import SPEC_TAG, TrainingRequest

MP_PARAMETERS = "mp_parameters"
TOOLKIT_MPI_OPTIONS = ("-bind-to", "none", "-map-by", "slot")
"""What the v2 container toolkit's MPI runner adds to mpirun for SMP v1 (v3's MPI driver does not)."""
VALIDATE_ROLE_ENV = "SAGEMAKER_VALIDATE_ROLE"

SMDDP_REASON = (
    "SDK v3 has no SMDDP class, and its MPI driver cannot start smdistributed.dataparallel: the library runs "
    "as `mpirun <options> smddprun python <script>` (with SMDATAPARALLEL_USE_HOMOGENEOUS or _SINGLENODE, its "
    "server address and the toolkit's gethostname preload), but v3 puts its own EFA flags after the custom "
    "MPI options, then `python -m mpi4py <script>`, so smddprun cannot go right before the script on the EFA "
    "instances SMDDP needs. Submit it with smjobs submit (boto3, any SDK or none) or with "
    "smjobs.to_estimator under SDK v2, or use ddp."
)


class ModelTrainerUnsupported(ValueError):
    """The request needs something SDK v3's ModelTrainer cannot run as smjobs' own submission does. Nothing
    was uploaded or sent."""


def sdk_config() -> dict:
    """The user's SDK v3 config (``sagemaker.core.config.config.load_sagemaker_config``), telemetry off by default
    (``sdk.with_telemetry_off``)."""
    from sagemaker.core.config.config import load_sagemaker_config

    return with_telemetry_off(load_sagemaker_config() or {})


def sagemaker_session(aws: AwsContext, bucket: str | None = None):
    """A v3 session (``sagemaker.core.helper.session_helper.Session``) on smjobs' boto3 session, its
    SageMaker client and ``sdk_config``. v3 sends CreateTrainingJob through a client of its own, made from
    ``aws.session`` (``TrainingJob.create``), so hooks for it belong on ``aws.session.events``."""
    from sagemaker.core.helper.session_helper import Session

    return Session(boto_session=aws.session, sagemaker_client=aws.client("sagemaker"), default_bucket=bucket,
                   sagemaker_config=sdk_config())


def toolkit_text(value: Any) -> str:
    """The argument the v2 container toolkit gives the script for a decoded hyperparameter value."""
    return "" if value is None else str(value)


def driver_text(wire: str) -> str:
    """The argument v3's container driver gives the script for a HyperParameters value: ``environment.py``
    decodes it into SM_HPS, ``hyperparameters_to_cli_args`` decodes it again, and non-strings become JSON."""
    value: Any = wire
    for _ in range(2):
        try:
            value = json.loads(value)
        except (json.JSONDecodeError, TypeError):
            break
    return value if isinstance(value, str) else json.dumps(value)


def same_reading(text: str, other: str) -> bool:
    """Whether two arguments are the same text or the same JSON value of one type (``[1,2]``, ``[1, 2]``)."""
    if text == other:
        return True
    try:
        first, second = json.loads(text), json.loads(other)
    except json.JSONDecodeError:
        return False
    return type(first) is type(second) and first == second


def trainer_hyperparameters(request: TrainingRequest) -> dict[str, str]:
    """The user's hyperparameters as ModelTrainer takes them: smjobs' wire value, or the toolkit's argument
    as a JSON string where v3's driver would hand the script a different one (module docstring)."""
    wire = request.create_training_job["HyperParameters"]
    out: dict[str, str] = {}
    problems = []
    for key in request.estimator["hyperparameters"]:
        if key.startswith("sagemaker_"):
            continue
        argument = toolkit_text(json.loads(wire[key]))
        out[key] = wire[key] if same_reading(driver_text(wire[key]), argument) else json.dumps(argument)
        if len(key) == 1:
            problems.append(f"{key!r} (one character: the toolkit passes -{key}, v3's driver --{key})")
        if "'" in out[key]:
            problems.append(f"{key!r} (its value has a ', and v3's sm_train.sh sources SM_HPS in quotes)")
    if problems:
        raise ModelTrainerUnsupported("SDK v3's ModelTrainer cannot pass the hyperparameters "
                                      f"{', '.join(problems)} as smjobs does: rename or change them, or use "
                                      "smjobs submit.")
    return out


def _max_instance_count(request: TrainingRequest) -> int:
    resources = request.create_training_job["ResourceConfig"]
    counts = [p["InstanceCount"] for p in request.instance_preferences]
    return max([resources.get("InstanceCount", 0), *counts])


def distributed_config(request: TrainingRequest) -> tuple[Any, dict[str, str]]:
    """v3's launcher for the request's ``distribution``, and the hyperparameters it adds.
    ModelTrainerUnsupported where v3 cannot run the strategy as the toolkit does:
    - SMDDP (``SMDDP_REASON``);
    - SMP v1 on more than one instance: v3's MPI driver runs ``mpirun -np <processes per node>`` over a host
      list of every instance, so it would start one instance's worth of ranks in all, on the first host."""
    from sagemaker.train.distributed import MPI, SMP, Torchrun

    distribution = request.estimator["distribution"]
    processes_per_host = request.processes_per_host
    smdistributed = distribution.get("smdistributed", {})
    modelparallel = smdistributed.get("modelparallel", {})
    if smdistributed.get("dataparallel", {}).get("enabled"):
        raise ModelTrainerUnsupported(SMDDP_REASON)
    if modelparallel.get("enabled") and distribution.get("mpi", {}).get("enabled"):
        if _max_instance_count(request) > 1:
            raise ModelTrainerUnsupported(
                "SMP v1 on more than one instance cannot run under SDK v3: v3 has no SMP v1 class, and its "
                "MPI driver runs `mpirun -np <processes per node>` over all the hosts, which starts one "
                f"instance's worth of ranks in all, every one on algo-1, not {processes_per_host} on each "
                "instance. Run it on one instance, submit it with smjobs submit, or move to smp_v2.")
        options = [*TOOLKIT_MPI_OPTIONS, *shlex.split(distribution["mpi"].get("custom_mpi_options") or "")]
        mpi = MPI(process_count_per_node=processes_per_host, mpi_additional_options=options)
        return mpi, {MP_PARAMETERS: request.create_training_job["HyperParameters"][MP_PARAMETERS]}
    if distribution.get("torch_distributed", {}).get("enabled"):
        smp = None
        if modelparallel.get("enabled"):
            parameters = modelparallel.get("parameters", {})
            unknown = sorted(set(parameters) - set(SMP.model_fields))
            if unknown:
                raise ModelTrainerUnsupported(f"SDK v3's SMP has no field for SMP v2's parameters {unknown}")
            smp = SMP(**parameters)
        return Torchrun(process_count_per_node=processes_per_host, smp=smp), {}
    raise ModelTrainerUnsupported(f"SDK v3 has no launcher for the distribution {distribution}.")


def _compute(ctj: dict[str, Any]):
    from sagemaker.core.shapes import InstancePreference
    from sagemaker.train.configs import Compute

    resources = ctj["ResourceConfig"]
    settings: dict[str, Any] = {"volume_size_in_gb": resources["VolumeSizeInGB"],
                                "volume_kms_key_id": resources.get("VolumeKmsKeyId"),
                                "enable_managed_spot_training": ctj.get("EnableManagedSpotTraining")}
    if "InstancePreferences" in resources:  # the service picks one; v3 refuses a type and count beside them
        settings["instance_preferences"] = [
            InstancePreference(instance_type=p["InstanceType"], instance_count=p["InstanceCount"])
            for p in resources["InstancePreferences"]]
    else:
        settings.update(instance_type=resources["InstanceType"], instance_count=resources["InstanceCount"])
    return Compute(**settings)


def _networking(ctj: dict[str, Any]):
    from sagemaker.train.configs import Networking

    vpc = ctj.get("VpcConfig", {})
    settings = {"subnets": vpc.get("Subnets"), "security_group_ids": vpc.get("SecurityGroupIds"),
                "enable_network_isolation": ctj.get("EnableNetworkIsolation"),
                "enable_inter_container_traffic_encryption": ctj.get("EnableInterContainerTrafficEncryption")}
    return Networking(**settings) if any(v is not None for v in settings.values()) else None


def _channels(request: TrainingRequest) -> list:
    from sagemaker.train.configs import Channel, DataSource, S3DataSource

    out = []
    for name, entry in uploaded_channels(request).items():
        s3 = entry["DataSource"]["S3DataSource"]
        source = S3DataSource(s3_data_type=s3["S3DataType"], s3_uri=s3["S3Uri"],
                              s3_data_distribution_type=s3["S3DataDistributionType"])
        extra = {"content_type": entry["ContentType"]} if "ContentType" in entry else {}
        out.append(Channel(channel_name=name, data_source=DataSource(s3_data_source=source),
                           input_mode=entry["InputMode"], **extra))
    return out


@contextlib.contextmanager
def _role_already_resolved():
    """v3's role check (``SAGEMAKER_VALIDATE_ROLE``) off while the trainer is built. smjobs resolved the role,
    and v3 simulates a fixed list of ``*``-resource actions without context, which refuses smjobs'
    least-privilege role: it has the EC2 network-interface actions only when the job runs in a VPC."""
    previous = os.environ.get(VALIDATE_ROLE_ENV)
    os.environ[VALIDATE_ROLE_ENV] = "false"
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(VALIDATE_ROLE_ENV, None)
        else:
            os.environ[VALIDATE_ROLE_ENV] = previous


def base_job_name(request: TrainingRequest) -> str:
    """The spec's name (smjobs' ``smjobs:spec`` tag); v3 adds a timestamp to it at each ``train()``."""
    tags = {t["Key"]: t["Value"] for t in request.create_training_job.get("Tags", [])}
    return tags.get(SPEC_TAG, request.job_name)


def to_model_trainer(request: TrainingRequest, aws: AwsContext) -> Any:
    """A configured v3 ``sagemaker.train.ModelTrainer`` for a resolved request, its code archive and local
    channels already uploaded; nothing is sent to SageMaker. Start it with ``trainer.train(wait=False)``.
    Raises SdkVersionError in one line without SDK v3, and ModelTrainerUnsupported (before uploading anything)
    where v3 cannot run the request as smjobs does (module docstring)."""
    require_major(3, "to_model_trainer")
    if not request.resolved:
        raise ValueError("the request's role and bucket are unresolved; build it with resolve() first")
    from sagemaker.train import ModelTrainer
    from sagemaker.train.configs import (
        CheckpointConfig,
        MetricDefinition,
        OutputDataConfig,
        SourceCode,
        StoppingCondition,
        Tag,
    )

    ctj = request.create_training_job
    distributed, launcher_hyperparameters = distributed_config(request)
    hyperparameters = {**trainer_hyperparameters(request), **launcher_hyperparameters}
    with tempfile.TemporaryDirectory(prefix="smjobs-model-trainer-") as tmp:
        upload_for(request, aws, tmp)
    algorithm, output, stopping = (ctj["AlgorithmSpecification"], ctj["OutputDataConfig"],
                                   ctj["StoppingCondition"])
    checkpoint = ctj.get("CheckpointConfig")
    settings: dict[str, Any] = {
        "role": request.role_arn,
        "base_job_name": base_job_name(request),
        "input_s3_key_prefix": request.job_name,
        "training_image": algorithm["TrainingImage"],
        "training_input_mode": algorithm["TrainingInputMode"],
        "source_code": SourceCode(source_dir=request.code_uri, entry_script=request.entry_point),
        "distributed": distributed,
        "compute": _compute(ctj),
        "networking": _networking(ctj),
        "stopping_condition": StoppingCondition(max_runtime_in_seconds=stopping["MaxRuntimeInSeconds"],
                                                max_wait_time_in_seconds=stopping.get("MaxWaitTimeInSeconds")),
        "output_data_config": OutputDataConfig(s3_output_path=output["S3OutputPath"],
                                               kms_key_id=output.get("KmsKeyId")),
        "checkpoint_config": CheckpointConfig(s3_uri=checkpoint["S3Uri"], local_path=checkpoint["LocalPath"])
        if checkpoint else None,
        "input_data_config": _channels(request) or None,
        "environment": dict(ctj.get("Environment", {})),
        "hyperparameters": hyperparameters,
        "tags": [Tag(key=t["Key"], value=t["Value"]) for t in ctj.get("Tags", [])] or None,
    }
    with _role_already_resolved():
        trainer = ModelTrainer(sagemaker_session=sagemaker_session(aws, request.bucket), **settings)
    if algorithm.get("MetricDefinitions"):
        trainer.with_metric_definitions([MetricDefinition(name=m["Name"], regex=m["Regex"])
                                         for m in algorithm["MetricDefinitions"]])
    return trainer
