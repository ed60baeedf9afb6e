"""Inference specs: the inference section becomes the job's fields, every problem is collected, and the request
the SDK sends carries the channels, settings and output location."""

from __future__ import annotations

import pytest
import yaml
from typer.testing import CliRunner

from smjobs.aws import submit as sagemaker_edge
from smjobs.checks.validate import validate_spec
from smjobs.cli import app
from smjobs.errors import SpecError
from smjobs.request.training import build_request

SECTION = {"model": "s3://models/job-1/output/model.tar.gz", "input": "s3://data/records/",
           "output_path": "s3://data/predictions/", "batch_size": 128, "max_bad_records": 5}


def inference_spec(**section):
    return {"name": "score", "compute": {"instance_type": "ml.g5.12xlarge", "instance_count": 2},
            "inference": {**SECTION, **section}}


def test_the_section_becomes_entry_point_channels_settings_and_checkpoints():
    spec = validate_spec(inference_spec())
    assert spec.entry_point == "infer.py" and spec.distribution.type == "ddp"
    ctj = build_request(spec).create_training_job
    channels = {c["ChannelName"]: c["DataSource"]["S3DataSource"] for c in ctj["InputDataConfig"]}
    assert channels["data"]["S3Uri"] == "s3://data/records/" and channels["data"]["S3DataDistributionType"] == "FullyReplicated"
    assert channels["model"]["S3Uri"] == "s3://models/job-1/output/model.tar.gz"
    assert ctj["CheckpointConfig"]["S3Uri"] == "s3://data/predictions/"  # finished parts are the checkpoints
    hps = ctj["HyperParameters"]
    assert (hps["batch_size"], hps["max_bad_records"], hps["model_file"]) == ("128", "5", '"model.tar.gz"')
    assert hps["sagemaker_program"] == '"infer.py"' and hps["sagemaker_torch_distributed_enabled"] == "true"
    assert validate_spec(spec.to_dict()) == spec  # expanding again changes nothing
    dumped = {**inference_spec(), "inference": spec.inference.model_dump()}  # nulls for what is unset
    assert "model_factory" not in validate_spec(dumped).hyperparameters


@pytest.mark.parametrize(("change", "paths"), [
    ({"inference": {"input": "s3://d/r/", "output_path": "s3://d/p/"}}, ["inference.model"]),
    ({"inference": {**SECTION, "output_path": "/tmp/out"}}, ["inference.output_path"]),
    ({"inference": {**SECTION, "batch_size": 0, "part_records": -1}}, ["inference.batch_size", "inference.part_records"]),
    ({"inference": {**SECTION, "unknown": 1}}, ["inference.unknown"]),
    ({"inputs": {"data": {"uri": "s3://other/"}}}, ["inputs.data"]),
    ({"checkpoint_s3_uri": "s3://elsewhere/"}, ["checkpoint_s3_uri"]),
    ({"hyperparameters": {"batch_size": 7}}, ["hyperparameters.batch_size"]),
    ({"hyperparameters": {"batch_sise": 7}}, ["hyperparameters.batch_sise"]),
], ids=["no-model", "local-output", "bounds", "unknown-key", "data-channel-twice", "checkpoint-twice",
        "setting-twice", "typo-for-the-script"])
def test_every_problem_is_named(change, paths):
    data = {**inference_spec(), **change}
    with pytest.raises(SpecError) as raised:
        validate_spec(data)
    assert set(paths) <= set(raised.value.paths()), str(raised.value)


def test_a_local_model_file_is_a_channel_of_that_file_alone(tmp_path):
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "weights.pt").write_bytes(b"0")
    (tmp_path / "records").mkdir()
    (tmp_path / "records" / "a.jsonl").write_text('{"inputs": [1]}\n')
    spec_file = tmp_path / "score.yaml"
    spec_file.write_text(yaml.safe_dump(inference_spec(model="model/weights.pt", input="records")))
    from smjobs.api import load_spec

    spec = load_spec(spec_file)
    assert spec.inputs["model"].uri == str(tmp_path / "model" / "weights.pt")
    assert spec.hyperparameters["model_file"] == "weights.pt"
    assert spec.inputs["data"].uri == str(tmp_path / "records")
    (tmp_path / "model" / "optimizer-state.pt").write_bytes(b"1" * 1000)  # beside it, and not wanted
    from smjobs.local import runner as local

    layout = local.prepare(build_request(spec), tmp_path / "work", 1)
    assert sorted(p.name for p in (layout.data_dir / "model").iterdir()) == ["weights.pt"]


