"""Tuning specs: SageMaker's limits, the space narrowed against the planner, the budget, the request the SDK's
HyperparameterTuner really sends (captured from moto), tune-status, and a trial's world-size check."""

from __future__ import annotations

import copy
import datetime as dt
import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from smjobs import api, catalog
from smjobs.checks.validate import validate_spec
from smjobs.cli import app
from smjobs.errors import SpecError
from smjobs.tuning.space import prepare
from smjobs.tuning.trials import fit

ROOT = Path(__file__).resolve().parents[3]
LOSS = {"metric": "train:loss", "regex": "loss=([0-9.eE+-]+)"}
GPT = {"model": "gpt", "n_layers": 12, "d_model": 1024, "n_heads": 16, "seq_len": 1024, "vocab_size": 50304,
       "global_batch_size": 16, "steps": 1000}


def tuning_spec(tuning=None, hyperparameters=None, **top):
    return {"name": "tune", "entry_point": "train.py", "compute": {"instance_type": "ml.g5.12xlarge"},
            "hyperparameters": hyperparameters or {"model": "mlp", "steps": 20},
            "tuning": {"parameters": {"lr": {"type": "continuous", "min": 1e-4, "max": 1e-1, "scaling": "log"}},
                       "objective": LOSS, **(tuning or {})}, **top}


def gpt_spec(parameters, **tuning):
    return tuning_spec({"parameters": parameters, **tuning}, dict(GPT), distribution={"type": "fsdp"})


CONT = {"type": "continuous", "min": 0.1, "max": 0.9}


@pytest.mark.parametrize(("tuning", "paths"), [
    ({"parameters": {f"p{i}": CONT for i in range(31)}}, ["tuning.parameters"]),
    ({"parameters": {"opt": {"type": "categorical", "values": list(range(31))}}}, ["tuning.parameters.opt.values"]),
    ({"parameters": {"opt": {"type": "categorical", "values": ["a", "a"]}}}, ["tuning.parameters.opt.values"]),
    ({"strategy": "Grid"}, ["tuning.strategy"]),
    ({"strategy": "Grid", "parameters": {f"p{i}": {"type": "categorical", "values": [1, 2, 3]} for i in range(7)}},
     ["tuning.parameters"]),  # 3^7 = 2187 combinations > 750
    ({"strategy": "Hyperband"}, ["tuning.hyperband"]),
    ({"strategy": "Hyperband", "hyperband": {"min_resource": 1, "max_resource": 30000}}, ["tuning.hyperband"]),
    ({"strategy": "Hyperband", "hyperband": {"min_resource": 1, "max_resource": 9}, "early_stopping": "auto"},
     ["tuning.early_stopping"]),
    ({"hyperband": {"min_resource": 1, "max_resource": 9}}, ["tuning.hyperband"]),
    ({"max_trials": 751}, ["tuning.max_trials"]),
    ({"max_parallel_trials": 101}, ["tuning.max_parallel_trials"]),
    ({"objective": {"metric": "val:acc"}}, ["tuning.objective.metric"]),
    ({"objective": {"metric": "loss", "regex": "(l)oss=(\\d+)"}}, ["tuning.objective.regex"]),
    ({"parameters": {"momentum": {"type": "continuous", "min": 0.5, "max": 1.0, "scaling": "reverse_log"}}},
     ["tuning.parameters.momentum.scaling"]),
    ({"parameters": {"lr": {"type": "continuous", "min": 0, "max": 1, "scaling": "log"}}}, ["tuning.parameters.lr.scaling"]),
    ({"parameters": {"n": {"type": "integer", "min": 1.5, "max": 4}}}, ["tuning.parameters.n"]),
    ({"parameters": {"n": {"type": "integer", "min": 4, "max": 4}}}, ["tuning.parameters.n"]),
    ({"parameters": {"n": {"type": "categorical", "min": 1, "values": [1]}}}, ["tuning.parameters.n"]),
    ({"parameters": {"sagemaker_x": CONT}}, ["tuning.parameters.sagemaker_x"]),
    ({"warm_start": {"parents": ["bad name!"]}}, ["tuning.warm_start.parents.0"]),
    ({"completion": {}}, ["tuning.completion"]),
    ({"completion": {"trials_without_improvement": 2}}, ["tuning.completion.trials_without_improvement"]),
    ({"max_runtime_s": 31 * 24 * 3600}, ["tuning.max_runtime_s"]),
    ({"name": "a-name-that-is-far-too-long"}, ["tuning.name"]),
    ({"strategy": "Grid", "max_trials": 800, "early_stopping": "auto", "objective": {"metric": "nope"}},
     ["tuning.strategy", "tuning.max_trials", "tuning.objective.metric"]),
], ids=["31-parameters", "31-values", "repeated-value", "grid-continuous", "grid-too-big", "hyperband-no-bounds",
        "hyperband-max-resource", "hyperband-and-early-stopping", "hyperband-section-alone", "751-trials",
        "101-parallel", "undefined-metric", "two-groups", "reverse-log-to-1", "log-from-0", "fractional-integer",
        "empty-range", "categorical-with-min", "reserved-name", "warm-start-name", "empty-completion",
        "completion-2", "runtime-31-days", "name-too-long", "all-at-once"])
