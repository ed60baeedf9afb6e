"""Every rule a job spec must meet before anything is sent to AWS.

``validate_spec`` parses and checks a spec and raises one ``SpecError`` that lists every problem, each
with the field path and a fix. It runs in three layers:
1. structure (pydantic): unknown keys (with "did you mean"), types, allowed values;
2. smjobs' rules: instance and framework catalogs, strategy limits, SageMaker limits, secrets, paths;
3. a net under both: the CreateTrainingJob request the spec builds, checked against botocore's
   service model in full (enums, lengths, ranges, patterns).
Structural errors do not hide the rest: the offending fields are set aside and the other rules still run.
"""

from __future__ import annotations

import copy
import difflib
import re
import types
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from jobs import catalog, degrees, service_model
from jobs.errors import Problem, SpecError
from jobs.hyperparameters import (
    KEY_PATTERN,
    MAX_HYPERPARAMETERS,
    MAX_KEY_CHARS,
    MAX_VALUE_CHARS,
    SDK_BASE_KEYS,
    looks_secret,
    to_estimator_value,
    to_wire,
)
from jobs.planner.plan import Plan
from jobs.planner.resolve import AUTO, resolve_auto
from jobs.request import (
    JOB_NAME_SUFFIX_CHARS,
    UNRESOLVED_ROLE,
    build_request,
    processes_per_host,
    source_dir,
)
from jobs.script_args import accepted_flags
from jobs.spec import JobSpec
from jobs.strategies import (
    FSDP,
    SMDDP,
    STRATEGY_TYPES,
    ModelParallelV1,
    ModelParallelV2,
    NaiveModelParallel,
    PipelineParallel,
)

