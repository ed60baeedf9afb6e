"""The Python API behind ``from smjobs import ...``: the same steps as the CLI, as functions that return data.

Reading a spec file, validating it, planning, building the request and listing the code archive need neither AWS
nor the SageMaker SDK; ``run_local`` needs the container toolkit (the ``local`` extra); ``submit`` talks to AWS (or
to ``endpoint_url``, e.g. a moto server) with boto3 alone, whichever SageMaker SDK is installed, or none.
``to_estimator`` and ``to_model_trainer`` build the SDK's own objects from the same request.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import yaml

from smjobs.checks.validate import parse_spec, validate_and_plan
from smjobs.errors import SpecError, UsageError  # noqa: F401  (UsageError: callers import it here too)
from smjobs.request.source import SourceManifest, manifest_for
from smjobs.request.training import TrainingRequest, build_request
from smjobs.spec.file import SpecFileError, read_spec_data
from smjobs.spec.job import JobSpec, example_path, resolve_file_paths


def parse_value(raw: str):
    """A --set value: JSON when it parses (numbers, true, lists), else YAML, else the text itself."""
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        pass
    try:
        return yaml.safe_load(raw) if raw else ""
    except yaml.YAMLError:
        return raw


def apply_overrides(data: dict, overrides: Iterable[str]) -> dict:
    """Apply ``--set`` overrides to spec data (a copy): ``steps=10``, ``compute.instance_count=1``."""
    data = json.loads(json.dumps(data))
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--set {item!r}: expected key=value")
        path = key.split(".") if "." in key else ["hyperparameters", key]
        node = data
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise UsageError(f"--set {item!r}: {part} is not a mapping")
        node[path[-1]] = parse_value(raw)
    return data


def read_spec(spec: str | Path, overrides: Iterable[str] = ()) -> tuple[Path, dict[str, Any]]:
    """(the spec file, its data with paths resolved against the file and ``overrides`` applied): a path, or the name
    of a shipped example."""
    path = Path(spec)
    if not path.exists():
        try:
            path = example_path(str(spec))
        except FileNotFoundError as exc:
            raise UsageError(f"{spec}: no such file. {exc}") from None
    try:
        data = read_spec_data(path)
    except SpecFileError as exc:
        raise UsageError(f"cannot read the spec: {exc}") from None
    return path, apply_overrides(resolve_file_paths(data, path), overrides)


def load_spec(spec: str | Path | dict | JobSpec, *, overrides: Iterable[str] = (), region: str | None = None) -> JobSpec:
    """A validated spec from a file (YAML/JSON), a shipped example's name, plain data or a JobSpec; raises SpecError
    with every problem. ``instance_type: auto`` comes back resolved."""
    if isinstance(spec, dict | JobSpec):
        data = spec
    else:
        data = read_spec(spec, overrides)[1]
    return validate_and_plan(data, region=region)[0]


def plan(spec: str | Path | dict | JobSpec, *, region: str | None = None, top: int = 10):
    """The planner's answer for the spec's model and strategy over every instance type (``smjobs plan``)."""
    from smjobs.planner.resolve import plan_spec

    job, problems = parse_spec(spec if isinstance(spec, dict | JobSpec) else read_spec(spec)[1])
    if problems:
        raise SpecError(problems)
    found, problems = plan_spec(job, region, all_types=True, keep=max(top, 10))
    if problems:
        raise SpecError(problems)
    return found


def source_manifest(spec: JobSpec) -> SourceManifest:
    """The files ``submit`` would pack for ``spec`` (what ``submit --dry-run`` lists)."""
    return manifest_for(build_request(spec))


def prepare_local(spec: JobSpec, *, processes: int | None = None, work_dir: str | Path | None = None,
                  fresh: bool = False, region: str | None = None, rerun_finished: bool = False):
    """The request and the laid-out ``/opt/ml`` tree of a local run (default work dir: runs/<name>; ``fresh``
    deletes its checkpoints, model and output first), with the work dir locked until the run ends; raises SpecError
    for what keeps it from running here (``smjobs.local.prechecks``), before anything in the work dir changes, and
    ``smjobs.local.runner.FinishedBefore`` when the work dir holds this run finished (unless ``fresh`` or
    ``rerun_finished``)."""
    from smjobs.local import prechecks as local_checks
    from smjobs.local import runner as local

    missing = local_checks.toolkit_missing()
    if missing:  # before the work dir is made
        raise UsageError(missing)
    request = build_request(spec, region=region)
    work = Path(work_dir) if work_dir is not None else Path("runs") / spec.name
    processes = processes or local.default_processes(request)
    memory = local_checks.estimate_memory(spec, processes)
    return request, local.prepare(request, work, processes, fresh=fresh, memory=memory, rerun_finished=rerun_finished)


def run_local(spec: JobSpec, *, processes: int | None = None, work_dir: str | Path | None = None, fresh: bool = False,
              on_line: Callable[[str], None] | None = None):
    """Run ``spec`` on this machine under SageMaker's container toolkit (``smjobs run --local``); returns the
    RunResult (exit code, model/output/checkpoint folders, metrics). A run that finished before in the work dir with
    the same entry point and hyperparameters is not trained again (its result says ``finished_before``) unless
    ``fresh``."""
    from smjobs.local import runner as local

    try:
        request, layout = prepare_local(spec, processes=processes, work_dir=work_dir, fresh=fresh)
    except local.FinishedBefore as done:
        return local.RunResult(exit_code=0, layout=done.layout, finished_before=done.record)
    return local.launch(request, layout, on_line=on_line)


def aws_context(*, region: str | None = None, spec_region: str | None = None, endpoint_url: str | None = None,
                profile: str | None = None, what: str = ""):
    """An AwsContext whose region is resolved as the AWS CLI resolves it (``region``, the spec's, ``AWS_REGION``,
    ``AWS_DEFAULT_REGION``, the profile's config); raises UsageError, naming the fix, when there is none."""
    from smjobs.aws.context import AwsContext
    from smjobs.aws.region import RegionError, resolve_region

    try:
        found = resolve_region(region, spec_region, profile=profile, endpoint_url=endpoint_url, what=what)
    except RegionError as exc:
        raise UsageError(str(exc)) from None
    return AwsContext.create(region=found, endpoint_url=endpoint_url, profile=profile)


def _account(spec: JobSpec, aws, endpoint_url: str | None, region: str | None, role_arn: str | None, bucket: str | None,
             create_infra: bool = False, profile: str | None = None):
    """(the AwsContext: ``aws``, else one for ``region``, ``profile`` and ``endpoint_url``; the resolved account,
    bucket and role) that every submission starts from."""
    from smjobs.aws import submit as sagemaker_edge

    if problems := sagemaker_edge.tracking_problems(spec):  # before any AWS call
        raise SpecError(problems)
    aws = aws or aws_context(region=region, spec_region=spec.region, endpoint_url=endpoint_url, profile=profile)
    return aws, sagemaker_edge.resolve(spec, aws, role_arn=role_arn, bucket=bucket, create_infra=create_infra)


def _no_mlflow_config(spec: JobSpec, sdk_object: str) -> None:
    """The SDK's objects have no MlflowConfig: a spec that needs one is submitted by smjobs itself."""
    if spec.tracking is not None and spec.tracking.mlflow.tracking_server_arn:
        raise UsageError(f"tracking.mlflow.tracking_server_arn: {sdk_object} cannot send CreateTrainingJob's "
                         "MlflowConfig; submit with `smjobs submit` or smjobs.submit (the same request, with it)")


def check_quotas(aws, spec: JobSpec, *, usage: str | None = None, instance_count: int | None = None) -> None:
    """Raise SpecError when the account's Service Quota for ``usage`` ("training", "spot", "transform"; default: the
    spec's training or spot) cannot take ``instance_count`` (default: the spec's) more of the spec's instances; a
    quota that cannot be read is a warning, and the submission goes on."""
    import warnings

    from smjobs.aws import quotas

    compute = spec.compute
    report = quotas.check(aws, compute.instance_type, instance_count or compute.instance_count,
                          usage=usage or ("spot" if compute.use_spot else "training"))
    for notice in report.notices:
        warnings.warn(notice, stacklevel=3)
    if report.problems:
        raise SpecError(report.problems)


def submit(spec: JobSpec, *, aws=None, endpoint_url: str | None = None, region: str | None = None, profile: str | None = None,
           role_arn: str | None = None, bucket: str | None = None, job_name: str | None = None, create_infra: bool = False) -> TrainingRequest:
    """Create the training job (CreateTrainingJob, not waiting for it); returns the request that was sent. ``aws``: an
    ``smjobs.aws.context.AwsContext`` to use (by default one for ``region`` and ``endpoint_url``). The role and bucket are
    found (``smjobs.aws.account``), or created when ``create_infra``."""
    from smjobs.aws import submit as sagemaker_edge

    aws, resolved = _account(spec, aws, endpoint_url, region, role_arn, bucket, create_infra, profile)
    request = sagemaker_edge.resolved_request(spec, aws, resolved, job_name=job_name)
    check_quotas(aws, spec)
    sagemaker_edge.submit(request, aws)
    return request


def to_estimator(spec: JobSpec, *, aws=None, endpoint_url: str | None = None, region: str | None = None, profile: str | None = None,
                 role_arn: str | None = None, bucket: str | None = None, job_name: str | None = None,
                 create_infra: bool = False):
    """SageMaker SDK v2's ``sagemaker.pytorch.PyTorch`` for the spec, configured from the same request ``submit``
    sends, its code and local channels uploaded: ``est.fit(est.smjobs_inputs, job_name=est.smjobs_job_name)``
    starts it. Raises SdkVersionError in one line when SDK v3 (use ``to_model_trainer``) or no SDK is installed."""
    from smjobs.aws import sdk
    from smjobs.aws import submit as sagemaker_edge

    sdk.require_major(2, "to_estimator")
    _no_mlflow_config(spec, "SDK v2's PyTorch estimator")
    aws, resolved = _account(spec, aws, endpoint_url, region, role_arn, bucket, create_infra, profile)
    return sdk.to_estimator(sagemaker_edge.resolved_request(spec, aws, resolved, job_name=job_name), aws)


def to_model_trainer(spec: JobSpec, *, aws=None, endpoint_url: str | None = None, region: str | None = None, profile: str | None = None,
                     role_arn: str | None = None, bucket: str | None = None, job_name: str | None = None,
                     create_infra: bool = False):
    """SageMaker SDK v3's ``sagemaker.train.ModelTrainer`` for the spec, configured from the same request ``submit``
    sends (distribution, compute, channels, checkpoints, networking, stopping condition). Raises SdkVersionError in
    one line when SDK v2 (use ``to_estimator``) or no SDK is installed."""
    _no_mlflow_config(spec, "SDK v3's ModelTrainer")
    from smjobs.aws import sdk, sdk_v3
    from smjobs.aws import submit as sagemaker_edge

    sdk.require_major(3, "to_model_trainer")
    aws, resolved = _account(spec, aws, endpoint_url, region, role_arn, bucket, create_infra, profile)
    return sdk_v3.to_model_trainer(sagemaker_edge.resolved_request(spec, aws, resolved, job_name=job_name), aws)


def deploy_infra(*, aws=None, endpoint_url: str | None = None, region: str | None = None, profile: str | None = None,
                 stack_name: str = "smjobs", **parameters: Any):
    """``smjobs infra deploy``: create or update the account set-up stack (execution role and bucket) and wait for it;
    returns its result (``action``, ``outputs``). ``parameters`` are the template's (``role_name``, ``kms_key_arn``,
    ``checkpoint_days``, ``access_log_bucket``, ``vpc_id`` and its lists)."""
    from smjobs.infra import stack
    from smjobs.infra.template import render

    aws = aws or aws_context(region=region, endpoint_url=endpoint_url, profile=profile)
    return stack.deploy(aws.client("cloudformation"), render(), stack.parameters(**parameters), stack_name,
                        iam=aws.client("iam"))


def transform_request(spec: JobSpec, *, region: str | None = None, job_name: str | None = None):
    """The Batch Transform request of an inference spec, unresolved (``smjobs infer --backend batch-transform
    --dry-run``): no AWS call."""
    from smjobs.inference.batch_transform import build_transform_request

    return build_transform_request(spec, region=region, job_name=job_name)


def submit_transform(spec: JobSpec, *, aws=None, endpoint_url: str | None = None, region: str | None = None, profile: str | None = None,
                     role_arn: str | None = None, bucket: str | None = None, job_name: str | None = None,
                     create_infra: bool = False):
    """Create the model and the transform job of an inference spec (``--backend batch-transform``); returns the
    TransformRequest that was sent. S3 input objects are counted first, for the idle-instance warning."""
    from smjobs.aws import submit as sagemaker_edge
    from smjobs.checks.validate import transform_request_problems
    from smjobs.inference.batch_transform import build_transform_request

    aws, resolved = _account(spec, aws, endpoint_url, region, role_arn, bucket, create_infra, profile)
    source_uri = spec.inference.input
    objects = (sagemaker_edge.count_s3_objects(aws, source_uri, spec.compute.instance_count)
               if source_uri.startswith("s3://") and not source_uri.endswith(".manifest") else None)
    request = build_transform_request(spec, job_name=job_name, region=aws.region, bucket=resolved.bucket,
                                      role_arn=resolved.role_arn, input_objects=objects)
    problems = transform_request_problems(request)
    if problems:
        raise SpecError(problems)
    check_quotas(aws, spec, usage="transform")
    sagemaker_edge.submit_transform(request, aws)
    return request


def prepare_tuning(spec: JobSpec, *, region: str | None = None):
    """(the narrowed space, the cost estimate) of a spec with a tuning section; raises SpecError."""
    from smjobs.tuning.space import prepare

    if spec.tuning is None:
        raise UsageError("not a tuning spec: add a `tuning` section (parameters, objective)")
    return prepare(spec, region)


def tuning_request(spec: JobSpec, *, region: str | None = None, job_name: str | None = None):
    """The CreateHyperParameterTuningJob request of a tuning spec, unresolved (``smjobs tune --dry-run``)."""
    from smjobs.checks.validate import tuning_request_problems
    from smjobs.tuning.request import build_tuning_request

    space, estimate = prepare_tuning(spec, region=region)
    request = build_tuning_request(spec, space, estimate, region=region, job_name=job_name)
    problems = tuning_request_problems(request)
    if problems:
        raise SpecError(problems)
    return request


def submit_tuning(spec: JobSpec, *, aws=None, endpoint_url: str | None = None, region: str | None = None, profile: str | None = None,
                  role_arn: str | None = None, bucket: str | None = None, job_name: str | None = None,
                  create_infra: bool = False):
    """Narrow, price and create the tuning job (``HyperparameterTuner.fit(wait=False)``); returns the TuningRequest
    that was sent."""
    from smjobs.aws import tuning as sagemaker_tuning
    from smjobs.tuning.request import build_tuning_request

    space, estimate = prepare_tuning(spec, region=region)
    aws, resolved = _account(spec, aws, endpoint_url, region, role_arn, bucket, create_infra, profile)
    request = build_tuning_request(spec, space, estimate, region=aws.region, bucket=resolved.bucket,
                                   role_arn=resolved.role_arn, job_name=job_name)
    # parallel trials run at once: the quota must hold all of them
    check_quotas(aws, spec, instance_count=spec.compute.instance_count * spec.tuning.max_parallel_trials)
    sagemaker_tuning.submit_tuning(request, aws)
    return request


def tune_local(spec: JobSpec, *, trials: int, work_dir: str | Path | None = None, processes: int | None = None,
               on_trial=None, on_line=None, plot_path: str | Path | None = None):
    """Run the tuning spec's search here with Optuna (``smjobs tune --local``); returns the LocalTuning (trials,
    best trial, and the plot written to ``plot_path``, by default ``<work dir>/tuning.png``)."""
    from smjobs.tuning.search import plot, run_local_tuning

    space, _ = prepare_tuning(spec)
    work = Path(work_dir) if work_dir is not None else Path("runs") / f"{spec.name}-tuning"
    result = run_local_tuning(spec, space, trials=trials, work_dir=work, processes=processes, on_trial=on_trial,
                              on_line=on_line)
    if any(t.objective is not None for t in result.trials):
        plot(result, spec, Path(plot_path) if plot_path else work / "tuning.png")
    return result