def test_the_request_the_sdk_sends(moto_aws):
    spec = validate_spec(inference_spec())
    request = sagemaker_edge.resolved_request(spec, moto_aws, sagemaker_edge.resolve(spec, moto_aws))
    sagemaker_edge.submit(request, moto_aws)
    sent = moto_aws.sent[0]
    assert sent["CheckpointConfig"]["S3Uri"] == "s3://data/predictions/"
    assert sorted(c["ChannelName"] for c in sent["InputDataConfig"]) == ["data", "model"]
    assert sent["HyperParameters"]["sagemaker_program"] == '"infer.py"'
    assert sent["ResourceConfig"]["InstanceCount"] == 2


def test_cli_infer_dry_runs_and_refuses_a_training_spec(tmp_path, spec_data):
    spec_file = tmp_path / "score.yaml"
    spec_file.write_text(yaml.safe_dump(inference_spec()))
    result = CliRunner().invoke(app, ["infer", str(spec_file), "--dry-run"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    request = yaml.safe_load(result.stdout)
    assert request["create_training_job"]["CheckpointConfig"]["S3Uri"] == "s3://data/predictions/"
    training = tmp_path / "train.yaml"
    training.write_text(yaml.safe_dump(spec_data))
    refused = CliRunner().invoke(app, ["infer", str(training), "--dry-run"], env={"COLUMNS": "200"})
    assert refused.exit_code == 2 and "not an inference spec" in refused.output


LLAMA_8B = {"layers": 32, "hidden": 4096, "heads": 32, "kv_heads": 8, "ffn_hidden": 14336, "vocab": 128256,
            "seq_len": 1024, "gated_mlp": True, "dropout": False, "tied_embeddings": False, "parameters": 8030261248}


def auto_inference(**plan):
    return {"name": "score", "compute": {"instance_type": "auto"}, "inference": {**SECTION, "batch_size": 8},
            "plan": {"model": LLAMA_8B, "records": 1_000_000, **plan}}


def test_auto_picks_the_cheapest_that_holds_the_model_and_finishes_in_time():
    from smjobs import catalog
    from smjobs.checks.validate import validate_and_plan
    from smjobs.planner.memory import GIB

    spec, found = validate_and_plan(auto_inference(max_hours=2))
    choice = found.choice
    assert (spec.compute.instance_type, spec.compute.instance_count) == (choice.instance_type, choice.instance_count)
    assert spec.compute.max_run_s == 2 * 3600 and all(c.hours <= 2 for c in found.scatter)
    assert choice.memory.weights == pytest.approx(8030261248 * 2) and choice.memory.optimizer == 0
    assert choice.memory.total <= 0.9 * GIB * catalog.instances().types[choice.instance_type].gpu_memory_gib
    # the whole data set's cost: GPU-seconds of forward FLOPs at the assumed utilisation, plus start-up
    cheapest = min(found.scatter, key=lambda c: c.job_usd)
    assert choice.job_usd <= cheapest.job_usd * 1.02
    tighter = validate_and_plan(auto_inference(max_hours=0.5))[1].choice
    assert tighter.hours <= 0.5 and tighter.usd_per_hour >= choice.usd_per_hour  # a tighter budget buys speed
    # a batch whose logits (128 x 1024 tokens x 128k vocabulary, fp32) fill any GPU is refused, naming the fix
    with pytest.raises(SpecError) as raised:
        validate_spec({**auto_inference(), "inference": {**SECTION, "batch_size": 128}})
    assert "lower inference.batch_size" in str(raised.value) and "no configuration fits" in str(raised.value)


def test_a_kv_cache_and_a_model_too_big_for_one_gpu_are_sized():
    from smjobs.planner.inference_plan import InferenceWorkload, inference_memory
    from smjobs.planner.memory import TransformerShape

    shape = TransformerShape(**LLAMA_8B)
    scoring = inference_memory(InferenceWorkload(shape, 10, 8))
    generating = inference_memory(InferenceWorkload(shape, 10, 8, generated_tokens=1024))
    kv = 2 * 32 * 2048 * 8 * 4096 * 0.25 * 2  # keys and values, 8 of 32 heads wide, bf16
    assert generating.buffers == pytest.approx(kv) and scoring.buffers == 0
    big = {**LLAMA_8B, "layers": 80, "hidden": 8192, "heads": 64, "ffn_hidden": 28672, "parameters": 70_553_706_496}
    with pytest.raises(SpecError) as raised:
        validate_spec(auto_inference(model=big, precision="fp32", families=["g5", "g6e", "p4d"]))
    assert "no configuration fits" in str(raised.value) and "needs" in str(raised.value)


def test_records_are_counted_from_a_local_folder_or_required(tmp_path):
    from smjobs.inference.section import count_local_records

    (tmp_path / "a.jsonl").write_text('{"inputs": [1]}\n\n{"inputs": [2]}\n')
    (tmp_path / "b.csv").write_text("id,x\n1,2\n3,4\n5,6\n")
    assert count_local_records(str(tmp_path)) == 5
    with pytest.raises(SpecError) as raised:
        validate_spec({**auto_inference(), "plan": {"model": LLAMA_8B}})  # S3 input, no plan.records
    assert "plan.records" in raised.value.paths()


def factory_folder(tmp_path, manifest='[{"prefix": "data/"}, "a.jsonl"]'):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a.jsonl").write_text('{"inputs": [1]}\n')
    (tmp_path / "mymodel.py").write_text("def build():\n    raise NotImplementedError\n")
    (tmp_path / "weights.pt").write_bytes(b"0")
    (tmp_path / "inputs.manifest").write_text(manifest)
    return tmp_path


def load_in(folder, **section):
    from smjobs.api import load_spec

    spec_file = folder / "score.yaml"
    spec_file.write_text(yaml.safe_dump(inference_spec(**section)))
    return load_spec(spec_file)


def test_a_model_factory_uses_the_spec_folder_as_code_with_infer_py_added(tmp_path):
    from smjobs.api import source_manifest

    spec = load_in(factory_folder(tmp_path), model="weights.pt", model_factory="mymodel:build", input="inputs.manifest")
    assert spec.source_dir == str(tmp_path) and spec.hyperparameters["model_factory"] == "mymodel:build"
    assert spec.inputs["data"].s3_data_type == "ManifestFile"
    manifest = source_manifest(spec)
    assert {"mymodel.py", "infer.py", "common/predict.py", "common/records.py"} <= set(manifest.paths())
    assert "infer.py" in manifest.added and "mymodel.py" not in manifest.added
    assert not {"weights.pt", "data/a.jsonl", "inputs.manifest"} & set(manifest.paths())  # they travel as channels
    ctj = build_request(spec, bucket="b").create_training_job
    data = next(c for c in ctj["InputDataConfig"] if c["ChannelName"] == "data")["DataSource"]["S3DataSource"]
    assert data["S3DataType"] == "S3Prefix" and data["S3Uri"].endswith("/input/data")  # its files, uploaded


def test_an_s3_manifest_is_a_manifest_file_channel():
    spec = validate_spec(inference_spec(input="s3://data/lists/tonight.manifest"))
    ctj = build_request(spec).create_training_job
    data = next(c for c in ctj["InputDataConfig"] if c["ChannelName"] == "data")["DataSource"]["S3DataSource"]
    assert (data["S3DataType"], data["S3Uri"]) == ("ManifestFile", "s3://data/lists/tonight.manifest")


@pytest.mark.parametrize(("section", "manifest", "path", "words"), [
    ({"model_factory": "nomodule:build"}, None, "inference.model_factory", "module 'nomodule' is not in"),
    ({"model_factory": "mymodel:build", "model": "s3://m/folder/"}, None, "inference.model", "weights file"),
    ({"model_factory": "not a factory"}, None, "inference.model_factory", ""),
    ({}, '[{"prefix": "data/"}, "a.jsonl", "gone.jsonl"]', "inputs.data.uri", "gone.jsonl"),
    ({}, '{"prefix": "data/"}', "inputs.data.uri", "not a manifest"),
    ({}, '[{"prefix": "s3://x/"}, "a.jsonl"]', "inputs.data.uri", "prefix 's3://x/' is remote"),
    ({}, '[{"prefix": "data/"}, "../secrets"]', "inputs.data.uri", "must be a path under the prefix"),
    ({}, '[{"prefix": "data/"}, "a.jsonl", "a.jsonl"]', "inputs.data.uri", "listed twice"),
], ids=["missing-module", "factory-needs-a-file", "bad-pattern", "missing-file", "not-a-list", "remote-prefix",
        "escapes", "twice"])
def test_factory_and_manifest_problems_are_named(tmp_path, section, manifest, path, words):
    folder = factory_folder(tmp_path, manifest or '[{"prefix": "data/"}, "a.jsonl"]')
    section = {"model": "weights.pt", **({"input": "inputs.manifest"} if manifest else {}), **section}
    with pytest.raises(SpecError) as raised:
        load_in(folder, **section)
    assert path in raised.value.paths() and words in str(raised.value), str(raised.value)
