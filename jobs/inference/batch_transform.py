"""The Batch Transform backend of inference jobs: spec -> TransformRequest (pure), and the rules it must meet.

``smjobs infer SPEC --backend batch-transform`` (or ``inference.backend: batch-transform``) runs the model in
SageMaker's PyTorch inference container with the bundled ``serve.py`` instead of as a training job. The request
holds the keyword arguments of the SDK's ``PyTorchModel``, ``Model.transformer()`` and ``Transformer.transform()``,
and the CreateModel and CreateTransformJob requests they make the SDK send (predicted here; the tests compare them
with what the SDK really sends). Only ``sagemaker_edge.submit_transform`` touches the SDK.

Batch Transform splits work by S3 object: an instance gets whole objects, so with fewer objects than instances
some sit idle, which the request's ``warnings`` say before anything is billed. Its documented limits, checked here:
MaxPayloadInMB from 1 to 100, and MaxConcurrentTransforms x MaxPayloadInMB at most 100.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from smjobs import catalog
from smjobs.errors import Problem
from smjobs.request import manifests, source
from smjobs.request.training import (
    CONTAINER_LOG_LEVEL,
    DEFAULT_REGION,
    UNRESOLVED_BUCKET,
    UNRESOLVED_ROLE,
    RequestData,
    job_tags,
    source_dir,
    unique_job_name,
)
from smjobs.spec.job import JobSpec

SCRIPT = "serve.py"
MAX_PAYLOAD_MB = 100
MAX_PAYLOAD_TIMES_CONCURRENCY_MB = 100
"""AWS, CreateTransformJob: "The value of MaxPayloadInMB cannot exceed 100 MB"; "the value of
(MaxConcurrentTransforms * MaxPayloadInMB) also cannot exceed 100 MB"."""
ACCEPT = "application/jsonlines"
TEXT_SUFFIXES = (".jsonl", ".csv")


@dataclass(frozen=True)
class TransformRequest(RequestData):
    """Everything needed to create one transform job, as plain data."""

    job_name: str
    """Also the model's name."""
    region: str
    role_arn: str
    bucket: str
    source_dir: str
    model_source: str
    """The spec's model (a local file or folder is packed into model.tar.gz and uploaded at submit)."""
    input_source: str
    """The spec's input (a local folder or manifest is uploaded at submit)."""
    model: dict[str, Any]
    """Keyword arguments of ``sagemaker.pytorch.PyTorchModel`` (without role and session)."""
    transformer: dict[str, Any]
    """Keyword arguments of ``Model.transformer()``."""
    transform: dict[str, Any]
    """Keyword arguments of ``Transformer.transform()``."""
    create_model: dict[str, Any] = field(default_factory=dict)
    create_transform_job: dict[str, Any] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()


# ----- what the input and model are -------------------------------------------------------------------------
def local_input_files(uri: str) -> list[Path] | None:
    """The files of a local input folder or manifest (any suffix); None for S3 or a missing path."""
    if "://" in uri:
        return None
    if manifests.is_manifest(uri):
        try:
            return [origin for _, origin in manifests.local_entries(uri)]
        except manifests.ManifestError:
            return None
    root = Path(uri)
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else None


def content_type(spec: JobSpec, files: list[Path] | None) -> str:
    """The setting, else text/csv when every local input file (``files``) is .csv, else JSON Lines."""
    chosen = spec.inference.batch_transform.content_type
    if chosen:
        return chosen
    return "text/csv" if files and all(p.suffix == ".csv" for p in files) else ACCEPT


def local_model_file(uri: str) -> Path | None:
    """The file a local model names: itself, or a folder's model.pt (else model.tar.gz); None when not local."""
    if "://" in uri:
        return None
    path = Path(uri)
    if path.is_dir():
        return next((path / n for n in ("model.pt", "model.tar.gz") if (path / n).is_file()), None)
    return path if path.is_file() else None


