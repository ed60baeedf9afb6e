"""smjobs: distributed PyTorch training on Amazon SageMaker from a declarative, validated job spec.

    from smjobs import load_spec, build_request, plan, run_local, submit

    spec = load_spec("job.yaml")            # every problem at once (SpecError), before any AWS call
    request = build_request(spec)           # the CreateTrainingJob request, as plain data (the dry run)
    source_manifest(spec).to_dict()         # the files the code archive holds
    result = run_local(spec, processes=2)   # here, under SageMaker's container toolkit
    placement_warnings(spec)                # slower links than the strategy assumes (no EFA, groups across hosts)
    submit(spec)                            # the SageMaker SDK's PyTorch estimator, fit(wait=False)
    tuning_request(spec) / submit_tuning(spec) / tune_local(spec, trials=5)   # a spec with a tuning section
    transform_request(spec) / submit_transform(spec)                         # inference with Batch Transform

Importing smjobs imports neither the SageMaker SDK nor boto3, and touches no credentials.
"""

from smjobs.api import (
    UsageError,
    load_spec,
    plan,
    run_local,
    source_manifest,
    submit,
    submit_transform,
    submit_tuning,
    transform_request,
    tune_local,
    tuning_request,
)
from smjobs.checks.placement import placement_warnings
from smjobs.checks.validate import validate_and_plan, validate_spec
from smjobs.errors import Problem, SpecError
from smjobs.request.source import SourceManifest
from smjobs.request.training import TrainingRequest, build_request
from smjobs.spec.job import JobSpec

__all__ = [
    "JobSpec",
    "Problem",
    "SourceManifest",
    "SpecError",
    "TrainingRequest",
    "UsageError",
    "build_request",
    "load_spec",
    "placement_warnings",
    "plan",
    "run_local",
    "source_manifest",
    "submit",
    "submit_transform",
    "submit_tuning",
    "transform_request",
    "tune_local",
    "tuning_request",
    "validate_and_plan",
    "validate_spec",
]
