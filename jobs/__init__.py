"""smjobs: distributed PyTorch training on Amazon SageMaker from a declarative, validated job spec.

    from smjobs import load_spec, build_request, plan, run_local, submit

    spec = load_spec("job.yaml")            # every problem at once (SpecError), before any AWS call
    request = build_request(spec)           # the CreateTrainingJob request, as plain data (the dry run)
    source_manifest(spec).to_dict()         # the files the code archive holds
    result = run_local(spec, processes=2)   # here, under SageMaker's container toolkit
    placement_warnings(spec)                # slower links than the strategy assumes (no EFA, groups across hosts)
    submit(spec)                            # CreateTrainingJob with boto3: the dry run, sent as it is
    to_estimator(spec) / to_model_trainer(spec)   # the SDK's own object (v2 / v3), from the same request
    deploy_infra(region="eu-west-1")        # `smjobs infra deploy`: the execution role and bucket as a stack
    tuning_request(spec) / submit_tuning(spec) / tune_local(spec, trials=5)   # a spec with a tuning section
    transform_request(spec) / submit_transform(spec)                         # inference with Batch Transform

Spec sections (``Compute``, ``MetricDefinition``) and strategies (``DDP``, ``FSDP``, ``SMDDP``, ``PipelineParallel``,
``NaiveModelParallel``, ``ModelParallelV1``, ``ModelParallelV2``) build a spec in Python; ``AwsContext`` (imported on
first use) pins the AWS session, region and endpoint a call uses. Each wing (``smjobs.planner``,
``smjobs.schedules``, ...) documents its own public names in its ``__init__``.

Importing smjobs imports neither the SageMaker SDK nor boto3, and touches no credentials; each name is imported
from its module on first use.
"""

import logging

# a library's logger stays silent until its user configures logging (the CLI renders it on stderr; -v, -q)
logging.getLogger("smjobs").addHandler(logging.NullHandler())

_HOMES = {
    # name: the module it lives in (imported on first use: `import smjobs` and the command line's first
    # instruction stay cheap, and AwsContext's boto3 is imported only when asked for)
    "UsageError": "smjobs.api",
    "deploy_infra": "smjobs.api",
    "load_spec": "smjobs.api",
    "plan": "smjobs.api",
    "run_local": "smjobs.api",
    "source_manifest": "smjobs.api",
    "submit": "smjobs.api",
    "submit_transform": "smjobs.api",
    "submit_tuning": "smjobs.api",
    "to_estimator": "smjobs.api",
    "to_model_trainer": "smjobs.api",
    "transform_request": "smjobs.api",
    "tune_local": "smjobs.api",
    "tuning_request": "smjobs.api",
    "placement_warnings": "smjobs.checks.placement",
    "validate_and_plan": "smjobs.checks.validate",
    "validate_spec": "smjobs.checks.validate",
    "Problem": "smjobs.errors",
    "SpecError": "smjobs.errors",
    "SourceManifest": "smjobs.request.source",
    "TrainingRequest": "smjobs.request.training",
    "build_request": "smjobs.request.training",
    "Compute": "smjobs.spec.job",
    "JobSpec": "smjobs.spec.job",
    "MetricDefinition": "smjobs.spec.job",
    "example_path": "smjobs.spec.job",
    "read_spec_data": "smjobs.spec.job",
    "DDP": "smjobs.spec.strategies",
    "FSDP": "smjobs.spec.strategies",
    "SMDDP": "smjobs.spec.strategies",
    "ModelParallelV1": "smjobs.spec.strategies",
    "ModelParallelV2": "smjobs.spec.strategies",
    "NaiveModelParallel": "smjobs.spec.strategies",
    "PipelineParallel": "smjobs.spec.strategies",
    "AwsContext": "smjobs.aws.context",
}

__all__ = [
    "DDP",
    "FSDP",
    "SMDDP",
    "AwsContext",
    "Compute",
    "JobSpec",
    "MetricDefinition",
    "ModelParallelV1",
    "ModelParallelV2",
    "NaiveModelParallel",
    "PipelineParallel",
    "Problem",
    "SourceManifest",
    "SpecError",
    "TrainingRequest",
    "UsageError",
    "build_request",
    "deploy_infra",
    "example_path",
    "load_spec",
    "placement_warnings",
    "read_spec_data",
    "plan",
    "run_local",
    "source_manifest",
    "submit",
    "submit_transform",
    "submit_tuning",
    "to_estimator",
    "to_model_trainer",
    "transform_request",
    "tune_local",
    "tuning_request",
    "validate_and_plan",
    "validate_spec",
]


def __getattr__(name: str):
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'smjobs' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(home), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