def framework(spec: JobSpec) -> tuple[str, str]:
    """(PyTorch version, Python version) of the inference image: the setting, else the newest image."""
    fw = catalog.frameworks()
    version = spec.inference.batch_transform.framework_version or max(fw.inference_images, key=catalog.version_key)
    full = fw.resolve_inference(version) or version
    image = fw.inference_images.get(full)
    py = spec.py_version if image and spec.py_version in image.py_versions else (image.py_versions[-1] if image else spec.py_version)
    return full, py


def concurrency(spec: JobSpec) -> int:
    """Parallel requests to each instance: the setting, else one per GPU (the container runs a worker per GPU)."""
    chosen = spec.inference.batch_transform.max_concurrent_transforms
    if chosen is not None:
        return chosen
    instance = catalog.instances().get(spec.compute.instance_type)
    return instance.gpu_count if instance else 1


def idle_warning(objects: int | None, instances: int) -> str | None:
    if objects is None or objects >= instances:
        return None
    idle = instances - objects
    return (f"{objects} input object(s) for {instances} instances: Batch Transform gives each instance whole objects, "
            f"so {idle} instance(s) would sit idle and be billed. To fix: split the input into at least {instances} "
            f"files, set compute.instance_count to {max(objects, 1)}, or use the training-job backend, which splits "
            "records, not files.")


# ----- the request -------------------------------------------------------------------------------------------
def model_environment(spec: JobSpec) -> dict[str, str]:
    """What serve.py reads, plus the user's environment."""
    section = spec.inference
    env = dict(spec.environment)
    local = local_model_file(section.model)
    name = local.name if local is not None and local.suffix == ".pt" else "model.pt"
    env["SMJOBS_MODEL_FILE"] = name
    if section.model_factory:
        env["SMJOBS_MODEL_FACTORY"] = section.model_factory
    if section.input_field != "inputs":
        env["SMJOBS_INPUT_FIELD"] = section.input_field
    return env