def test_every_limit_is_checked_and_named(tuning, paths):
    with pytest.raises(SpecError) as raised:
        validate_spec(tuning_spec(tuning))
    assert set(paths) <= set(raised.value.paths()), str(raised.value)


def test_a_name_the_script_does_not_take_is_refused_before_any_trial():
    spec = validate_spec(tuning_spec({"parameters": {"learning_rate": CONT}}))  # train.py takes --lr
    with pytest.raises(SpecError) as raised:
        prepare(spec)
    assert "tuning.parameters.learning_rate" in raised.value.paths(), str(raised.value)


def test_memory_parameters_are_narrowed_so_that_every_point_fits():
    parameters = {"lr": {"type": "continuous", "min": 1e-5, "max": 1e-2, "scaling": "log"},
                  "global_batch_size": {"type": "categorical", "values": [16, 30, 32, 64, 128, 256]},
                  "n_layers": {"type": "integer", "min": 8, "max": 96},
                  "seq_len": {"type": "categorical", "values": [512, 1024, 2048, 4096]}}
    spec = validate_spec(gpt_spec(parameters))
    space, _ = prepare(spec)
    narrowed = space.parameters
    assert narrowed["lr"] == spec.tuning.parameters["lr"], "lr does not touch memory"
    assert 30 not in narrowed["global_batch_size"].values, "train.py splits the global batch over 4 processes"
    removed = {r.what: r for r in space.removed}
    assert {"tuning.parameters.global_batch_size", "tuning.parameters.n_layers", "tuning.parameters.seq_len"} <= set(removed)
    largest = {"global_batch_size": max(narrowed["global_batch_size"].values), "n_layers": int(narrowed["n_layers"].max),
               "seq_len": max(narrowed["seq_len"].values)}
    assert fit(spec, largest, ("ml.g5.12xlarge", 1), None).fits is True, "the largest corner fits, so every point does"
    one_more = {**largest, "n_layers": largest["n_layers"] + 1}
    assert fit(spec, one_more, ("ml.g5.12xlarge", 1), None).fits is False, "the range is not narrowed further than needed"
    for value in set(spec.tuning.parameters["seq_len"].values) - set(narrowed["seq_len"].values):
        assert fit(spec, {**largest, "seq_len": value}, ("ml.g5.12xlarge", 1), None).fits is False
    assert "does not fit" in str(removed["tuning.parameters.n_layers"]) and "GiB" in str(removed["tuning.parameters.n_layers"])


def test_nothing_fits_is_a_problem_and_a_fitting_space_is_unchanged():
    with pytest.raises(SpecError) as raised:
        prepare(validate_spec(gpt_spec({"n_layers": {"type": "integer", "min": 400, "max": 500}})))
    assert "no value fits in GPU memory" in str(raised.value)
    small = validate_spec(gpt_spec({"n_layers": {"type": "integer", "min": 2, "max": 4}}))
    space, _ = prepare(small)
    assert space.parameters == small.tuning.parameters and not space.removed


def test_instance_configs_keep_only_what_runs_the_job_as_specified():
    spec = validate_spec(gpt_spec({"lr": CONT}, instance_configs=[
        {"instance_type": "ml.g6e.12xlarge"}, {"instance_type": "ml.p4d.24xlarge"}, {"instance_type": "ml.g5.12xlarge", "instance_count": 2}]))
    space, _ = prepare(spec)
    assert space.configs == (("ml.g5.12xlarge", 1), ("ml.g6e.12xlarge", 1), ("ml.g5.12xlarge", 2))
    assert [r.what for r in space.removed] == ["tuning.instance_configs.1"] and "8 GPUs per instance" in str(space.removed[0])


