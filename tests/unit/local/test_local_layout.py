"""The local /opt/ml tree: fresh code every run, and what keeps a job from running locally."""

from __future__ import annotations

import argparse
import shutil

import pytest

from smjobs.checks.validate import validate_spec
from smjobs.errors import SpecError
from smjobs.local import mpi as local_mpi
from smjobs.local import runner as local
from smjobs.request.training import build_request

from smjobs_runtime import toolkit_mapping


def test_every_run_gets_the_current_code(spec_data, tmp_path):
    source = tmp_path / "src"
    shutil.copytree(spec_data["source_dir"], source)
    data = {**spec_data, "source_dir": str(source)}
    layout = local.prepare(build_request(validate_spec(data)), tmp_path / "work", 1)
    (layout.base_dir / "code").joinpath("probe.py").write_text("stale copy")  # what the toolkit left last time
    (source / "probe.py").write_text((source / "probe.py").read_text() + "\n# edited\n")
    layout = local.prepare(build_request(validate_spec(data)), tmp_path / "work", 1)
    assert (layout.code_dir / "probe.py").read_text().endswith("# edited\n"), "code/ must hold the current source"


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


def smddp_request():
    from smjobs.spec.job import example_path, read_spec_data

    return build_request(validate_spec(read_spec_data(example_path("smddp_cnn"))), job_name="t")


def test_mpi_jobs_use_torchrun_where_the_toolkits_mpi_runner_cannot_work(monkeypatch, tmp_path):
    request = smddp_request()
    monkeypatch.setattr(local_mpi, "SSHD", local.Path("/nonexistent/sshd"))
    missing = local.mpi_runner_missing()
    assert any("SSH daemon" in m for m in missing)
    assert local.launcher(request).startswith("torchrun (SageMaker's MPI runner needs")
    hps = local.container_files(request, 2, tmp_path / "code")["hyperparameters.json"]
    assert (hps["sagemaker_torch_distributed_enabled"], hps["sagemaker_distributed_dataparallel_enabled"]) == ("true", "false")


def test_mpi_jobs_keep_their_mpi_runner_where_it_can_work(monkeypatch, tmp_path):
    request = smddp_request()
    sshd = tmp_path / "sshd"
    sshd.write_text("")
    monkeypatch.setattr(local_mpi, "SSHD", sshd)
    monkeypatch.setattr(local.socket, "gethostbyname", lambda host: "127.0.0.1")
    monkeypatch.setattr(local.shutil, "which", lambda name, path=None: "/usr/bin/mpirun")
    monkeypatch.setattr("importlib.util.find_spec", lambda name: object())
    assert local.mpi_runner_missing() == []
    assert local.launcher(request) == "mpirun (SageMaker's MPI runner)"
    hps = local.container_files(request, 2, tmp_path / "code")["hyperparameters.json"]
    assert hps["sagemaker_distributed_dataparallel_enabled"] == "true" and "sagemaker_torch_distributed_enabled" not in hps