def build_transform_request(spec: JobSpec, *, job_name: str | None = None, region: str | None = None,
                            bucket: str | None = None, role_arn: str | None = None,
                            input_objects: int | None = None) -> TransformRequest:
    """The transform request of a (validated) inference spec. Pure. ``input_objects``: the count of S3 input
    objects when the caller listed them (local inputs are counted here)."""
    section, compute, security = spec.inference, spec.compute, spec.security
    bt = section.batch_transform
    region = region or spec.region or DEFAULT_REGION
    bucket = bucket or UNRESOLVED_BUCKET
    role_arn = role_arn or spec.role_arn or UNRESOLVED_ROLE
    job_name = job_name or unique_job_name(spec.name)
    version, py = framework(spec)
    image = catalog.frameworks().inference_image_uri(version, py, region)
    model_uri = section.model if section.model.startswith("s3://") else f"s3://{bucket}/{job_name}/input/model/model.tar.gz"
    input_uri, data_type = section.input, "ManifestFile" if manifests.is_manifest(section.input) else "S3Prefix"
    if not input_uri.startswith("s3://"):
        input_uri, data_type = f"s3://{bucket}/{job_name}/input/data", "S3Prefix"
    code_dir = str(source_dir(spec))
    files = local_input_files(section.input)  # read once: the content type and the idle-instance count
    env = model_environment(spec)
    model: dict[str, Any] = {
        "model_data": model_uri, "entry_point": SCRIPT, "source_dir": code_dir, "framework_version": version,
        "py_version": py, "name": job_name, "code_location": f"s3://{bucket}", "env": env,
    }
    if security.subnets:
        model["vpc_config"] = {"Subnets": list(security.subnets), "SecurityGroupIds": list(security.security_group_ids)}
    if security.network_isolation:
        model["enable_network_isolation"] = True
    transformer: dict[str, Any] = {
        "instance_count": compute.instance_count, "instance_type": compute.instance_type,
        "strategy": bt.batch_strategy, "assemble_with": "Line", "output_path": section.output_path,
        "max_concurrent_transforms": concurrency(spec), "max_payload": bt.max_payload_mb, "accept": ACCEPT,
    }
    if security.output_kms_key:
        transformer["output_kms_key"] = security.output_kms_key
    if security.volume_kms_key:
        transformer["volume_kms_key"] = security.volume_kms_key
    transformer["tags"] = job_tags(spec)
    transform: dict[str, Any] = {
        "data": input_uri, "data_type": data_type, "content_type": content_type(spec, files), "split_type": "Line",
        "job_name": job_name, "wait": False, "logs": False,
    }
    if bt.join_source == "Input":
        transform["join_source"] = "Input"

    container = {"Image": image, "Environment": {
        **env, "SAGEMAKER_PROGRAM": SCRIPT, "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code",
        "SAGEMAKER_CONTAINER_LOG_LEVEL": str(CONTAINER_LOG_LEVEL), "SAGEMAKER_REGION": region,
    }, "ModelDataUrl": f"s3://{bucket}/{job_name}/model.tar.gz"}  # the SDK repacks the model with the code there
    create_model: dict[str, Any] = {"ModelName": job_name, "ExecutionRoleArn": role_arn, "PrimaryContainer": container}
    if "vpc_config" in model:
        create_model["VpcConfig"] = model["vpc_config"]
    if security.network_isolation:
        create_model["EnableNetworkIsolation"] = True
    create_model["Tags"] = transformer["tags"]
    output: dict[str, Any] = {"S3OutputPath": section.output_path, "AssembleWith": "Line", "Accept": ACCEPT}
    if security.output_kms_key:
        output["KmsKeyId"] = security.output_kms_key
    resources: dict[str, Any] = {"InstanceCount": compute.instance_count, "InstanceType": compute.instance_type}
    if security.volume_kms_key:
        resources["VolumeKmsKeyId"] = security.volume_kms_key
    create_job: dict[str, Any] = {
        "TransformJobName": job_name, "ModelName": job_name,
        "TransformInput": {"DataSource": {"S3DataSource": {"S3DataType": data_type, "S3Uri": input_uri}},
                           "ContentType": transform["content_type"], "SplitType": "Line"},
        "TransformOutput": output, "TransformResources": resources,
        "BatchStrategy": bt.batch_strategy, "MaxConcurrentTransforms": transformer["max_concurrent_transforms"],
        "MaxPayloadInMB": bt.max_payload_mb,
    }
    create_job["Tags"] = transformer["tags"]
    if bt.join_source == "Input":
        create_job["DataProcessing"] = {"JoinSource": "Input"}
    objects = len(files) if files is not None else input_objects
    warning = idle_warning(objects, compute.instance_count)
    return TransformRequest(job_name, region, role_arn, bucket, code_dir, section.model, section.input, model,
                            transformer, transform, create_model, create_job, (warning,) if warning else ())


def source_manifest(request: TransformRequest) -> source.SourceManifest:
    """The model's code archive: the source folder (less local model and input files) plus serve.py and its
    ``common/`` package when the folder is a user's."""
    root = Path(request.source_dir)
    exclude = [(Path(uri), f"inference {what} (it travels as {what})")
               for uri, what in ((request.model_source, "model"), (request.input_source, "input")) if "://" not in uri]
    return source.with_bundled(source.build_manifest(root, exclude=exclude), SCRIPT)


