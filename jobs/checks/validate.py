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

import ast
import copy
import difflib
import re
import types
import typing
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from smjobs.checks import cluster as rules_cluster
from smjobs.checks import job as rules_job
from smjobs.checks import preferences as rules_preferences
from smjobs.checks import service_model, tuning
from smjobs.errors import Problem, SpecError
from smjobs.inference import batch_transform
from smjobs.inference import section as inference
from smjobs.request.training import UNRESOLVED_ROLE, build_request
from smjobs.spec.file import SpecFileError, check_shape
from smjobs.spec.job import AUTO, JobSpec
from smjobs.spec.strategies import STRATEGY_TYPES

if TYPE_CHECKING:
    from smjobs.planner.plan import Plan

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
        # the planner is imported only for the specs it has something to say about: `instance_type: auto`, and a
        # model that is described, traced or the bundled scripts' gpt (whether it fits)
        if spec.compute.instance_type == AUTO:
            from smjobs.planner.resolve import resolve_auto

            spec, found, planning = resolve_auto(spec, region)
            problems += planning
        broken = tuple(p.path for p in problems)
        if spec.compute.instance_type == AUTO:  # unresolved: its problems are the planner's, reported above
            broken += ("compute.instance_type",)
        for problem in check_spec(spec, region=region):
            if not broken or not problem.path.startswith(broken):
                problems.append(problem)
        if not problems and found is None and _may_not_fit(spec):  # a concrete instance type: does the model fit?
            from smjobs.planner.resolve import check_fits

            problems += check_fits(rules_job.with_script_defaults(spec), region)
    if problems:
        raise SpecError(problems)
    return spec, found


def _may_not_fit(spec: JobSpec) -> bool:
    """The model is one the planner can size (``check_fits`` decides, this only saves importing it otherwise)."""
    return (spec.plan.model is not None or spec.plan.model_factory is not None
            or rules_job.with_script_defaults(spec).hyperparameters.get("model") == "gpt")


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
            return JobSpec.model_validate(work), _without_echoes(problems)
        except ValidationError as exc:
            removed = False
            for err in exc.errors():
                problems.append(_problem_from_pydantic(err, data))
                removed |= _remove(work, err)
            if not removed:
                return None, _without_echoes(problems)
    return None, _without_echoes(problems)


def _without_echoes(problems: list[Problem]) -> list[Problem]:
    """Each problem once (a later round reports a missing field again), and no "X is required" where a misspelled
    key beside it already says "did you mean 'X'", or where X's value was refused (and then set aside)."""
    meant = {p.path.rsplit(".", 1)[0] + "." + p.fix.split("'")[1] if "." in p.path else p.fix.split("'")[1]
             for p in problems if p.message == "is not a known field." and p.fix.startswith("did you mean '")}
    out, seen = [], set()
    reported = {p.path for p in problems if p.message != "is required."}  # a value refused, then set aside
    for problem in problems:
        key = (problem.path, problem.message)
        if key in seen or (problem.message == "is required." and (problem.path in meant or problem.path in reported)):
            continue
        seen.add(key)
        out.append(problem)
    return out


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
    if kind == "smjobs":  # a field validator of the spec's own, with its fix
        return Problem(path, f"{err['msg']} (got {err.get('input')!r}).", err["ctx"]["fix"])
    return Problem(path, f"{err['msg']} (got {err.get('input')!r}).", _type_fix(kind, path))


def _type_fix(kind: str, path: str) -> str:
    if kind.startswith("int") or kind.startswith("float"):
        return f"give {path} a number."
    if kind.startswith("bool"):
        return f"give {path} true or false."
    if kind == "literal_error":
        return f"use one of the values listed for {path}."
    if kind == "string_too_short":
        return f"give {path} a value, or leave it out where it is optional."
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
        rules_job.check_channels,
        rules_job.check_environment_and_tags,
        rules_job.check_storage,
        rules_job.check_security,
        rules_job.check_metrics,
        rules_job.check_tracking,
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
        out.append(Problem(_spec_path(member, params), f"{problem.message} (CreateTrainingJob.{member}, botocore's "
                           "SageMaker model).", _service_fix(problem.message)))
    if spec.inference is not None and spec.inference.backend == "batch-transform":
        out += transform_request_problems(batch_transform.build_transform_request(spec, region=region, **resolved))
    return out


_QUOTED = r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\""
_MAP_ENTRY = re.compile(rf"(?P<member>Environment|HyperParameters)(?:\{{key (?P<key>{_QUOTED})\}}|\[(?P<value>{_QUOTED})\])")
_TAG_ENTRY = re.compile(r"Tags\[(?P<index>\d+)\]")


def _escaped(key: str) -> str:
    """A key as it can be printed on one line: control characters escaped (a newline would break the line)."""
    return key.encode("unicode_escape").decode("ascii") if not key.isprintable() else key


def _spec_path(member: str, params: dict) -> str:
    """The spec field behind a CreateTrainingJob member, down to the entry: ``environment.MY_KEY``, ``tags.team``."""
    entry = _MAP_ENTRY.match(member)
    if entry:
        key = ast.literal_eval(entry["key"] or entry["value"])
        return f"{'environment' if entry['member'] == 'Environment' else 'hyperparameters'}.{_escaped(key)}"
    tag = _TAG_ENTRY.match(member)
    if tag and int(tag["index"]) < len(params.get("Tags", [])):
        return f"tags.{_escaped(str(params['Tags'][int(tag['index'])]['Key']))}"
    return next((sp for rp, sp in _REQUEST_TO_SPEC if member.startswith(rp)), member)


def _service_fix(message: str) -> str:
    """What the service requires, as the fix: a length, a range, a pattern or its list of values."""
    found = re.search(r"allows at most (\d+)", message)
    if found:
        unit = "entries" if "entries" in message else "characters"
        return f"shorten it to at most {found[1]} {unit}, as the service requires."
    found = re.search(r"needs at least (\d+)", message)
    if found:
        return f"give it at least {found[1]}, as the service requires."
    found = re.search(r"does not match the service pattern (.+)$", message)
    if found:
        return f"write it to match the service's pattern {found[1]}."
    found = re.search(r"(below the service minimum|above the service maximum) (\S+)", message)
    if found:
        return f"use a value {'of at least' if 'minimum' in found[1] else 'of at most'} {found[2]}."
    if "is not one of" in message:
        return "use one of the values the service accepts."
    return "change the value so the service accepts it."


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