def test_a_budget_caps_the_trials_at_the_estimated_trial_cost():
    spec = validate_spec(gpt_spec({"lr": CONT}, max_trials=50))
    space, free = prepare(spec)
    assert free.trials == 50 and free.basis.startswith("planner")
    per_trial = free.trial_usd
    assert per_trial == pytest.approx(fit(spec, {}, ("ml.g5.12xlarge", 1), None).usd)
    budget = per_trial * 7.5
    capped = validate_spec(gpt_spec({"lr": CONT}, max_trials=50, max_usd=budget))
    _, estimate = prepare(capped)
    assert (estimate.trials, estimate.capped) == (7, True) and estimate.total_usd <= budget
    request = api.tuning_request(capped)
    assert request.create_tuning_job["HyperParameterTuningJobConfig"]["ResourceLimits"]["MaxNumberOfTrainingJobs"] == 7
    with pytest.raises(SpecError) as raised:
        prepare(validate_spec(gpt_spec({"lr": CONT}, max_usd=per_trial / 2)))
    assert "does not pay for one trial" in str(raised.value)


def test_without_a_described_model_a_trial_is_priced_at_its_time_limit():
    spec = validate_spec(tuning_spec(compute={"instance_type": "ml.g5.12xlarge", "max_run_s": 1800}))
    _, estimate = prepare(spec)
    price = catalog.prices().price("ml.g5.12xlarge").usd_per_hour
    assert estimate.trial_usd == pytest.approx(price / 2) and "max_run_s" in estimate.basis


@pytest.fixture
def captured(moto_aws):
    moto_aws.tuning = []
    moto_aws.client("sagemaker").meta.events.register(
        "provide-client-params.sagemaker.CreateHyperParameterTuningJob",
        lambda params, **_: moto_aws.tuning.append(copy.deepcopy(params)))
    return moto_aws


def test_the_request_the_sdk_sends_is_the_dry_run(captured):
    spec = validate_spec(gpt_spec(
        {"lr": {"type": "continuous", "min": 1e-5, "max": 1e-2, "scaling": "log"},
         "n_layers": {"type": "integer", "min": 8, "max": 96},
         "global_batch_size": {"type": "categorical", "values": [32, 64]}},
        max_trials=12, max_parallel_trials=3, early_stopping="auto", random_seed=5, max_runtime_s=86400,
        warm_start={"parents": ["earlier-tuning-1"], "type": "transfer_learning"},
        completion={"target": 2.1, "trials_without_improvement": 4},
        instance_configs=[{"instance_type": "ml.g6e.12xlarge"}]))
    request = api.submit_tuning(spec, aws=captured)
    [sent] = captured.tuning
    assert sent == request.create_tuning_job
    config, definition = sent["HyperParameterTuningJobConfig"], sent["TrainingJobDefinition"]
    assert config["ResourceLimits"] == {"MaxNumberOfTrainingJobs": 12, "MaxParallelTrainingJobs": 3, "MaxRuntimeInSeconds": 86400}
    assert (config["Strategy"], config["TrainingJobEarlyStoppingType"], config["RandomSeed"]) == ("Bayesian", "Auto", 5)
    ranges = config["ParameterRanges"]
    assert ranges["IntegerParameterRanges"][0]["Name"] == "n_layers" and int(ranges["IntegerParameterRanges"][0]["MaxValue"]) < 96
    assert ranges["ContinuousParameterRanges"][0]["ScalingType"] == "Logarithmic"
    assert config["TuningJobCompletionCriteria"]["BestObjectiveNotImproving"] == {"MaxNumberOfTrainingJobsNotImproving": 4}
    assert sent["WarmStartConfig"] == {"WarmStartType": "TransferLearning",
                                       "ParentHyperParameterTuningJobs": [{"HyperParameterTuningJobName": "earlier-tuning-1"}]}
    assert [c["InstanceType"] for c in definition["HyperParameterTuningResourceConfig"]["InstanceConfigs"]] == \
        ["ml.g5.12xlarge", "ml.g6e.12xlarge"]
    static = definition["StaticHyperParameters"]
    assert "lr" not in static and "n_layers" not in static and static["sagemaker_mpi_num_of_processes_per_host"] == "4"
    assert static["sagemaker_torch_distributed_enabled"] == "true"  # every trial runs under torchrun, 4 per host
    assert definition["AlgorithmSpecification"]["MetricDefinitions"] == [{"Name": "train:loss", "Regex": LOSS["regex"]}]
    described = captured.client("sagemaker").describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=request.job_name)
    assert described["HyperParameterTuningJobName"] == request.job_name


