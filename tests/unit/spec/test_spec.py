"""JobSpec: YAML, JSON and Python give the same frozen object, and it round-trips."""

from __future__ import annotations

import json

import pydantic
import pytest
import yaml

from smjobs.checks.validate import validate_spec
from smjobs.request.training import build_request
from smjobs.spec.job import (
    Channel,
    Compute,
    JobSpec,
    MetricDefinition,
    PlanModel,
    PlanSettings,
    Security,
    example_path,
    read_spec_data,
)
from smjobs.spec.strategies import FSDP

EXAMPLES = ["ddp_mlp", "fsdp_gpt_spot", "smddp_cnn"]


def python_spec() -> JobSpec:
    return JobSpec(
        name="fsdp-gpt-spot",
        entry_point="train.py",
        framework_version="2.8.0",
        py_version="py312",
        compute=Compute(instance_type="ml.p4d.24xlarge", instance_count=2, volume_size_gb=200,
                        max_run_s=36000, use_spot=True, max_wait_s=72000),
        distribution=FSDP(sharding="hybrid_shard", shard_degree=8, mixed_precision="bf16"),
        hyperparameters={"model": "gpt", "steps": 2000, "global_batch_size": 64, "seq_len": 512,
                         "lr": 0.0003, "checkpoint_every": 200},
        inputs={"train": Channel(uri="s3://my-training-data/tokens/train", input_mode="FastFile",
                                 s3_distribution="ShardedByS3Key")},
        checkpoint_s3_uri="s3://my-training-checkpoints/fsdp-gpt",
        metric_definitions=(MetricDefinition(name="train:loss", regex="loss=([0-9.eE+-]+)"),),
    )


def test_python_and_yaml_give_the_same_spec():
    from_yaml = validate_spec(read_spec_data(example_path("fsdp_gpt_spot")))
    assert from_yaml == python_spec()


@pytest.mark.parametrize("name", EXAMPLES)
def test_examples_round_trip_through_yaml_and_json(name, tmp_path):
    spec = validate_spec(read_spec_data(example_path(name)))
    again = JobSpec.model_validate(yaml.safe_load(spec.to_yaml()))
    assert again == spec
    path = tmp_path / "spec.json"
    path.write_text(spec.to_json())
    assert validate_spec(read_spec_data(path)) == spec
    assert json.loads(spec.to_json()) == spec.to_dict()


def test_spec_is_frozen():
    spec = python_spec()
    with pytest.raises(pydantic.ValidationError):
        spec.name = "other"
    with pytest.raises(pydantic.ValidationError):
        spec.compute.instance_count = 4


def test_building_a_request_does_not_change_the_spec():
    spec = python_spec()
    before = spec.model_dump()
    build_request(spec)
    assert spec.model_dump() == before


def test_every_field_is_documented():
    for model in (JobSpec, Compute, Channel, Security, MetricDefinition, FSDP, PlanSettings, PlanModel):
        for name, field in model.model_fields.items():
            if name != "type":
                assert field.description, f"{model.__name__}.{name} has no docstring"


def test_field_docstrings_reach_the_json_schema_and_inherited_fields():
    # the models are built on first use (defer_build), after smjobs.spec.field_docs gave each field its docstring
    schema = JobSpec.model_json_schema()
    compute = schema["$defs"]["Compute"]["properties"]
    assert compute["instance_type"]["description"] == Compute.model_fields["instance_type"].description
    assert compute["instance_type"]["description"].startswith("A GPU training instance type")
    # processes_per_host is declared once, on the strategies' base class, and documented there
    assert FSDP.model_fields["processes_per_host"].description == (
        "Training processes on each instance; defaults to the instance's GPU count.")
    assert schema["$defs"]["FSDP"]["properties"]["processes_per_host"]["description"].startswith("Training processes")


def test_units_are_in_the_names():
    names = set(Compute.model_fields)
    assert {"volume_size_gb", "max_run_s", "max_wait_s"} <= names
    assert not {"volume_size", "max_run", "max_wait"} & names


def test_unknown_example_lists_the_shipped_ones():
    with pytest.raises(FileNotFoundError, match="ddp_mlp"):
        example_path("nope")
