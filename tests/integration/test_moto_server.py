"""The real CLI, as a user runs it, against a moto_server on 127.0.0.1 (started and stopped here)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import boto3
import pytest

pytestmark = pytest.mark.integration
BIN = Path(sys.executable).parent


def cli(*args, env):
    return subprocess.run([sys.executable, "-m", "smjobs.cli", *args], capture_output=True, text=True, env=env, timeout=180)


def test_cli_submits_to_moto_server(moto_server, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_ACCESS") and k != "AWS_SECRET_ACCESS_KEY"}
    env.update(AWS_DEFAULT_REGION="us-east-1", COLUMNS="200", SMJOBS_STATE_DIR=str(tmp_path / "state"))
    client = dict(endpoint_url=moto_server, region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing")

    unset = cli("submit", "ddp_mlp", "--endpoint-url", moto_server, "--job-name", "too-early", env=env)
    assert unset.returncode == 2 and "smjobs infra deploy" in unset.stderr, unset.stdout + unset.stderr
    assert boto3.client("s3", **client).list_buckets()["Buckets"] == []  # nothing was created
    deployed = cli("infra", "deploy", "--endpoint-url", moto_server, env=env)
    assert deployed.returncode == 0 and "stack smjobs: created" in deployed.stdout, deployed.stdout + deployed.stderr

    submitted = cli("submit", "ddp_mlp", "--endpoint-url", moto_server, "--job-name", "it-ddp-1", "--wait", env=env)
    assert submitted.returncode == 0, submitted.stdout + submitted.stderr
    assert "submitted it-ddp-1" in submitted.stdout and "it-ddp-1: Completed" in submitted.stdout
    assert "estimated cost: $" in submitted.stdout and "(stack smjobs)" in submitted.stdout

    job = boto3.client("sagemaker", **client).describe_training_job(TrainingJobName="it-ddp-1")
    assert job["ResourceConfig"]["InstanceType"] == "ml.g5.12xlarge"
    assert job["HyperParameters"]["sagemaker_torch_distributed_enabled"] == "true"
    assert job["RoleArn"] == "arn:aws:iam::123456789012:role/smjobs-sagemaker-execution"  # the stack's
    source = json.loads(job["HyperParameters"]["sagemaker_submit_directory"])
    bucket, key = source[len("s3://"):].split("/", 1)
    assert boto3.client("s3", **client).head_object(Bucket=bucket, Key=key)["ContentLength"] > 0

    # status, logs, stop and cost find the job where submit sent it: no --endpoint-url, no region
    elsewhere = {k: v for k, v in env.items() if k not in ("AWS_DEFAULT_REGION", "AWS_REGION")}
    status = cli("status", "it-ddp-1", "--watch", env=elsewhere)
    assert status.returncode == 0 and "Completed" in status.stdout, status.stdout + status.stderr
    logs = cli("logs", "it-ddp-1", "--follow", env=elsewhere)
    assert logs.returncode == 0 and "it-ddp-1: Completed" in logs.stdout, logs.stdout + logs.stderr
    stop = cli("stop", "it-ddp-1", env=elsewhere)
    assert stop.returncode == 0 and "is Completed: nothing to stop" in stop.stdout, stop.stderr
    cost = cli("cost", "it-ddp-1", env=elsewhere)
    assert cost.returncode == 0 and "billable time" in cost.stdout and "estimated at submit" in cost.stdout, cost.stderr
    listed = cli("list", "--endpoint-url", moto_server, "--status", "Completed", "--since", "1h", env=env)
    assert listed.returncode == 0 and "it-ddp-1" in listed.stdout and "ddp-mlp" in listed.stdout, listed.stderr

    bad = cli("submit", str(tmp_path / "missing.yaml"), "--endpoint-url", moto_server, env=env)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    jobs = boto3.client("sagemaker", **client).list_training_jobs()["TrainingJobSummaries"]
    assert [j["TrainingJobName"] for j in jobs] == ["it-ddp-1"]


def test_requests_sent_to_a_moto_server_equal_their_dry_runs(moto_server, monkeypatch, spec_data, tmp_path):
    """Over HTTP to a real moto_server: the CreateTrainingJob body, captured by botocore's before-call hook as it
    leaves, equals the dry run the CLI prints (`submit --dry-run`), byte for byte after JSON normalisation; so do
    a tuning job's and a Batch Transform job's bodies equal their requests."""
    import yaml

    from smjobs import api
    from smjobs.aws.context import AwsContext
    from smjobs.checks.validate import validate_spec

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    aws = AwsContext.create(region="us-east-1", endpoint_url=moto_server)
    sent = []
    # before-call sees the serialised request: the JSON body that goes over the wire
    aws.client("sagemaker").meta.events.register(
        "before-call.sagemaker.*", lambda params, model, **_: sent.append((model.name, json.loads(params["body"] or b"{}"))))
    outputs = api.deploy_infra(aws=aws).outputs
    role, bucket = outputs["RoleArn"], outputs["BucketName"]
    spec_file = tmp_path / "job.yaml"
    spec_file.write_text(yaml.safe_dump(spec_data))
    dry = cli("submit", str(spec_file), "--dry-run", "--region", "us-east-1", "--job-name", "http-1", "--role", role,
              "--bucket", bucket, env=dict(os.environ))
    assert dry.returncode == 0, dry.stderr
    printed = yaml.safe_load(dry.stdout)["create_training_job"]
    api.submit(validate_spec(spec_data), aws=aws, job_name="http-1", role_arn=role, bucket=bucket)
    [(operation, body)] = [(op, params) for op, params in sent if op == "CreateTrainingJob"]
    normal = lambda data: json.dumps(data, sort_keys=True)  # noqa: E731
    assert normal(body) == normal(printed)

    # a tuning job and a Batch Transform job over the same HTTP path: each body is its dry run
    tuning = api.submit_tuning(validate_spec({**spec_data, "name": "tune", "tuning": {
        "parameters": {"lr": {"type": "continuous", "min": 1e-4, "max": 1e-1, "scaling": "log"}},
        "objective": {"metric": "train:loss", "regex": "loss=([0-9.eE+-]+)"}}}), aws=aws, role_arn=role, bucket=bucket)
    records = tmp_path / "records.jsonl"
    records.write_text('{"inputs": [1, 2]}\n' * 4)
    (tmp_path / "model.pt").write_bytes(b"weights")
    transform = api.submit_transform(validate_spec({"name": "score", "compute": {"instance_type": "ml.g5.12xlarge"},
                                                    "inference": {"model": str(tmp_path / "model.pt"), "input": str(records),
                                                                  "output_path": f"s3://{bucket}/out/",
                                                                  "backend": "batch-transform"}}),
                                     aws=aws, role_arn=role, bucket=bucket)
    bodies = dict(sent)
    assert normal(bodies["CreateHyperParameterTuningJob"]) == normal(tuning.create_tuning_job)
    assert normal(bodies["CreateModel"]) == normal(transform.create_model)
    assert normal(bodies["CreateTransformJob"]) == normal(transform.create_transform_job)
