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
    env.update(AWS_DEFAULT_REGION="us-east-1", COLUMNS="200")
    submitted = cli("submit", "ddp_mlp", "--endpoint-url", moto_server, "--job-name", "it-ddp-1", env=env)
    assert submitted.returncode == 0, submitted.stdout + submitted.stderr
    assert "submitted it-ddp-1" in submitted.stdout

    client = dict(endpoint_url=moto_server, region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing")
    job = boto3.client("sagemaker", **client).describe_training_job(TrainingJobName="it-ddp-1")
    assert job["ResourceConfig"]["InstanceType"] == "ml.g5.12xlarge"
    assert job["HyperParameters"]["sagemaker_torch_distributed_enabled"] == "true"
    roles = boto3.client("iam", **client).list_roles()["Roles"]
    assert job["RoleArn"] in [r["Arn"] for r in roles]
    source = json.loads(job["HyperParameters"]["sagemaker_submit_directory"])
    bucket, key = source[len("s3://"):].split("/", 1)
    assert boto3.client("s3", **client).head_object(Bucket=bucket, Key=key)["ContentLength"] > 0

    status = cli("status", "it-ddp-1", "--endpoint-url", moto_server, env=env)
    assert status.returncode == 0 and "it-ddp-1" in status.stdout, status.stderr
    logs = cli("logs", "it-ddp-1", "--endpoint-url", moto_server, env=env)
    assert logs.returncode == 0, logs.stderr

    bad = cli("submit", str(tmp_path / "missing.yaml"), "--endpoint-url", moto_server, env=env)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    jobs = boto3.client("sagemaker", **client).list_training_jobs()["TrainingJobSummaries"]
    assert [j["TrainingJobName"] for j in jobs] == ["it-ddp-1"]
