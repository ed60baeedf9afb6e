"""SDK v2's Estimator, built from smjobs' request (``smjobs.to_estimator``): what it sends is what smjobs' own
boto3 submission sends, field for field; its telemetry stays off unless the user's config turns it on. These run
where SDK v2 is installed (`make test` runs them in its second venv); conftest deselects them elsewhere."""

from __future__ import annotations

import copy

import pytest

from smjobs import api
from smjobs.aws import sdk
from smjobs.aws import submit as sagemaker_edge
from smjobs.checks.validate import validate_spec
from smjobs.spec.job import example_path, read_spec_data

pytestmark = pytest.mark.sdk_v2

EXAMPLES = ["ddp_mlp", "fsdp_gpt_spot", "smddp_cnn", "smp_v1_gpt", "smp_v2_gpt", "pipeline_gpt", "naive_mp_mlp"]


def through_the_estimator(aws, spec, job_name):
    estimator = api.to_estimator(spec, aws=aws, job_name=job_name)
    estimator.fit(estimator.smjobs_inputs, job_name=estimator.smjobs_job_name, wait=False, logs=False)
    return aws.sent[-1]


def through_smjobs(aws, spec, job_name):
    request = sagemaker_edge.resolved_request(spec, aws, sagemaker_edge.resolve(spec, aws), job_name=job_name)
    sagemaker_edge.submit(request, aws)
    return copy.deepcopy(aws.sent[-1]), request


@pytest.mark.parametrize("example", EXAMPLES)
def test_the_estimator_sends_what_smjobs_sends(moto_aws, example):
    spec = validate_spec(read_spec_data(example_path(example)))
    ours, request = through_smjobs(moto_aws, spec, "same-name")
    assert ours == request.create_training_job
    theirs = through_the_estimator(moto_aws, spec, "same-name")
    assert theirs == ours  # the whole request: image, instances, channels, hyperparameters, environment, stopping


def test_local_channels_isolation_and_preferences_match_too(moto_aws, spec_data, tmp_path):
    (tmp_path / "part-0.pt").write_bytes(b"data")
    spec = validate_spec({**spec_data, "environment": {"NCCL_DEBUG": "INFO"}, "tags": {"team": "ml"},
                          "security": {"network_isolation": True}, "inputs": {"train": {"uri": str(tmp_path)}},
                          "compute": {"instance_type": "ml.g5.12xlarge", "instance_count": 2, "instance_preferences": [
                              {"instance_type": "ml.g5.12xlarge", "instance_count": 2},
                              {"instance_type": "ml.g6e.12xlarge", "instance_count": 2}]}})
    ours, _ = through_smjobs(moto_aws, spec, "iso-1")
    theirs = through_the_estimator(moto_aws, spec, "iso-1")
    assert theirs == ours
    assert "InstancePreferences" in theirs["ResourceConfig"] and theirs["EnableNetworkIsolation"] is True


def test_on_sdk_v3_it_says_which_function_to_call(monkeypatch, spec_data):
    monkeypatch.setattr(sdk, "sdk_version", lambda: "3.27.0")
    with pytest.raises(sdk.SdkVersionError, match=r"has sagemaker 3\.27\.0: smjobs\.to_model_trainer\(spec\) builds v3's ModelTrainer"):
        api.to_estimator(validate_spec(spec_data))
    monkeypatch.setattr(sdk, "sdk_version", lambda: None)
    with pytest.raises(sdk.SdkVersionError, match="not installed: pip install 'sagemaker>=2.257,<3'"):
        api.to_estimator(validate_spec(spec_data))


def test_sdk_telemetry_is_off_unless_the_users_config_turns_it_on(tmp_path, monkeypatch):
    empty = tmp_path / "empty.yaml"
    empty.write_text("SchemaVersion: '1.0'\n")
    monkeypatch.setenv("SAGEMAKER_USER_CONFIG_OVERRIDE", str(empty))
    assert sdk.sdk_config()["SageMaker"]["PythonSDK"]["Modules"]["TelemetryOptOut"] is True
    opted_in = tmp_path / "on.yaml"
    opted_in.write_text("SchemaVersion: '1.0'\nSageMaker:\n  PythonSDK:\n    Modules:\n      TelemetryOptOut: false\n")
    monkeypatch.setenv("SAGEMAKER_USER_CONFIG_OVERRIDE", str(opted_in))
    assert sdk.sdk_config()["SageMaker"]["PythonSDK"]["Modules"]["TelemetryOptOut"] is False


def test_the_estimator_sends_no_telemetry_without_a_config(moto_aws, tmp_path, spec_data, monkeypatch):
    import sagemaker.telemetry.telemetry_logging as telemetry

    calls = []
    monkeypatch.setattr(telemetry, "_send_telemetry_request", lambda *a, **k: calls.append(a))
    empty = tmp_path / "empty.yaml"
    empty.write_text("SchemaVersion: '1.0'\n")
    monkeypatch.setenv("SAGEMAKER_USER_CONFIG_OVERRIDE", str(empty))
    spec = validate_spec(spec_data)
    through_the_estimator(moto_aws, spec, "quiet-sdk")
    assert calls == []
    (tmp_path / "on.yaml").write_text("SchemaVersion: '1.0'\nSageMaker:\n  PythonSDK:\n    Modules:\n      TelemetryOptOut: false\n")
    monkeypatch.setenv("SAGEMAKER_USER_CONFIG_OVERRIDE", str(tmp_path / "on.yaml"))
    through_the_estimator(moto_aws, spec, "loud-sdk")
    assert calls  # the same path does call it when the user opts in: the test above can fail
