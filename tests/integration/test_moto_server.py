"""The real CLI, as a user runs it, against a moto_server on 127.0.0.1 (started and stopped here)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import boto3
import pytest

from smjobs.local import free_port

pytestmark = pytest.mark.integration
BIN = Path(sys.executable).parent


@pytest.fixture
def moto_server(tmp_path):
    port = free_port()
    exe = shutil.which("moto_server", path=str(BIN)) or shutil.which("moto_server")
    proc = subprocess.Popen([exe, "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL,
                            stderr=(tmp_path / "moto.log").open("w"))
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{url}/moto-api/", timeout=1)
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("moto_server did not start: " + (tmp_path / "moto.log").read_text()) from None
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


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
