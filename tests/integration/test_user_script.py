"""A script smjobs has never seen, as a user brings it: validate, run locally on 2 processes, dry-run and submit to a
moto_server with the real CLI, from another folder, with zero changes to the script."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile

import boto3
import pytest
import yaml

pytestmark = pytest.mark.integration
USER_HYPERPARAMETERS = {"epochs": 2, "lr": 0.05, "optimizer": "adam"}


def cli(*args, cwd, env=None):
    env = {**os.environ, "COLUMNS": "200", **(env or {})}
    return subprocess.run([sys.executable, "-m", "smjobs.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=300)


def test_a_users_own_script_validates_runs_dry_runs_and_submits_unchanged(user_project, tmp_path, moto_server):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    spec = user_project / "job.yaml"
    script_before = (user_project / "my_train.py").read_bytes()

    validated = cli("validate", spec, cwd=elsewhere)
    assert validated.returncode == 0, validated.stdout + validated.stderr
    assert f"{user_project}/my_train.py" in validated.stdout.replace("\n", "")

    work = tmp_path / "work"
    ran = cli("run", spec, "--local", "--processes", 2, "--work-dir", work, cwd=elsewhere)
    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-3000:]
    assert "epoch=1 loss=" in ran.stdout
    records = [json.loads((work / "output" / "data" / f"argv-rank{r}.json").read_text()) for r in (0, 1)]
    expected_argv = [x for k, v in USER_HYPERPARAMETERS.items() for x in (f"--{k}", str(v))]
    for record in records:  # the script's command line holds the user's hyperparameters and nothing else
        assert record["argv"] == expected_argv
        assert record["world_size"] == 2 and record["samples_seen"] == 64  # DistributedSampler: 128 records / 2
    assert (work / "model" / "model.pt").is_file()
    # the archive's files, and the byte-code Python writes beside them where PYTHONDONTWRITEBYTECODE is unset
    code = sorted(p.name for p in (work / "code").iterdir() if p.name != "__pycache__")
    assert code == ["job.yaml", "model.py", "my_train.py", "smjobs_runtime.py"]

    dry = cli("submit", spec, "--dry-run", cwd=elsewhere)
    assert dry.returncode == 0, dry.stderr
    printed = yaml.safe_load(dry.stdout)
    hps = printed["create_training_job"]["HyperParameters"]
    assert {k: json.loads(v) for k, v in hps.items() if not k.startswith("sagemaker_")} == USER_HYPERPARAMETERS
    archive = printed["source_archive"]
    assert [f.split(" (")[0] for f in archive["files"]] == ["job.yaml", "model.py", "my_train.py", "smjobs_runtime.py"]

    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_ACCESS") and k != "AWS_SECRET_ACCESS_KEY"}
    deployed = cli("infra", "deploy", "--endpoint-url", moto_server, cwd=elsewhere, env={**env, "AWS_DEFAULT_REGION": "us-east-1"})
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    submitted = cli("submit", spec, "--endpoint-url", moto_server, "--job-name", "user-script-1", cwd=elsewhere,
                    env={**env, "AWS_DEFAULT_REGION": "us-east-1"})
    assert submitted.returncode == 0, submitted.stdout + submitted.stderr
    client = dict(endpoint_url=moto_server, region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing")
    job = boto3.client("sagemaker", **client).describe_training_job(TrainingJobName="user-script-1")
    assert {k: json.loads(v) for k, v in job["HyperParameters"].items() if not k.startswith("sagemaker_")} == USER_HYPERPARAMETERS
    uri = json.loads(job["HyperParameters"]["sagemaker_submit_directory"])
    bucket, key = uri[len("s3://"):].split("/", 1)
    s3 = boto3.client("s3", **client)
    with tarfile.open(fileobj=io.BytesIO(s3.get_object(Bucket=bucket, Key=key)["Body"].read())) as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}
    assert sorted(members) == ["job.yaml", "model.py", "my_train.py", "smjobs_runtime.py"]  # no runs/, .git, data/
    assert members["my_train.py"] == script_before == (user_project / "my_train.py").read_bytes()
    channel = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="user-script-1/input/train")["Contents"]]
    assert sorted(k.rsplit("/", 1)[1] for k in channel) == ["part0.pt", "part1.pt"]  # the data travels as a channel