MAX_RUN_S = 28 * 24 * 3600  # SageMaker's ceiling for MaxRuntimeInSeconds (28 days)
JOB_NAME_MAX_CHARS = 63
JOB_NAME_PATTERN = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9])*")
S3_URI = re.compile(r"s3://(?P<bucket>[^/]+)(/(?P<key>.*))?")
BUCKET_NAME = re.compile(r"(?!xn--)(?!.*-s3alias$)[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
SUBNET_ID = re.compile(r"subnet-[0-9a-f]{8,17}")
SECURITY_GROUP_ID = re.compile(r"sg-[0-9a-f]{8,17}")
KMS_KEY = re.compile(
    r"arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:(key|alias)/[A-Za-z0-9/_-]+"
    r"|alias/[A-Za-z0-9/_-]+"
    r"|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
    r"|mrk-[0-9a-f]{32}"
)
# Architectures without bf16 tensor cores.
NO_BF16 = {"Volta", "Turing"}

# CreateTrainingJob member -> spec field, so that the service-model net reports spec paths.
_REQUEST_TO_SPEC = [
    ("TrainingJobName", "name"),
    ("RoleArn", "role_arn"),
    ("ResourceConfig.InstanceType", "compute.instance_type"),
    ("ResourceConfig.InstanceCount", "compute.instance_count"),
    ("ResourceConfig.VolumeSizeInGB", "compute.volume_size_gb"),
    ("ResourceConfig.VolumeKmsKeyId", "security.volume_kms_key"),
    ("StoppingCondition.MaxRuntimeInSeconds", "compute.max_run_s"),
    ("StoppingCondition.MaxWaitTimeInSeconds", "compute.max_wait_s"),
    ("OutputDataConfig.KmsKeyId", "security.output_kms_key"),
    ("OutputDataConfig", "output_path"),
    ("CheckpointConfig.LocalPath", "checkpoint_local_path"),
    ("CheckpointConfig", "checkpoint_s3_uri"),
    ("HyperParameters", "hyperparameters"),
    ("Environment", "environment"),
    ("Tags", "tags"),
    ("VpcConfig.Subnets", "security.subnets"),
    ("VpcConfig.SecurityGroupIds", "security.security_group_ids"),
    ("AlgorithmSpecification.MetricDefinitions", "metric_definitions"),
    ("AlgorithmSpecification.TrainingImage", "framework_version"),
    ("InputDataConfig", "inputs"),
]


def validate_spec(data: JobSpec | dict[str, Any], *, region: str | None = None) -> JobSpec:
    """Parse and check a spec; return it, or raise one SpecError listing every problem. ``instance_type: auto``
    comes back resolved to the planner's choice."""
    return validate_and_plan(data, region=region)[0]


def validate_and_plan(data: JobSpec | dict[str, Any], *, region: str | None = None) -> tuple[JobSpec, Plan | None]:
    """``validate_spec``, also returning the plan that resolved ``instance_type: auto`` (None without auto)."""
    spec, problems = parse_spec(data)
    found = None
    if spec is not None:
        spec, found, planning = resolve_auto(spec, region)
        problems += planning
        broken = tuple(p.path for p in problems)
        if spec.compute.instance_type == AUTO:  # unresolved: its problems are the planner's, reported above
            broken += ("compute.instance_type",)
        for problem in check_spec(spec, region=region):
            if not broken or not problem.path.startswith(broken):
                problems.append(problem)
    if problems:
        raise SpecError(problems)
    return spec, found


# ----- layer 1: structure ----------------------------------------------------------------------------
def parse_spec(data: JobSpec | dict[str, Any]) -> tuple[JobSpec | None, list[Problem]]:
    """Build a JobSpec; on structural errors, report them and build one from the remaining fields."""
    if isinstance(data, JobSpec):
        return data, []
    problems: list[Problem] = []
    work = copy.deepcopy(data)
    for _ in range(10):  # each round sets aside the fields pydantic rejected
        try:
            return JobSpec.model_validate(work), problems
        except ValidationError as exc:
            removed = False
            for err in exc.errors():
                problems.append(_problem_from_pydantic(err, data))
                removed |= _remove(work, err)
            if not removed:
                return None, problems
    return None, problems


def _problem_from_pydantic(err: dict, data: dict) -> Problem:
    loc = err["loc"]
    path = _path(loc)
    kind = err["type"]
    if kind == "extra_forbidden":
        allowed = _allowed_fields(loc[:-1], data)
        near = difflib.get_close_matches(str(loc[-1]), allowed, n=1, cutoff=0.6)
        hint = f"did you mean {near[0]!r}? " if near else ""
        return Problem(path, "is not a known field.", f"{hint}Known fields here: {', '.join(allowed)}.")
    if kind == "missing":
        return Problem(path, "is required.", f"add {path}.")
    if kind == "union_tag_invalid":
        known = ", ".join(STRATEGY_TYPES)
        return Problem(f"{path}.type", f"{err['input'].get('type')!r} is not a known strategy.", f"use one of: {known}.")
    if kind == "union_tag_not_found":
        return Problem(f"{path}.type", "is required.", f"set type to one of: {', '.join(STRATEGY_TYPES)}.")
    return Problem(path, f"{err['msg']} (got {err.get('input')!r}).", _type_fix(kind, path))


def _type_fix(kind: str, path: str) -> str:
    if kind.startswith("int") or kind.startswith("float"):
        return f"give {path} a number."
    if kind.startswith("bool"):
        return f"give {path} true or false."
    if kind == "literal_error":
        return f"use one of the values listed for {path}."
    return f"give {path} a value of the expected type."


def _path(loc: tuple) -> str:
    parts = [str(p) for p in loc]
    # Tagged unions put the tag into the location: distribution.ddp.x -> distribution.x
    if len(parts) > 1 and parts[0] == "distribution" and parts[1] in STRATEGY_TYPES:
        del parts[1]
    return ".".join(parts)


def _allowed_fields(loc: tuple, data: dict) -> list[str]:
    cls: Any = JobSpec
    node: Any = data
    parts = list(loc)
    while parts:
        part = parts.pop(0)
        node = node.get(part) if isinstance(node, dict) else None
        ann = _model_or_mapping(cls.model_fields[part].annotation) if isinstance(cls, type) else cls
        if isinstance(ann, dict):  # the strategy union: its tag comes next in loc, or from the data
            tag = parts.pop(0) if parts and parts[0] in ann else (node or {}).get("type", "ddp")
            cls = ann.get(tag, ann["ddp"])
        elif isinstance(ann, tuple):  # dict[str, Model]: the key comes next
            if parts:
                part = parts.pop(0)
                node = node.get(part) if isinstance(node, dict) else None
            cls = ann[1]
        else:
            cls = ann
    return list(cls.model_fields)


def _model_or_mapping(annotation: Any) -> Any:
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _model_or_mapping(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if all(isinstance(a, type) and issubclass(a, BaseModel) for a in args) and len(args) > 1:
            return {a.model_fields["type"].default: a for a in args}
        return _model_or_mapping(args[0])
    if origin is dict:
        return ("dict", _model_or_mapping(typing.get_args(annotation)[1]))
    return annotation


def _remove(work: dict, err: dict) -> bool:
    loc = list(err["loc"])
    if err["type"] == "missing" or not loc:
        return False
    if len(loc) > 1 and loc[0] == "distribution" and loc[1] in STRATEGY_TYPES:
        del loc[1]
    if err["type"].startswith("union_tag"):
        work.pop("distribution", None)
        return True
    node: Any = work
    for part in loc[:-1]:
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
        else:
            return False
    if isinstance(node, dict) and loc[-1] in node:
        del node[loc[-1]]
        return True
    if isinstance(node, list) and isinstance(loc[-1], int) and loc[-1] < len(node):
        del node[loc[-1]]
        return True
    return False


# ----- layer 2: smjobs' rules --------------------------------------------------------------------------
def check_spec(spec: JobSpec, *, region: str | None = None) -> list[Problem]:
    """Every rule beyond structure; returns the problems (empty when the spec is good)."""
    problems: list[Problem] = []
    for rule in (
        _check_name,
        _check_code,
        _check_compute,
        _check_framework,
        _check_distribution,
        _check_hyperparameters,
        _check_script_arguments,
        _check_environment_and_tags,
        _check_storage,
        _check_security,
        _check_metrics,
    ):
        problems += rule(spec)
    problems += _check_region(spec, region)
    if not problems:
        problems += check_request_against_service_model(spec, region=region)
    return problems


def _check_name(spec: JobSpec) -> list[Problem]:
    out = []
    limit = JOB_NAME_MAX_CHARS - JOB_NAME_SUFFIX_CHARS
    if not JOB_NAME_PATTERN.fullmatch(spec.name):
        out.append(Problem("name", f"{spec.name!r} is not a valid SageMaker job name.",
                           "use letters, digits and single or repeated hyphens, starting and ending with a letter or digit."))
    if len(spec.name) > limit:
        out.append(Problem("name", f"has {len(spec.name)} characters; at most {limit} leave room for the "
                           f"{JOB_NAME_SUFFIX_CHARS}-character timestamp in the 63-character job name.",
                           f"shorten it, e.g. {spec.name[:limit].rstrip('-')!r}."))
    return out


def _check_code(spec: JobSpec) -> list[Problem]:
    out = []
    root = source_dir(spec)
    if not root.is_dir():
        return [Problem("source_dir", f"{str(root)!r} is not a directory.", "point source_dir at the folder that holds the training script.")]
    if (root / "smdistributed").exists() or (root / "smdistributed.py").exists():
        out.append(Problem("source_dir", f"{root} contains an 'smdistributed' package, which would shadow SageMaker's own library in the container.",
                           "remove it from source_dir; install smdistributed-stub separately for local runs."))
    entry = Path(spec.entry_point)
    if entry.suffix != ".py":
        out.append(Problem("entry_point", f"{spec.entry_point!r} is not a Python file; torchrun and smjobs' launchers run .py scripts.",
                           "name a .py script inside source_dir."))
    elif entry.is_absolute() or ".." in entry.parts:
        out.append(Problem("entry_point", f"{spec.entry_point!r} must be a path inside source_dir.", "give it relative to source_dir, e.g. 'train.py'."))
    elif not (root / entry).is_file():
        scripts = sorted(str(p.relative_to(root)) for p in root.glob("*.py") if not p.name.startswith("_"))
        near = difflib.get_close_matches(spec.entry_point, scripts, n=1)
        hint = f"did you mean {near[0]!r}? " if near else ""
        out.append(Problem("entry_point", f"{spec.entry_point!r} does not exist in {root}.",
                           f"{hint}Scripts there: {', '.join(scripts) or 'none'}."))
    return out


def _gpu_alternatives(min_gpus: int, family: str | None = None, limit: int = 4) -> str:
    cands = [t for t in catalog.instances().types.values() if t.gpu_count >= min_gpus]
    cands.sort(key=lambda t: (t.family != family, t.gpu_count, t.gpu_memory_gb, t.name))
    return ", ".join(f"{t.name} ({t.gpu_count} x {t.gpu_model})" for t in cands[:limit])


def _check_compute(spec: JobSpec) -> list[Problem]:
    out = []
    c = spec.compute
    name = c.instance_type
    instance = catalog.instances().get(name)
    if instance is None:
        excluded = catalog.instances().excluded.get(name)
        known = list(catalog.instances().types)
        if excluded:
            out.append(Problem("compute.instance_type", f"{name} is not supported: {excluded}",
                               f"choose a GPU instance such as {_gpu_alternatives(1, limit=3)}."))
        elif re.fullmatch(r"ml\.(trn|inf)\w*\.\w+", name):
            out.append(Problem("compute.instance_type", f"{name} is an AWS Trainium/Inferentia instance; smjobs' strategies train on NVIDIA GPUs.",
                               f"choose a GPU instance such as {_gpu_alternatives(1, limit=3)}."))
        elif re.fullmatch(r"ml\.[a-z]\d\w*(-flex)?\.\w+", name) and not name.startswith(("ml.g", "ml.p")):
            out.append(Problem("compute.instance_type", f"{name} is a CPU instance; torch_distributed and SMDDP jobs need GPU instances.",
                               f"choose a GPU instance such as {_gpu_alternatives(1, limit=3)}."))
        else:
            near = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
            hint = f"did you mean {' or '.join(near)}? " if near else ""
            out.append(Problem("compute.instance_type", f"{name!r} is not a GPU training instance type in smjobs' catalog.",
                               f"{hint}GPU families: {', '.join(sorted({t.family for t in catalog.instances().types.values()}))}."))
    if c.instance_count < 1:
        out.append(Problem("compute.instance_count", f"is {c.instance_count}; a job needs at least one instance.", "set instance_count to 1 or more."))
    if c.volume_size_gb < 1:
        out.append(Problem("compute.volume_size_gb", f"is {c.volume_size_gb}; the volume needs at least 1 GB.", "set volume_size_gb to 1 or more (100 is typical)."))
    if not 1 <= c.max_run_s <= MAX_RUN_S:
        out.append(Problem("compute.max_run_s", f"is {c.max_run_s}; SageMaker allows 1 to {MAX_RUN_S} seconds (28 days).",
                           "set max_run_s within that range and checkpoint longer training."))
    if c.use_spot:
        if c.max_wait_s is None:
            out.append(Problem("compute.max_wait_s", "is required with use_spot: it bounds waiting for spot capacity plus training.",
                               f"set max_wait_s to at least max_run_s ({c.max_run_s})."))
        elif c.max_wait_s < c.max_run_s:
            out.append(Problem("compute.max_wait_s", f"is {c.max_wait_s}, less than max_run_s ({c.max_run_s}); SageMaker rejects that.",
                               f"set max_wait_s to at least {c.max_run_s}, or lower max_run_s."))
        if not spec.checkpoint_s3_uri:
            out.append(Problem("checkpoint_s3_uri", "is required with use_spot: an interrupted spot job resumes from its checkpoints.",
                               "set checkpoint_s3_uri to an s3:// prefix the script's checkpoints are synced to."))
    elif c.max_wait_s is not None:
        out.append(Problem("compute.max_wait_s", "only applies to spot training.", "remove max_wait_s or set use_spot: true."))
    return out


def _check_framework(spec: JobSpec) -> list[Problem]:
    fw = catalog.frameworks()
    if isinstance(spec.distribution, ModelParallelV2):
        return _check_smp_v2_image(spec)
    full = fw.resolve(spec.framework_version)
    if full is None:
        newest = sorted(fw.py_versions, key=_version_key)[-6:]
        return [Problem("framework_version", f"PyTorch {spec.framework_version!r} has no SageMaker training image.",
                        f"use one of: {', '.join(newest)} (or an older version with an image).")]
    if spec.py_version not in fw.py_versions[full]:
        return [Problem("py_version", f"PyTorch {full} training images exist for {', '.join(fw.py_versions[full])}, not {spec.py_version!r}.",
                        f"set py_version to {fw.py_versions[full][-1]!r}.")]
    return []


def _check_smp_v2_image(spec: JobSpec) -> list[Problem]:
    images = catalog.frameworks().smp_v2_images
    image = images.get(spec.framework_version)
    if image is None:
        return [Problem("framework_version", f"SageMaker model parallelism v2 has no image for PyTorch {spec.framework_version!r}.",
                        f"use one of: {', '.join(images)}.")]
    if spec.py_version not in image.py_versions:
        return [Problem("py_version", f"the SMP v2 image for PyTorch {spec.framework_version} is built for {', '.join(image.py_versions)}, not {spec.py_version!r}.",
                        f"set py_version to {image.py_versions[0]!r}.")]
    return []


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", version))


def _check_distribution(spec: JobSpec) -> list[Problem]:
    out = []
    d = spec.distribution
    instance = catalog.instances().get(spec.compute.instance_type)
    fw = catalog.frameworks()
    full = fw.resolve(spec.framework_version)
    if d.processes_per_host is not None and d.processes_per_host < 1:
        out.append(Problem("distribution.processes_per_host", f"is {d.processes_per_host}; at least one process per host.", "set it to 1 or more, or leave it out to use one per GPU."))
    if instance is not None and d.processes_per_host is not None and d.processes_per_host > instance.gpu_count:
        out.append(Problem("distribution.processes_per_host",
                           f"{d.processes_per_host} processes on {instance.name}, which has {instance.gpu_count} GPU{'s' if instance.gpu_count > 1 else ''}; each process needs its own GPU.",
                           f"set processes_per_host to at most {instance.gpu_count} (or leave it out), or choose an instance with {d.processes_per_host} GPUs: {_gpu_alternatives(d.processes_per_host, instance.family)}."))
    library = _LIBRARIES.get(type(d))
    if library is not None:
        out += _check_library(spec, full, *library(fw))
    elif full is not None and full not in fw.torch_distributed_gpu_versions:
        supported = [v for v in fw.torch_distributed_gpu_versions if _version_key(v) >= (2,)]
        out.append(Problem("framework_version", f"SageMaker's torch_distributed launcher does not support PyTorch {full}.",
                           f"use one of: {', '.join(supported)}."))
    out += _check_degrees(spec, instance)
    if isinstance(d, FSDP):
        world = processes_per_host(spec) * spec.compute.instance_count
        if d.mixed_precision == "bf16" and instance is not None and instance.gpu_architecture in NO_BF16:
            out.append(Problem("distribution.mixed_precision", f"bf16 needs Ampere or newer GPUs; {instance.name} has {instance.gpu_model} ({instance.gpu_architecture}).",
                               "use mixed_precision: fp16 or fp32, or an Ampere+ instance (g5, g6, g6e, p4d, p5)."))
        if d.shard_degree is not None and d.sharding != "hybrid_shard":
            out.append(Problem("distribution.shard_degree", f"only applies to sharding: hybrid_shard (sharding is {d.sharding}).",
                               "remove shard_degree, or set sharding: hybrid_shard."))
        if d.sharding == "hybrid_shard":
            degree = d.shard_degree or processes_per_host(spec)
            if degree > world or world % degree:
                out.append(Problem("distribution.shard_degree", f"hybrid_shard groups of {degree} do not divide the {world} processes "
                                   f"({spec.compute.instance_count} instances x {processes_per_host(spec)} processes).",
                                   f"choose a shard_degree that divides {world}: {', '.join(str(k) for k in range(1, world + 1) if world % k == 0)}."))
    return out


# SageMaker's own distributed libraries: (name, instance types, PyTorch versions or None when the image
# check covers them, what to use instead).
_LIBRARIES = {
    SMDDP: lambda fw: ("SMDDP", fw.smddp_instance_types, fw.smddp_versions,
                       "distribution.type: ddp (torchrun + NCCL), which runs on every GPU instance"),
    ModelParallelV2: lambda fw: ("SageMaker model parallelism v2", fw.smp_v2_instance_types, None,
                                 "distribution.type: fsdp or pipeline (native PyTorch)"),
    ModelParallelV1: lambda fw: ("SageMaker model parallelism v1 (in maintenance)", fw.smp_v1_instance_types,
                                 fw.smp_v1_versions, "distribution.type: smp_v2 or pipeline"),
}


def _check_library(spec: JobSpec, full: str | None, name: str, instance_types, versions, instead: str) -> list[Problem]:
    out = []
    fw = catalog.frameworks()
    if spec.compute.instance_type not in instance_types:
        out.append(Problem("compute.instance_type", f"{name} does not run on {spec.compute.instance_type}; it needs {' or '.join(instance_types)}.",
                           f"choose one of those, or use {instead}."))
    if versions is not None and full is not None and full not in versions:
        last = versions[-1]
        out.append(Problem("framework_version", f"{name} has no release for PyTorch {full}; its last is {last}.",
                           f"set framework_version to {last} (py_version {fw.py_versions[last][-1]}), or use {instead}."))
    return out


def model_layers(hyperparameters: dict) -> int | None:
    """Layers a pipeline can split the bundled scripts' models into, from their hyperparameters."""
    model = hyperparameters.get("model")
    if model == "gpt" and isinstance(hyperparameters.get("n_layers"), int):
        return hyperparameters["n_layers"]
    if model == "mlp" and isinstance(hyperparameters.get("hidden_sizes"), list):
        return len(hyperparameters["hidden_sizes"]) + 1
    return None


def _check_degrees(spec: JobSpec, instance) -> list[Problem]:
    d = spec.distribution
    cluster = degrees.Cluster(spec.compute.instance_count, processes_per_host(spec), instance.gpu_count if instance else None)
    batch = spec.hyperparameters.get("global_batch_size")
    batch = batch if isinstance(batch, int) and not isinstance(batch, bool) else None
    if isinstance(d, PipelineParallel):
        return degrees.check_pipeline(d, cluster, batch, model_layers(spec.hyperparameters))
    if isinstance(d, NaiveModelParallel):
        return degrees.check_naive(d, cluster, model_layers(spec.hyperparameters))
    if isinstance(d, ModelParallelV2):
        return degrees.check_smp_v2(d, cluster)
    if isinstance(d, ModelParallelV1):
        return degrees.check_smp_v1(d, cluster)
    return []


def _check_hyperparameters(spec: JobSpec) -> list[Problem]:
    out = []
    owned = spec.distribution.script_hyperparameters()
    for key, value in spec.hyperparameters.items():
        path = f"hyperparameters.{key}"
        if key.startswith("sagemaker_"):
            out.append(Problem(path, "keys starting with 'sagemaker_' are reserved for SageMaker and its launchers.", "rename the key."))
        elif not KEY_PATTERN.fullmatch(key):
            out.append(Problem(path, f"{key!r} cannot be a command-line flag (--{key}).", "use letters, digits, '_' and '-', starting with a letter or '_'."))
        if len(key) > MAX_KEY_CHARS:
            out.append(Problem(path, f"key has {len(key)} characters; SageMaker allows {MAX_KEY_CHARS}.", "shorten the key."))
        if key in owned and value != owned[key]:
            out.append(Problem(path, f"is set by distribution.type {spec.distribution.type!r} (to {owned[key]!r}).",
                               "remove it from hyperparameters; configure it on the distribution instead."))
        if value is None:
            out.append(Problem(path, "is null, which reaches the script as an empty string.", "give it a value or remove the key."))
            continue
        wire = to_wire(to_estimator_value(value))
        if len(wire) > MAX_VALUE_CHARS:
            out.append(Problem(path, f"encodes to {len(wire)} characters; SageMaker allows {MAX_VALUE_CHARS} per value.",
                               "put large settings in a config file in source_dir or an input channel and pass its name."))
        reason = looks_secret(key, value)
        if reason:
            out.append(Problem(path, f"looks like a secret ({reason}); hyperparameters are visible in the console and DescribeTrainingJob.",
                               "keep secrets in AWS Secrets Manager or SSM Parameter Store and read them in the script through the execution role."))
    total = len(set(spec.hyperparameters) | set(owned)) + 1 + len(
        set(SDK_BASE_KEYS) | set(spec.distribution.sdk_hyperparameters(spec.compute.instance_type))
    )
    if total > MAX_HYPERPARAMETERS:
        out.append(Problem("hyperparameters", f"the job would have {total} hyperparameters ({len(spec.hyperparameters)} yours, the rest added by the SDK and smjobs); SageMaker allows {MAX_HYPERPARAMETERS}.",
                           "group related settings into one list or dict value, or a config file."))
    return out


def _check_script_arguments(spec: JobSpec) -> list[Problem]:
    script = source_dir(spec) / spec.entry_point
    flags = accepted_flags(script, source_dir(spec)) if script.is_file() else None
    if flags is None:
        return []
    out = []
    for key in spec.hyperparameters:
        if key not in flags:
            near = difflib.get_close_matches(key, sorted(flags), n=1, cutoff=0.6)
            hint = f"did you mean {near[0]!r}? " if near else ""
            out.append(Problem(f"hyperparameters.{key}", f"{spec.entry_point} does not accept --{key}; argparse would stop the job at start-up.",
                               f"{hint}Its options: {', '.join(sorted(flags))}."))
    sdk_to_script = {k for k in spec.distribution.sdk_hyperparameters(spec.compute.instance_type) if not k.startswith("sagemaker_")}
    for key in [*spec.distribution.script_hyperparameters(), *sorted(sdk_to_script)]:
        if key not in flags:
            out.append(Problem("distribution.type", f"distribution {spec.distribution.type!r} passes --{key}, which {spec.entry_point} does not accept.",
                               f"add a --{key} option to the script, or choose a strategy the script supports."))
    return out


def _check_environment_and_tags(spec: JobSpec) -> list[Problem]:
    out = []
    for key, value in spec.environment.items():
        reason = looks_secret(key, value)
        if reason:
            out.append(Problem(f"environment.{key}", f"looks like a secret ({reason}); the environment is visible in DescribeTrainingJob.",
                               "keep secrets in AWS Secrets Manager or SSM Parameter Store and read them at run time."))
    for key in spec.tags:
        if key.lower().startswith("aws:"):
            out.append(Problem(f"tags.{key}", "tag keys starting with 'aws:' are reserved for AWS.", "choose another key."))
    return out


def _check_s3_uri(path: str, uri: str) -> list[Problem]:
    match = S3_URI.fullmatch(uri)
    if not match:
        return [Problem(path, f"{uri!r} is not an s3:// URI.", "write it as s3://bucket/prefix.")]
    if not BUCKET_NAME.fullmatch(match["bucket"]):
        return [Problem(path, f"{match['bucket']!r} is not a valid S3 bucket name.", "use 3-63 lowercase letters, digits, '.' and '-'.")]
    return []


def _check_storage(spec: JobSpec) -> list[Problem]:
    out = []
    if spec.output_path:
        out += _check_s3_uri("output_path", spec.output_path)
    if spec.checkpoint_s3_uri:
        out += _check_s3_uri("checkpoint_s3_uri", spec.checkpoint_s3_uri)
    if not spec.checkpoint_local_path.startswith("/"):
        out.append(Problem("checkpoint_local_path", f"{spec.checkpoint_local_path!r} is not an absolute path in the container.", "use /opt/ml/checkpoints."))
    for name, channel in spec.inputs.items():
        path = f"inputs.{name}"
        if not re.fullmatch(r"[A-Za-z0-9.\-_]{1,64}", name):
            out.append(Problem(path, f"channel name {name!r} is not valid.", "use 1-64 letters, digits, '.', '-' or '_'."))
        if name == "code" and spec.security.network_isolation:
            out.append(Problem(path, "with network_isolation the SDK mounts the job's code as channel 'code'.", "rename the channel."))
        if channel.uri.startswith("s3://"):
            out += _check_s3_uri(f"{path}.uri", channel.uri)
        elif "://" in channel.uri:
            out.append(Problem(f"{path}.uri", f"{channel.uri!r}: only s3:// URIs and local directories are supported.", "upload the data to S3 or give a local directory."))
        elif not Path(channel.uri).expanduser().is_dir():
            out.append(Problem(f"{path}.uri", f"local directory {channel.uri!r} does not exist.", "create it, fix the path, or give an s3:// URI."))
    return out


def _check_security(spec: JobSpec) -> list[Problem]:
    out = []
    s = spec.security
    if bool(s.subnets) != bool(s.security_group_ids):
        missing = "security_group_ids" if s.subnets else "subnets"
        out.append(Problem(f"security.{missing}", "a VPC job needs both subnets and security_group_ids.", f"add security.{missing}, or remove the other."))
    for i, subnet in enumerate(s.subnets):
        if not SUBNET_ID.fullmatch(subnet):
            out.append(Problem(f"security.subnets.{i}", f"{subnet!r} is not a subnet ID.", "use IDs like subnet-0abc1234def567890."))
    for i, group in enumerate(s.security_group_ids):
        if not SECURITY_GROUP_ID.fullmatch(group):
            out.append(Problem(f"security.security_group_ids.{i}", f"{group!r} is not a security group ID.", "use IDs like sg-0abc1234def567890."))
    for field in ("volume_kms_key", "output_kms_key"):
        key = getattr(s, field)
        if key is not None and not KMS_KEY.fullmatch(key):
            out.append(Problem(f"security.{field}", f"{key!r} is not a KMS key ID, key ARN or alias.", "use a key ID, arn:aws:kms:...:key/..., or alias/name."))
    return out


def _check_metrics(spec: JobSpec) -> list[Problem]:
    out = []
    names = set()
    for i, metric in enumerate(spec.metric_definitions):
        path = f"metric_definitions.{i}"
        if metric.name in names:
            out.append(Problem(f"{path}.name", f"{metric.name!r} is defined twice.", "give each metric a unique name."))
        names.add(metric.name)
        try:
            groups = re.compile(metric.regex).groups
        except re.error as exc:
            out.append(Problem(f"{path}.regex", f"{metric.regex!r} is not a valid regular expression ({exc}).", "fix the expression."))
            continue
        if groups < 1:
            out.append(Problem(f"{path}.regex", f"{metric.regex!r} has no capture group; SageMaker records the first group as the value.",
                               "wrap the number in parentheses, e.g. loss=([0-9.eE+-]+)."))
    return out


def _check_region(spec: JobSpec, region: str | None) -> list[Problem]:
    region = region or spec.region
    fw = catalog.frameworks()
    full = fw.resolve(spec.framework_version)
    if region is None or full is None:
        return []
    if region not in fw.registries[full]:
        return [Problem("region", f"PyTorch {full} training images are not published in {region!r}.",
                        f"use one of: {', '.join(sorted(fw.registries[full])[:8])}, ...")]
    return []


# ----- layer 3: the net ------------------------------------------------------------------------------------
def check_request_against_service_model(spec: JobSpec, *, region: str | None = None, **resolved: Any) -> list[Problem]:
    """Build the CreateTrainingJob request and check it against botocore's model; report spec paths."""
    request = build_request(spec, region=region, **resolved)
    params = copy.deepcopy(request.create_training_job)
    if params["RoleArn"] == UNRESOLVED_ROLE:
        params["RoleArn"] = "arn:aws:iam::000000000000:role/unresolved"  # stands in until submit resolves it
    out = []
    for problem in service_model.check(params):
        member = problem.path.removeprefix("CreateTrainingJob.")
        spec_path = next((sp for rp, sp in _REQUEST_TO_SPEC if member.startswith(rp)), member)
        out.append(Problem(spec_path, f"{problem.message} (CreateTrainingJob.{member}, botocore's SageMaker model).",
                           "change the value so the service accepts it."))
    return out
