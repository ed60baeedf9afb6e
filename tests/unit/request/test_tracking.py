"""The spec's ``tracking.mlflow``: validated field by field, carried to SageMaker as the request's MlflowConfig (checked
against botocore's service model, and as boto3 sent it) and to the script as its environment, refused where it cannot
work before any AWS call, and allowed by the execution role's policy."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from smjobs.checks import service_model
from smjobs.checks.validate import parse_spec, validate_spec
from smjobs.errors import SpecError, UsageError
from smjobs.request.training import build_request

from smjobs_runtime import TRACKING_ENV

ROOT = Path(__file__).resolve().parents[3]
ARN = "arn:aws:sagemaker:us-east-1:123456789012:mlflow-tracking-server/team"


def tracked(spec_data, **mlflow):
    return {**spec_data, "tracking": {"mlflow": mlflow}}


def test_a_managed_server_becomes_the_requests_mlflow_config_and_the_scripts_environment(spec_data):
    request = build_request(validate_spec(tracked(spec_data, tracking_server_arn=ARN)), job_name="tracked-1",
                            role_arn="arn:aws:iam::123456789012:role/smjobs", bucket="project-bucket")
    ctj = request.create_training_job
    assert ctj["MlflowConfig"] == {"MlflowResourceArn": ARN, "MlflowExperimentName": spec_data["name"],
                                   "MlflowRunName": "tracked-1"}
    assert json.loads(ctj["Environment"][TRACKING_ENV]) == {"tracking_uri": ARN, "experiment": spec_data["name"],
                                                            "run_name": "tracked-1"}
    assert service_model.check(ctj) == []
    other = build_request(validate_spec(tracked(spec_data, tracking_uri="https://mlflow.example.com", experiment="e",
                                                run_name="r")), job_name="tracked-2")
    assert "MlflowConfig" not in other.create_training_job  # any other server: the environment only
    assert json.loads(other.create_training_job["Environment"][TRACKING_ENV])["tracking_uri"] == "https://mlflow.example.com"
    assert TRACKING_ENV not in build_request(validate_spec(spec_data)).create_training_job["Environment"]


def test_every_wrong_field_is_named(spec_data):
    _, problems = parse_spec(tracked(spec_data, tracking_server_arn="arn:aws:s3:::bucket", experiment="has space"))
    assert {p.path for p in problems} >= {"tracking.mlflow.tracking_server_arn", "tracking.mlflow.experiment"}, problems
    with pytest.raises(SpecError) as raised:
        validate_spec(tracked(spec_data, tracking_server_arn=ARN, tracking_uri="http://x"))
    problems = raised.value.problems
    assert [p.path for p in problems] == ["tracking.mlflow"] and "two servers" in problems[0].message


def test_what_cannot_track_on_sagemaker_is_refused_before_any_aws_call(spec_data, monkeypatch):
    from smjobs import api

    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    with pytest.raises(SpecError) as raised:  # no credentials: an AWS call would have failed otherwise
        api.submit(validate_spec(tracked(spec_data, experiment="local-only")), region="us-east-1")
    assert raised.value.problems[0].path == "tracking.mlflow" and "tracking_server_arn" in raised.value.problems[0].fix
    with pytest.raises(UsageError, match="MlflowConfig"):  # the SDK's objects cannot carry it
        api.to_model_trainer(validate_spec(tracked(spec_data, tracking_server_arn=ARN)), region="us-east-1")


def test_the_request_boto3_sends_carries_it(moto_aws, spec_data):
    from smjobs import api

    api.submit(validate_spec(tracked(spec_data, tracking_server_arn=ARN, run_name="first")), aws=moto_aws,
               job_name="sent-1")
    [sent] = moto_aws.sent
    assert sent["MlflowConfig"] == {"MlflowResourceArn": ARN, "MlflowExperimentName": spec_data["name"],
                                    "MlflowRunName": "first"}


def test_the_execution_role_may_log_to_the_specs_server(moto_bare, spec_data):
    from smjobs.aws.account import resolve
    from smjobs.infra.policies import DEFAULT_ROLE_NAME, MLFLOW_ACTIONS, POLICY_NAME
    from smjobs.infra.template import build

    resolve(validate_spec(tracked(spec_data, tracking_server_arn=ARN)), moto_bare, create_infra=True)
    policy = moto_bare.client("iam").get_role_policy(RoleName=DEFAULT_ROLE_NAME, PolicyName=POLICY_NAME)["PolicyDocument"]
    policy = json.loads(policy) if isinstance(policy, str) else policy
    [statement] = [s for s in policy["Statement"] if s.get("Sid") == "JobMlflowTracking"]
    assert statement["Resource"] == [ARN] and set(statement["Action"]) == set(MLFLOW_ACTIONS)
    template = build()
    assert "UseMlflow" in template["Conditions"] and "MlflowResourceArns" in template["Parameters"]


def test_without_a_tracking_section_the_runtime_does_nothing_and_imports_no_mlflow(tmp_path):
    code = ("import sys, smjobs_runtime as smr\n"
            "env = smr.environment({'SAGEMAKER_BASE_DIR': sys.argv[1]})\n"
            "print(smr.start_tracking(env, {'lr': 1}, environ={}), 'mlflow' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=60,
                          cwd=ROOT / "entry_points")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["None", "False"]
