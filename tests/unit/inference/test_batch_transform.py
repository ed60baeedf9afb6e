"""The Batch Transform backend: the CreateModel and CreateTransformJob requests really sent (captured from moto),
the model archive packed with its code, its documented limits, the idle-instance warning, and serve.py's handlers on a model train.py saved."""

from __future__ import annotations

import argparse
import io
import json
import sys
import tarfile

import pytest
import torch
import yaml
from typer.testing import CliRunner

from smjobs import api
from smjobs.checks.validate import validate_spec
from smjobs.cli import app
from smjobs.errors import SpecError
from smjobs.inference.batch_transform import build_transform_request
from smjobs.spec.job import ENTRY_POINTS_DIR

IN_FEATURES = 8
SECTION = {"model": "s3://models-bucket/train-1/output/model.tar.gz", "input": "s3://data-bucket/records/",
           "output_path": "s3://data-bucket/predictions/", "backend": "batch-transform"}
OPERATIONS = ("CreateModel", "CreateTransformJob")


def transform_spec(section=None, **compute):
    return {"name": "score", "compute": {"instance_type": "ml.g5.12xlarge", "instance_count": 2, **compute},
            "inference": {**SECTION, **(section or {})}}


@pytest.fixture
def captured(moto_aws, record_calls):
    """moto, with every CreateModel and CreateTransformJob request the SDK sends kept in ``moto_aws.calls``."""
    record_calls(moto_aws, OPERATIONS)
    return moto_aws


def saved_model(folder):
    """A model.pt as train.py writes it."""
    sys.path.insert(0, str(ENTRY_POINTS_DIR))
    from common.models import build_model

    args = {"model": "mlp", "in_features": IN_FEATURES, "hidden_sizes": [16], "seed": 0}
    torch.manual_seed(0)
    model = build_model(argparse.Namespace(**args))
    folder.mkdir(parents=True, exist_ok=True)
    torch.save({"model": model.state_dict(), "args": args}, folder / "model.pt")
    return folder / "model.pt", model.eval()


def put_model_archive(aws, uri):
    bucket, key = uri.removeprefix("s3://").split("/", 1)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo("model.pt")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"0"))
    aws.client("s3").create_bucket(Bucket=bucket)
    aws.client("s3").put_object(Bucket=bucket, Key=key, Body=buffer.getvalue())


def test_the_requests_the_sdk_sends_are_the_predicted_ones(captured):
    put_model_archive(captured, SECTION["model"])
    captured.client("s3").create_bucket(Bucket="data-bucket")
    for i in range(3):
        captured.client("s3").put_object(Bucket="data-bucket", Key=f"records/part-{i}.jsonl", Body=b'{"inputs": [1]}\n')
    spec = validate_spec(transform_spec({"batch_transform": {"max_payload_mb": 20}}))
    request = api.submit_transform(spec, aws=captured)
    sent = dict(captured.calls)
    assert [op for op, _ in captured.calls] == list(OPERATIONS)
    job = sent["CreateTransformJob"]
    assert job["TransformInput"] == {"DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": SECTION["input"]}},
                                     "ContentType": "application/jsonlines", "SplitType": "Line"}
    assert job["TransformOutput"] == {"S3OutputPath": SECTION["output_path"], "AssembleWith": "Line",
                                      "Accept": "application/jsonlines"}
    assert (job["BatchStrategy"], job["MaxPayloadInMB"], job["DataProcessing"]) == ("MultiRecord", 20, {"JoinSource": "Input"})
    assert job["MaxConcurrentTransforms"] == 4  # one per GPU of a g5.12xlarge; 4 x 20 MB <= 100 MB
    assert job["TransformResources"] == {"InstanceCount": 2, "InstanceType": "ml.g5.12xlarge"}
    model = sent["CreateModel"]["PrimaryContainer"]
    assert model["Image"] == "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-inference:2.6.0-gpu-py312"
    assert model["Environment"]["SAGEMAKER_PROGRAM"] == "serve.py"
    assert sent["CreateModel"] == request.create_model and job == request.create_transform_job  # the dry run is exact
    assert request.warnings == ()  # 3 objects for 2 instances
    # the model the job serves is the training job's archive with the code added
    bucket, key = model["ModelDataUrl"].removeprefix("s3://").split("/", 1)
    archive = tarfile.open(fileobj=io.BytesIO(captured.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()))
    assert {"model.pt", "code/serve.py", "code/common/predict.py"} <= set(archive.getnames())
    described = captured.client("sagemaker").describe_transform_job(TransformJobName=request.job_name)
    assert described["ModelName"] == request.job_name


