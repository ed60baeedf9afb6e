"""Every rule a job spec must meet before anything is sent to AWS.

``validate_spec`` parses and checks a spec and raises one ``SpecError`` that lists every problem, each
with the field path and a fix. It runs in three layers:
1. structure (pydantic): unknown keys (with "did you mean"), types, allowed values;
2. smjobs' rules (``rules_cluster``: instances, images, strategies and degrees; ``rules_job``: code, script
   arguments, hyperparameters, secrets, storage, security, metrics);
3. a net under both: the CreateTrainingJob request the spec builds, checked against botocore's
   service model in full (enums, lengths, ranges, patterns).
Structural errors do not hide the rest: the offending fields are set aside and the other rules still run.
"""

from __future__ import annotations

import copy
import difflib
import types
import typing
from typing import Any

from pydantic import BaseModel, ValidationError

from smjobs.checks import cluster as rules_cluster
from smjobs.checks import job as rules_job
from smjobs.checks import preferences as rules_preferences
from smjobs.checks import service_model, tuning
from smjobs.errors import Problem, SpecError
from smjobs.inference import batch_transform
from smjobs.inference import section as inference
from smjobs.planner.plan import Plan
from smjobs.planner.resolve import AUTO, check_fits, resolve_auto
from smjobs.request.training import UNRESOLVED_ROLE, build_request
from smjobs.spec.file import SpecFileError, check_shape
from smjobs.spec.job import JobSpec
from smjobs.spec.strategies import STRATEGY_TYPES

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
        if not problems and found is None:  # a concrete instance type: does the described or traced model fit?
            problems += check_fits(spec, region)
    if problems:
        raise SpecError(problems)
    return spec, found


# ----- layer 1: structure ----------------------------------------------------------------------------
def parse_spec(data: JobSpec | dict[str, Any]) -> tuple[JobSpec | None, list[Problem]]:
    """Build a JobSpec; on structural errors, report them and build one from the remaining fields."""
    if isinstance(data, JobSpec):
        return data, []
    if not isinstance(data, dict):
        return None, [Problem("", f"a job spec is a mapping of fields, got {type(data).__name__}.", "give a mapping (a dict).")]
    try:
        check_shape(data)
    except SpecFileError as exc:
        return None, [Problem("", f"{exc}.", "flatten it: large settings belong in a file in source_dir or an input channel.")]
    data, problems = inference.expand(data)  # an inference section becomes ordinary job fields
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
        elif isinstance(ann, tuple):  # dict[str, Model] or tuple[Model, ...]: the key or index comes next
            if parts:
                part = parts.pop(0)
                if isinstance(node, dict):
                    node = node.get(part)
                else:
                    node = node[part] if isinstance(node, list) and isinstance(part, int) and part < len(node) else None
            cls = ann[1]
        else:
            cls = ann
    return list(cls.model_fields) if isinstance(cls, type) and issubclass(cls, BaseModel) else []


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
    if origin in (tuple, list):
        return ("sequence", _model_or_mapping(typing.get_args(annotation)[0]))
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
        rules_cluster.check_name,
        rules_job.check_code,
        rules_cluster.check_compute,
        rules_preferences.check_instance_preferences,
        rules_cluster.check_framework,
        rules_cluster.check_distribution,
        rules_job.check_hyperparameters,
        rules_job.check_script_arguments,
        rules_job.check_environment_and_tags,
        rules_job.check_storage,
        rules_job.check_security,
        rules_job.check_metrics,
        inference.check,
        batch_transform.check,
        tuning.check,
    ):
        problems += rule(spec)
    problems += rules_cluster.check_region(spec, region)
    if not problems:
        problems += check_request_against_service_model(spec, region=region)
    return problems


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
    if spec.inference is not None and spec.inference.backend == "batch-transform":
        out += transform_request_problems(batch_transform.build_transform_request(spec, region=region, **resolved))
    return out


def transform_request_problems(request) -> list[Problem]:
    """The CreateModel and CreateTransformJob requests of a TransformRequest against botocore's model."""
    out = []
    for operation, params in (("CreateModel", request.create_model), ("CreateTransformJob", request.create_transform_job)):
        params = copy.deepcopy(params)
        if params.get("ExecutionRoleArn") == UNRESOLVED_ROLE:
            params["ExecutionRoleArn"] = "arn:aws:iam::000000000000:role/unresolved"
        out += [Problem("inference", f"{p.message} ({p.path}, botocore's SageMaker model).",
                        "change the value so the service accepts it.") for p in service_model.check(params, operation)]
    return out


def tuning_request_problems(request) -> list[Problem]:
    """A TuningRequest's CreateHyperParameterTuningJob request against botocore's model."""
    params = copy.deepcopy(request.create_tuning_job)
    definition = params["TrainingJobDefinition"]
    if definition.get("RoleArn") == UNRESOLVED_ROLE:
        definition["RoleArn"] = "arn:aws:iam::000000000000:role/unresolved"
    return [Problem("tuning", f"{p.message} ({p.path}, botocore's SageMaker model).", "change the value so the service accepts it.")
            for p in service_model.check(params, "CreateHyperParameterTuningJob")]