def test_a_tracked_tuning_job_gets_a_parent_run_that_every_trial_names(captured, tmp_path):
    """SageMaker runs the trials as separate jobs: the tuning job's MLflow run is made at submit, in the spec's
    server, and the trials' settings name it as their parent (the dry run shows where it goes)."""
    from mlflow.tracking import MlflowClient

    from smjobs.tuning.request import PARENT_RUN_PENDING, build_tuning_request

    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    spec = validate_spec(tuning_spec({"max_trials": 2}, tracking={"mlflow": {"tracking_uri": store, "experiment": "search"}}))
    dry = build_tuning_request(spec, *prepare(spec), job_name="lr-search-1")
    dry_settings = json.loads(dry.create_tuning_job["TrainingJobDefinition"]["Environment"]["SMJOBS_MLFLOW"])
    assert dry_settings["parent_run_id"] == PARENT_RUN_PENDING and "run_name" not in dry_settings
    request = api.submit_tuning(spec, aws=captured, job_name="lr-search-1")
    [sent] = captured.tuning
    assert sent == request.create_tuning_job
    settings = json.loads(sent["TrainingJobDefinition"]["Environment"]["SMJOBS_MLFLOW"])
    assert settings == {"tracking_uri": store, "experiment": "search", "parent_run_id": settings["parent_run_id"]}
    client = MlflowClient(tracking_uri=store)
    parent = client.get_run(settings["parent_run_id"])
    assert parent.info.run_name == "lr-search-1" and parent.data.tags["smjobs.tuning_job"] == "lr-search-1"
    assert parent.data.params == {"strategy": "Bayesian", "objective": "Minimize train:loss"}
    assert client.get_experiment(parent.info.experiment_id).name == "search"


def test_a_trial_run_takes_its_training_jobs_name_and_its_parent(tmp_path):
    from mlflow.tracking import MlflowClient

    import smjobs_runtime as smr

    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=store)
    parent = client.create_run(client.create_experiment("search"), run_name="lr-search-1").info.run_id
    env = smr.environment({"SM_CURRENT_HOST": "algo-1", "SM_HOSTS": '["algo-1"]', "RANK": "0", "WORLD_SIZE": "1",
                           "SMJOBS_CHECKPOINT_DIR": str(tmp_path / "ckpt")})
    settings = {"tracking_uri": store, "experiment": "search", "parent_run_id": parent}
    run_id = smr.start_tracking(env, {"lr": 0.01}, environ={"SMJOBS_MLFLOW": json.dumps(settings),
                                                            "TRAINING_JOB_NAME": "lr-search-1-002-abcdef12"})
    run = client.get_run(run_id)
    assert run.info.run_name == "lr-search-1-002-abcdef12" and run.data.tags["mlflow.parentRunId"] == parent