def test_a_local_model_and_input_are_packed_and_uploaded_and_idle_instances_are_named(captured, tmp_path):
    model_file, _ = saved_model(tmp_path / "trained")
    (tmp_path / "records").mkdir()
    (tmp_path / "records" / "all.jsonl").write_text('{"inputs": [0, 0, 0, 0, 0, 0, 0, 0]}\n' * 10)
    spec_file = tmp_path / "score.yaml"
    spec_file.write_text(yaml.safe_dump(transform_spec({"model": "trained/model.pt", "input": "records"},
                                                       instance_count=3)))
    spec = api.load_spec(spec_file)
    request = api.submit_transform(spec, aws=captured)
    assert request.warnings and "1 input object(s) for 3 instances" in request.warnings[0]
    assert "2 instance(s) would sit idle" in request.warnings[0]
    sent = dict(captured.calls)
    assert sent["CreateTransformJob"]["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"] == \
        f"s3://{request.bucket}/{request.job_name}/input/data"
    s3 = captured.client("s3")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=request.bucket)["Contents"]]
    assert f"{request.job_name}/input/data/all.jsonl" in keys
    # the local model file goes once, packed with its code into the archive the model request names
    served = sent["CreateModel"]["PrimaryContainer"]["ModelDataUrl"]
    assert served == f"s3://{request.bucket}/{request.job_name}/model.tar.gz"
    packed = s3.get_object(Bucket=request.bucket, Key=f"{request.job_name}/model.tar.gz")["Body"].read()
    names = tarfile.open(fileobj=io.BytesIO(packed)).getnames()
    assert names[0] == "model.pt" and "code/serve.py" in names and not any(n.startswith("code/trained") for n in names)
    assert sent["CreateModel"] == request.create_model and sent["CreateTransformJob"] == request.create_transform_job


def test_s3_objects_are_counted_at_submit_for_the_idle_warning(captured):
    put_model_archive(captured, SECTION["model"])
    captured.client("s3").create_bucket(Bucket="data-bucket")
    captured.client("s3").put_object(Bucket="data-bucket", Key="records/only.jsonl", Body=b'{"inputs": [1]}\n')
    request = api.submit_transform(validate_spec(transform_spec(instance_count=4)), aws=captured)
    assert "3 instance(s) would sit idle" in request.warnings[0]


@pytest.mark.parametrize(("change", "compute", "paths"), [
    ({"batch_transform": {"max_payload_mb": 101}}, {}, ["inference.batch_transform.max_payload_mb"]),
    ({"batch_transform": {"max_payload_mb": 30}}, {}, ["inference.batch_transform.max_concurrent_transforms"]),
    ({"batch_transform": {"max_payload_mb": 10, "max_concurrent_transforms": 11}}, {},
     ["inference.batch_transform.max_concurrent_transforms"]),
    ({"batch_transform": {"framework_version": "2.8.0"}}, {}, ["inference.batch_transform.framework_version"]),
    ({"model": "s3://models-bucket/train-1/model.pt"}, {}, ["inference.model"]),
    ({"batch_transform": {"batch_strategy": "Everything"}}, {}, ["inference.batch_transform.batch_strategy"]),
    ({}, {"use_spot": True, "max_wait_s": 90000}, ["compute.use_spot"]),
    ({"batch_transform": {"max_payload_mb": 0}, "model": "s3://m/x.pt"}, {"use_spot": True, "max_wait_s": 90000},
     ["inference.batch_transform.max_payload_mb", "inference.model", "compute.use_spot"]),
], ids=["payload-over-100", "4-gpus-x-30mb", "11x10mb", "no-inference-image", "s3-model-not-archive",
        "unknown-strategy", "spot", "all-at-once"])
def test_limits_are_checked_and_every_problem_is_named(change, compute, paths):
    with pytest.raises(SpecError) as raised:
        validate_spec(transform_spec(change, **compute))
    assert set(paths) <= set(raised.value.paths()), str(raised.value)


