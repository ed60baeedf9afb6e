"""The local /opt/ml tree: fresh code every run, and what keeps a job from running locally."""

from __future__ import annotations

import argparse
import shutil

import pytest

from entry_points.common.hparams import toolkit_mapping
from jobs import local
from jobs.errors import SpecError
from jobs.request import build_request
from jobs.validate import validate_spec


def test_every_run_gets_the_current_code(spec_data, tmp_path):
    source = tmp_path / "src"
    shutil.copytree(spec_data["source_dir"], source)
    data = {**spec_data, "source_dir": str(source)}
    layout = local.prepare(build_request(validate_spec(data)), tmp_path / "work", 1)
    (layout.base_dir / "code").joinpath("probe.py").write_text("stale copy")  # what the toolkit left last time
    (source / "probe.py").write_text((source / "probe.py").read_text() + "\n# edited\n")
    layout = local.prepare(build_request(validate_spec(data)), tmp_path / "work", 1)
    assert not any((layout.base_dir / "code").iterdir()), "code/ must start empty so the toolkit copies source_dir again"


def test_pipeline_degrees_must_fill_the_local_processes(spec_data, tmp_path):
    data = {**spec_data, "distribution": {"type": "pipeline", "dp_degree": 2, "pp_degree": 4, "microbatches": 4}}
    request = build_request(validate_spec(data))
    assert local.default_processes(request) == 8
    with pytest.raises(SpecError, match="run with --processes 8"):
        local.prepare(request, tmp_path / "work", 2)
    assert local.prepare(request, tmp_path / "work", 8).config_dir.exists()


def test_data_parallel_default_processes_are_capped_by_cpus(spec_data):
    request = build_request(validate_spec(spec_data))
    assert 1 <= local.default_processes(request) <= request.processes_per_host


@pytest.mark.parametrize("text,expected", [
    ("hybrid_shard_degree=2,tensor_parallel_degree=2,sm_activation_offloading=True",
     {"hybrid_shard_degree": 2, "tensor_parallel_degree": 2, "sm_activation_offloading": True}),
    ('{"partitions": 2, "pipeline": "interleaved"}', {"partitions": 2, "pipeline": "interleaved"}),
    ("pipeline=interleaved,ddp=False", {"pipeline": "interleaved", "ddp": False}),
    ("", {}),
])
def test_toolkit_mapping_reads_the_toolkits_flattened_dicts(text, expected):
    assert toolkit_mapping(text) == expected


def test_toolkit_mapping_rejects_garbage():
    with pytest.raises(argparse.ArgumentTypeError):
        toolkit_mapping("not a mapping")
