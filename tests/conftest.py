"""Shared test set-up: no real AWS, no SDK telemetry, no instance-metadata lookups."""

from __future__ import annotations

import copy
import os
import shutil
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PROBE_DIR = ROOT / "tests" / "fixtures" / "probe"
USER_PROJECT = ROOT / "tests" / "fixtures" / "user_project"

_config = Path(tempfile.mkdtemp(prefix="smjobs-tests-")) / "sagemaker-config.yaml"
_config.write_text(
    "SchemaVersion: '1.0'\nSageMaker:\n  PythonSDK:\n    Modules:\n      TelemetryOptOut: true\n"
)
os.environ["SAGEMAKER_SUPPRESS_V2_WARNING"] = "1"
os.environ["SAGEMAKER_USER_CONFIG_OVERRIDE"] = str(_config)
os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
for _var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_ENDPOINT_URL"):
    os.environ.pop(_var, None)
os.environ["AWS_SHARED_CREDENTIALS_FILE"] = str(_config.parent / "no-credentials")
os.environ["AWS_CONFIG_FILE"] = str(_config.parent / "no-config")
# where submit remembers each job's region and endpoint: per test session, never the user's home
os.environ["SMJOBS_STATE_DIR"] = str(_config.parent / "jobs")
# the cache folder (service-model shapes, isolated environments): per test session too
os.environ["SMJOBS_CACHE_DIR"] = str(_config.parent / "cache")

# A valid spec whose script (tests/fixtures/probe/probe.py) accepts any hyperparameter.
BASE_SPEC = {
    "name": "unit-ddp",
    "entry_point": "probe.py",
    "source_dir": str(PROBE_DIR),
    "compute": {"instance_type": "ml.g5.12xlarge", "instance_count": 2},
    "distribution": {"type": "ddp"},
    "hyperparameters": {"model": "mlp", "steps": 5},
}


@pytest.fixture
def spec_data():
    """A fresh copy of a valid spec as plain data."""
    return copy.deepcopy(BASE_SPEC)


@pytest.fixture
def fake_credentials(monkeypatch):
    """Credentials for in-process moto (which accepts any)."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")


@pytest.fixture
def moto_bare(fake_credentials):
    """An in-process moto with an empty account and an AwsContext on it; ``sent`` collects every CreateTrainingJob
    the SDK sends."""
    from moto import mock_aws

    from smjobs.aws.context import AwsContext
    from smjobs.aws.submit import CREATE_TRAINING_JOB_EVENT

    with mock_aws():
        aws = AwsContext.create(region="us-east-1")
        aws.sent = []
        aws.client("sagemaker").meta.events.register(
            CREATE_TRAINING_JOB_EVENT, lambda params, **_: aws.sent.append(copy.deepcopy(params))
        )
        yield aws


@pytest.fixture
def moto_aws(moto_bare):
    """``moto_bare`` in an account already set up for smjobs: the project bucket and the execution role exist (made
    by the boto3 path, which applies the template's documents), as after `smjobs infra deploy`."""
    from smjobs.infra import default_bucket_name, ensure_bucket, ensure_execution_role

    bucket = ensure_bucket(moto_bare.client("s3"), default_bucket_name("123456789012", "us-east-1"), "us-east-1")
    ensure_execution_role(moto_bare.client("iam"), bucket, region="us-east-1", account_id="123456789012")
    # moto evaluates a bucket policy's Deny without its conditions (no aws:SecureTransport in its request context),
    # so the TLS-only policy would refuse every upload here; test_infra checks the policy, the rest go without it
    moto_bare.client("s3").delete_bucket_policy(Bucket=bucket)
    return moto_bare


def record_sagemaker_calls(aws, operations) -> None:
    """Keep every request of ``operations`` boto3 sends to ``aws``'s SageMaker client in ``aws.calls``, as
    (operation, params) pairs captured by botocore's provide-client-params hook: what was sent, not moto's echo."""
    aws.calls = []
    for op in operations:
        aws.client("sagemaker").meta.events.register(
            f"provide-client-params.sagemaker.{op}", lambda params, op=op, **_: aws.calls.append((op, copy.deepcopy(params))))


@pytest.fixture
def record_calls():
    """``record_sagemaker_calls``, for test modules' fixtures."""
    return record_sagemaker_calls


@pytest.fixture
def user_project(tmp_path) -> Path:
    """A copy of a user's training folder (its own script, model and spec) with a local data channel of 128 records
    and what a repository accumulates: an old run's checkpoint, a .git folder, bytecode."""
    import torch

    root = tmp_path / "project"
    shutil.copytree(USER_PROJECT, root)
    (root / "data").mkdir()
    generator = torch.Generator().manual_seed(0)
    for part in range(2):
        torch.save({"x": torch.randn(64, 16, generator=generator), "y": torch.randint(0, 4, (64,), generator=generator)},
                   root / "data" / f"part{part}.pt")
    (root / "runs" / "old" / "checkpoints").mkdir(parents=True)
    (root / "runs" / "old" / "checkpoints" / "model.pt").write_bytes(b"\0" * 1000)
    (root / ".git").mkdir()
    (root / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (root / "__pycache__").mkdir()
    (root / "__pycache__" / "model.cpython-311.pyc").write_bytes(b"\0")
    return root


def pytest_collection_modifyitems(config, items):
    """Tests of one SageMaker SDK major's objects run where that major is installed and are deselected elsewhere
    (`make test` runs the suite where v3 is, and these in a second venv with v2): deselected, never skipped, so a
    run's count says what ran."""
    from smjobs.aws.sdk import sdk_major

    major = sdk_major()
    keep, drop = [], []
    for item in items:
        wanted = {m for m in (2, 3) if item.get_closest_marker(f"sdk_v{m}")}
        (drop if wanted and major not in wanted else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