def test_local_input_must_be_headerless_text_within_one_payload(tmp_path):
    data = tmp_path / "records"
    data.mkdir()
    (data / "a.csv").write_text("f0,f1\n1,2\n")
    torch.save({"x": torch.zeros(2, 2)}, data / "b.pt")
    (data / "c.jsonl").write_text(json.dumps({"inputs": [0.5] * 300_000}) + "\n")  # about 1.5 MB in one line
    with pytest.raises(SpecError) as raised:
        validate_spec(transform_spec({"input": str(data), "batch_transform": {"max_payload_mb": 1}}))
    text = str(raised.value)
    assert "b.pt" in text and "a.csv starts with a header line" in text and "raise max_payload_mb to at least 2" in text


def test_serve_handlers_predict_what_the_model_does_one_line_per_record(tmp_path, monkeypatch):
    model_file, model = saved_model(tmp_path / "model")
    sys.path.insert(0, str(ENTRY_POINTS_DIR))
    import serve

    monkeypatch.delenv("SMJOBS_MODEL_FILE", raising=False)
    predictor = serve.model_fn(str(model_file.parent))
    xs = torch.randn(3, IN_FEATURES, generator=torch.Generator().manual_seed(3))
    body = "\n".join([json.dumps({"inputs": xs[0].tolist()}), "{broken", json.dumps({"inputs": [1.0, 2.0]}),
                      json.dumps({"inputs": xs[1].tolist(), "id": "x"}), json.dumps({"inputs": xs[2].tolist()})])
    text, content_type = serve.output_fn(serve.predict_fn(serve.input_fn(body.encode(), "application/jsonlines"),
                                                          predictor), "application/jsonlines")
    lines = [json.loads(line) for line in text.splitlines()]
    assert content_type == "application/jsonlines" and len(lines) == 5  # SageMaker joins line i to record i
    assert "not JSON" in lines[1]["error"] and "shape [2]" in lines[2]["error"]
    with torch.no_grad():
        expected = model(xs)
    for got, row in zip([lines[0], lines[3], lines[4]], expected, strict=True):
        assert torch.allclose(torch.tensor(got["output"]), row, atol=1e-6)
    csv_lines = serve.input_fn(",".join(map(str, xs[0].tolist())) + "\nnot,numbers\n", "text/csv")
    results = serve.predict_fn(csv_lines, predictor)
    assert torch.allclose(torch.tensor(results[0]["output"]), expected[0], atol=1e-6) and "error" in results[1]
    with pytest.raises(ValueError, match="content type"):
        serve.input_fn(b"x", "image/png")


def test_cli_dry_runs_the_transform_and_refuses_it_locally(tmp_path):
    spec_file = tmp_path / "score.yaml"
    spec_file.write_text(yaml.safe_dump({**transform_spec(), "inference": {**SECTION, "backend": "training-job"}}))
    result = CliRunner().invoke(app, ["infer", str(spec_file), "--backend", "batch-transform", "--dry-run"],
                                env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    printed = yaml.safe_load(result.stdout)
    assert printed["create_transform_job"]["TransformInput"]["SplitType"] == "Line"
    assert printed["create_model"]["PrimaryContainer"]["Environment"]["SAGEMAKER_PROGRAM"] == "serve.py"
    assert "serve.py" in " ".join(printed["source_archive"]["files"])
    assert build_transform_request(validate_spec(transform_spec())).create_transform_job["ModelName"].startswith("score-")
    local = CliRunner().invoke(app, ["infer", str(spec_file), "--backend", "batch-transform", "--local"])
    assert local.exit_code == 2 and "Batch Transform runs only on SageMaker" in local.output


def test_a_model_file_that_is_not_a_torch_file_is_named_without_unsafe_advice(tmp_path):
    sys.path.insert(0, str(ENTRY_POINTS_DIR))
    from common.predict import load

    bad = tmp_path / "weights.pt"
    bad.write_text("not a model")
    with pytest.raises(ValueError, match="weights.pt is not a file torch.save wrote") as raised:
        load(bad, "cpu", "")
    assert "weights_only=False" not in str(raised.value)