# ----- rules -------------------------------------------------------------------------------------------------
def check(spec: JobSpec) -> list[Problem]:
    """What keeps the spec from running as a transform job; empty for other backends."""
    section = spec.inference
    if section is None or section.backend != "batch-transform":
        return []
    bt, out = section.batch_transform, []
    at = "inference.batch_transform"
    if not 1 <= bt.max_payload_mb <= MAX_PAYLOAD_MB:
        out.append(Problem(f"{at}.max_payload_mb", f"is {bt.max_payload_mb}; Batch Transform takes 1 to {MAX_PAYLOAD_MB} MB.",
                           f"set it between 1 and {MAX_PAYLOAD_MB} (6 is SageMaker's default)."))
    elif bt.max_concurrent_transforms is not None and bt.max_concurrent_transforms < 1:
        out.append(Problem(f"{at}.max_concurrent_transforms", f"is {bt.max_concurrent_transforms}.", "set it to 1 or more."))
    elif concurrency(spec) * bt.max_payload_mb > MAX_PAYLOAD_TIMES_CONCURRENCY_MB:
        most = MAX_PAYLOAD_TIMES_CONCURRENCY_MB // bt.max_payload_mb
        out.append(Problem(f"{at}.max_concurrent_transforms",
                           f"{concurrency(spec)} concurrent transforms x {bt.max_payload_mb} MB payloads = "
                           f"{concurrency(spec) * bt.max_payload_mb} MB; Batch Transform allows at most "
                           f"{MAX_PAYLOAD_TIMES_CONCURRENCY_MB} MB.",
                           f"set max_concurrent_transforms to at most {most}, or lower max_payload_mb."))
    version, py = framework(spec)
    fw = catalog.frameworks()
    if fw.resolve_inference(version) is None:
        known = sorted(fw.inference_images, key=catalog.version_key)[-4:]
        out.append(Problem(f"{at}.framework_version", f"{version!r} has no PyTorch inference image in the SDK's table.",
                           f"use one of {', '.join(known)} (or leave it unset for {known[-1]})."))
    elif fw.inference_image_uri(version, py, spec.region or DEFAULT_REGION) is None:
        out.append(Problem(f"{at}.framework_version", f"the PyTorch {version} inference image is not published in "
                           f"{spec.region or DEFAULT_REGION}.", "choose another region or version."))
    out += _check_model(section.model) + _check_input(spec)
    if spec.compute.use_spot:
        out.append(Problem("compute.use_spot", "Batch Transform has no spot capacity.",
                           "remove use_spot, or use the training-job backend (spot with resume from finished parts)."))
    if spec.compute.instance_preferences:
        out.append(Problem("compute.instance_preferences", "transform jobs take one instance type.", "remove them."))
    if spec.distribution.type != "ddp":
        out.append(Problem("distribution", f"is {spec.distribution.type}; a transform job runs one model server per "
                           "instance and takes no distribution.", "remove distribution, or use the training-job backend."))
    return out


def _check_model(uri: str) -> list[Problem]:
    if uri.startswith("s3://"):
        if not uri.endswith(".tar.gz"):
            return [Problem("inference.model", f"{uri!r}: a SageMaker model is a model.tar.gz in S3.",
                            "give a training job's model.tar.gz, or a local model.pt (smjobs packs and uploads it).")]
        return []
    if local_model_file(uri) is None and Path(uri).exists():
        return [Problem("inference.model", f"{uri!r} holds neither model.pt nor model.tar.gz.",
                        "point at the model file itself.")]
    return []


def _check_input(spec: JobSpec) -> list[Problem]:
    """Local input: text files only (SplitType=Line), headerless CSV, every record within one payload."""
    files = local_input_files(spec.inference.input)
    if not files:
        return []
    out, limit = [], spec.inference.batch_transform.max_payload_mb * 10**6
    others = [p.name for p in files if p.suffix not in TEXT_SUFFIXES]
    if others:
        out.append(Problem("inference.input", f"Batch Transform splits input by line; {len(others)} file(s) are not JSON "
                           f"Lines or CSV: {', '.join(others[:3])}.", "convert them, or use the training-job backend "
                           "(it reads .pt tensor files)."))
    for path in files:
        if path.suffix not in TEXT_SUFFIXES:
            continue
        with path.open("rb") as f:
            first = f.readline()
            longest = max([len(first), *(len(line) for line in f)])
        if path.suffix == ".csv" and first and not _numeric_csv_line(first):
            out.append(Problem("inference.input", f"{path.name} starts with a header line; Batch Transform sends "
                               "every line, the header too, as a record.", "remove the header, or use the "
                               "training-job backend (it reads headers and id columns)."))
        if longest > limit:
            out.append(Problem("inference.batch_transform.max_payload_mb", f"a record of {path.name} has "
                               f"{longest / 1e6:.1f} MB, more than the {limit // 10**6} MB payload.",
                               f"raise max_payload_mb to at least {int(longest / 1e6) + 1}."))
    return out


def _numeric_csv_line(line: bytes) -> bool:
    try:
        [float(v) for v in line.decode().strip().split(",")]
    except (UnicodeDecodeError, ValueError):
        return False
    return True