def test_tune_status_shows_trials_objectives_cost_and_the_best(captured):
    spec = validate_spec(tuning_spec({"max_trials": 3}))
    request = api.submit_tuning(spec, aws=captured)
    client = captured.client("sagemaker")
    trials = []
    for i, (loss, lr) in enumerate([(0.40, "0.001"), (0.12, "0.01"), (None, "0.09")]):
        name = f"{request.job_name}-{i + 1:03d}-abcdef12"
        client.create_training_job(TrainingJobName=name, RoleArn=request.training.role_arn,
                                   AlgorithmSpecification={"TrainingImage": "image", "TrainingInputMode": "File"},
                                   OutputDataConfig={"S3OutputPath": "s3://bucket/"}, StoppingCondition={"MaxRuntimeInSeconds": 3600},
                                   ResourceConfig={"InstanceType": "ml.g5.12xlarge", "InstanceCount": 1, "VolumeSizeInGB": 100})
        summary = {"TrainingJobName": name, "TrainingJobArn": f"arn:aws:sagemaker:us-east-1:123456789012:training-job/{name}",
                   "CreationTime": dt.datetime(2026, 11, 1), "TrainingJobStatus": "Completed" if loss else "InProgress",
                   "TunedHyperParameters": {"lr": lr}}
        if loss is not None:
            summary["FinalHyperParameterTuningJobObjectiveMetric"] = {"MetricName": "train:loss", "Value": loss}
        trials.append(summary)
    # moto does not implement this call or bill time: stand in for the service with its documented response
    from botocore.awsrequest import AWSResponse

    client.meta.events.register("before-call.sagemaker.ListTrainingJobsForHyperParameterTuningJob",
                                lambda **_: (AWSResponse("https://sagemaker", 200, {}, None), {"TrainingJobSummaries": trials}))

    def billed(parsed, **_):
        parsed["BillableTimeInSeconds"] = 1800

    client.meta.events.register("after-call.sagemaker.DescribeTrainingJob", billed)
    from smjobs.aws.tuning import tuning_status

    status = tuning_status(captured, request.job_name)
    price = catalog.prices().price("ml.g5.12xlarge").usd_per_hour
    assert [t["objective"] for t in status["trials"]] == [0.40, 0.12, None]
    assert status["best"]["name"].endswith("-002-abcdef12") and status["best"]["hyperparameters"] == {"lr": "0.01"}
    assert status["usd_so_far"] == pytest.approx(3 * price / 2)
    # the same through `smjobs tune-status -o json`, validated against its schema (on this client, with its stand-ins)
    import jsonschema
    from pytest import MonkeyPatch

    with MonkeyPatch.context() as patch:
        patch.setattr("smjobs.cli.tune.aws_context", lambda *args, **kwargs: captured)
        printed = CliRunner().invoke(app, ["tune-status", request.job_name, "-o", "json"])
    assert printed.exit_code == 0, printed.output
    document = json.loads(printed.stdout)
    jsonschema.validate(document, json.loads((ROOT / "docs" / "schemas" / "tune-status.schema.json").read_text()))
    assert [t["objective"] for t in document["trials"]] == [0.40, 0.12, None]
    assert document["best"]["hyperparameters"] == {"lr": "0.01"} and document["usd_so_far"] == pytest.approx(3 * price / 2)


def test_cli_dry_run_prints_the_request_and_what_was_narrowed(tmp_path):
    spec_file = tmp_path / "tune.yaml"
    spec_file.write_text(yaml.safe_dump(gpt_spec({"n_layers": {"type": "integer", "min": 8, "max": 96}})))
    result = CliRunner().invoke(app, ["tune", str(spec_file), "--dry-run"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    printed = yaml.safe_load(result.stdout)
    assert printed["create_tuning_job"]["HyperParameterTuningJobConfig"]["ParameterRanges"]["IntegerParameterRanges"][0]["Name"] == "n_layers"
    assert "narrowed: tuning.parameters.n_layers: 8..96 ->" in result.stderr and "cost: 10 trials x $" in result.stderr
    refused = CliRunner().invoke(app, ["tune", str(spec_file), "--dry-run", "--set", "tuning.max_trials=900"])
    assert refused.exit_code == 2 and "tuning.max_trials" in refused.output


def test_a_trial_that_started_fewer_processes_than_declared_fails_loudly(tmp_path):
    import smjobs_runtime as smr

    config = tmp_path / "input" / "config"
    config.mkdir(parents=True)
    (config / "hyperparameters.json").write_text(json.dumps({"sagemaker_mpi_num_of_processes_per_host": "8"}))
    environ = {"SAGEMAKER_BASE_DIR": str(tmp_path), "SM_HOSTS": '["algo-1", "algo-2"]'}
    with pytest.raises(RuntimeError, match="1 process\\(es\\) started, but the job declares 2 host\\(s\\) x 8"):
        smr.check_world_size(smr.environment(environ), environ)
    smr.check_world_size(smr.environment({**environ, "WORLD_SIZE": "16"}), {**environ, "WORLD_SIZE": "16"})
    smr.check_world_size(smr.environment({}), {"SAGEMAKER_BASE_DIR": str(tmp_path / "elsewhere")})  # no contract


def test_cli_tune_submits_through_the_sdk(captured, tmp_path):
    spec_file = tmp_path / "tune.yaml"
    spec_file.write_text(yaml.safe_dump(tuning_spec({"max_trials": 4, "max_parallel_trials": 2})))
    result = CliRunner().invoke(app, ["tune", str(spec_file), "--region", "us-east-1"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "submitted tuning job tune-" in result.stdout and "4 trials, 2 at once" in result.stdout
    import re

    name = re.search(r"smjobs tune-status (\S+)", result.stdout).group(1)
    described = captured.client("sagemaker").describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)
    limits = described["HyperParameterTuningJobConfig"]["ResourceLimits"]
    assert (limits["MaxNumberOfTrainingJobs"], limits["MaxParallelTrainingJobs"]) == (4, 2)
