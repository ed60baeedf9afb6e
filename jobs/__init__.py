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

Importing smjobs imports neither the SageMaker SDK nor boto3, and touches no credentials.
"""

from smjobs.api import (
    UsageError,
    deploy_infra,
    load_spec,
    plan,
    run_local,
    source_manifest,
    submit,
    submit_transform,
    submit_tuning,
    to_estimator,
    to_model_trainer,
    transform_request,
    tune_local,
    tuning_request,
)
from smjobs.checks.placement import placement_warnings
from smjobs.checks.validate import validate_and_plan, validate_spec
from smjobs.errors import Problem, SpecError
from smjobs.request.source import SourceManifest
from smjobs.request.training import TrainingRequest, build_request
from smjobs.spec.job import Compute, JobSpec, MetricDefinition, example_path, read_spec_data
from smjobs.spec.strategies import (
    DDP,
    FSDP,
    SMDDP,
    ModelParallelV1,
    ModelParallelV2,
    NaiveModelParallel,
    PipelineParallel,
)

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
    # AwsContext imports boto3: only when asked for, so that `import smjobs` (and validate) stays without it
    if name == "AwsContext":
        from smjobs.aws.context import AwsContext

        return AwsContext
    raise AttributeError(f"module 'smjobs' has no attribute {name!r}")
