"""Submission needs no SageMaker SDK: with ``sagemaker`` unimportable, a training job, a tuning job and a Batch
Transform job are each sent as their dry run prints them (captured by botocore's own hooks against moto)."""

from __future__ import annotations

import io
import json
import sys
import tarfile

import pytest

from smjobs import api
from smjobs.checks.validate import validate_spec

OPERATIONS = ("CreateTrainingJob", "CreateHyperParameterTuningJob", "CreateModel", "CreateTransformJob")


@pytest.fixture
def no_sdk(monkeypatch):
    """``import sagemaker`` (and any submodule) raises ImportError for the test's length."""
    for name in [m for m in sys.modules if m == "sagemaker" or m.startswith("sagemaker.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "sagemaker", None)
    with pytest.raises(ImportError):
        import sagemaker  # noqa: F401


@pytest.fixture
def calls(moto_aws, record_calls):
    record_calls(moto_aws, OPERATIONS)
    return moto_aws


def normal(data) -> str:
    """JSON normalisation: the same request, byte for byte, whatever the key order."""
    return json.dumps(data, sort_keys=True, default=str)


def test_training_tuning_and_transform_are_sent_without_the_sdk(no_sdk, calls, spec_data, tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "part-0.pt").write_bytes(b"data")
    training = api.submit(validate_spec({**spec_data, "inputs": {"train": {"uri": str(tmp_path / "data")}}}), aws=calls)
    tuning = api.submit_tuning(validate_spec({**spec_data, "name": "tune", "tuning": {
        "parameters": {"lr": {"type": "continuous", "min": 1e-4, "max": 1e-1, "scaling": "log"}},
        "objective": {"metric": "train:loss", "regex": "loss=([0-9.eE+-]+)"}}}), aws=calls)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo("model.pt")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"0"))
    s3 = calls.client("s3")
    s3.create_bucket(Bucket="models-bucket")
    s3.put_object(Bucket="models-bucket", Key="train-1/model.tar.gz", Body=buffer.getvalue())
    s3.put_object(Bucket="models-bucket", Key="records/part-0.jsonl", Body=b'{"inputs": [1]}\n')
    transform = api.submit_transform(validate_spec({"name": "score", "compute": {"instance_type": "ml.g5.12xlarge"},
                                                    "inference": {"model": "s3://models-bucket/train-1/model.tar.gz",
                                                                  "input": "s3://models-bucket/records/",
                                                                  "output_path": "s3://models-bucket/out/",
                                                                  "backend": "batch-transform"}}), aws=calls)
    sent = dict(calls.calls)
    assert [op for op, _ in calls.calls] == list(OPERATIONS)
    assert normal(sent["CreateTrainingJob"]) == normal(training.create_training_job)
    assert normal(sent["CreateHyperParameterTuningJob"]) == normal(tuning.create_tuning_job)
    assert normal(sent["CreateModel"]) == normal(transform.create_model)
    assert normal(sent["CreateTransformJob"]) == normal(transform.create_transform_job)
    assert sys.modules["sagemaker"] is None  # nothing brought the SDK back in
    # what the requests name is really there: code archives, the local channel, the model with its code
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=training.bucket)["Contents"]}
    assert {f"{training.job_name}/source/sourcedir.tar.gz", f"{training.job_name}/input/train/part-0.pt",
            f"{tuning.job_name}/source/sourcedir.tar.gz", f"{transform.job_name}/model.tar.gz"} <= keys
