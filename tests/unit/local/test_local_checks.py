"""What a local run refuses before any process starts, and with the work dir as it was."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from smjobs import api
from smjobs.checks.validate import validate_spec
from smjobs.errors import SpecError
from smjobs.local import prechecks as local_checks
from smjobs.local import runner as local
from smjobs.request.training import build_request

import smjobs_runtime as smr


def request_for(data):
    return build_request(validate_spec(data))


@contextmanager
def read_only(folder: Path):
    """``folder`` cannot be written, even by root (chmod alone does not stop root: add the immutable attribute)."""
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o555)
    immutable = os.geteuid() == 0 and subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode == 0
    try:
        yield
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(folder)], check=True)
        folder.chmod(0o755)


def test_a_second_run_in_the_same_work_dir_is_refused_naming_the_first(spec_data, tmp_path):
    work = tmp_path / "work"
    holder = subprocess.Popen([sys.executable, "-c", f"from smjobs.local import prechecks as local_checks; import sys, time; "
                               f"assert local_checks.lock({str(work)!r}) is None; print('held', flush=True); time.sleep(60)"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        (work / "checkpoints" / "step_00000004").mkdir(parents=True)
        with pytest.raises(SpecError, match=f"in use by another local run \\(PID {holder.pid}\\)"):
            local.prepare(request_for(spec_data), work, 1, fresh=True)
        assert (work / "checkpoints" / "step_00000004").is_dir(), "--fresh of a refused run deleted the other run's checkpoints"
        assert not (work / "input").exists()
    finally:
        holder.kill()
        holder.wait()
    layout = local.prepare(request_for(spec_data), work, 1)  # the lock died with its holder
    local_checks.unlock(layout.base_dir)


def test_the_lock_is_released_when_the_run_ends(spec_data, tmp_path):
    layout = local.prepare(request_for(spec_data), tmp_path / "work", 1)
    local_checks.unlock(layout.base_dir)
    probe = subprocess.run([sys.executable, "-c", f"from smjobs.local import prechecks as local_checks; print(local_checks.lock({str(layout.base_dir)!r}))"],
                           capture_output=True, text=True, timeout=60)
    assert probe.stdout.strip() == "None", probe.stderr


def test_a_read_only_model_folder_is_refused_before_start(spec_data, tmp_path):
    work = tmp_path / "work"
    with read_only(work / "model"):
        with pytest.raises(SpecError) as raised:
            local.prepare(request_for(spec_data), work, 1)
    assert "the model folder" in str(raised.value) and "cannot be written" in str(raised.value)
    assert not (work / "input" / "config").exists() and not (work / "code").exists(), "nothing may be laid out"


def test_a_folder_without_room_is_refused(tmp_path):
    problems = local_checks.folder_problems({"checkpoint": tmp_path}, needed_bytes=2**70)
    assert len(problems) == 1 and "MiB free; the run needs about" in problems[0].message


def test_an_empty_channel_is_refused(spec_data, tmp_path):
    empty, full = tmp_path / "empty", tmp_path / "full"
    empty.mkdir()
    (full / "part").mkdir(parents=True)
    (full / "part" / "x.pt").write_bytes(b"data")
    data = {**spec_data, "inputs": {"train": {"uri": str(empty)}, "valid": {"uri": str(full)}}}
    with pytest.raises(SpecError) as raised:
        local.prepare(request_for(data), tmp_path / "work", 1)
    assert raised.value.paths() == ["inputs.train.uri"] and "holds no files" in str(raised.value)


@pytest.mark.parametrize("distribution,processes,path", [
    ({"type": "fsdp", "sharding": "hybrid_shard", "shard_degree": 4}, 2, "distribution.shard_degree"),
    ({"type": "fsdp", "sharding": "hybrid_shard", "shard_degree": 4}, 6, "distribution.shard_degree"),
    ({"type": "pipeline", "dp_degree": 2, "pp_degree": 4, "microbatches": 4}, 2, "--processes"),
])
def test_degrees_must_fit_the_local_process_count(spec_data, tmp_path, distribution, processes, path):
    data = {**spec_data, "compute": {"instance_type": "ml.g5.12xlarge", "instance_count": 2}, "distribution": distribution}
    with pytest.raises(SpecError) as raised:
        local.prepare(request_for(data), tmp_path / "work", processes)
    assert raised.value.paths() == [path]
    assert not (tmp_path / "work").exists()


GPT = {"model": "gpt", "n_layers": 24, "d_model": 2048, "n_heads": 16, "seq_len": 256, "vocab_size": 256,
       "global_batch_size": 16, "steps": 5}


def test_a_run_that_cannot_fit_this_machines_memory_is_refused(spec_data, tmp_path):
    # (on 40 GiB GPUs: validate's own memory check refuses this DDP job on the 24 GiB A10Gs of the base spec)
    spec = validate_spec({**spec_data, "entry_point": "train.py", "source_dir": None, "hyperparameters": GPT,
                          "compute": {"instance_type": "ml.p4d.24xlarge", "instance_count": 1}})
    check = local_checks.estimate_memory(spec, 16)
    # 1.2 B parameters x 16 bytes (fp32 weights, gradients, Adam) each, plus DDP's gradient buckets
    assert check.per_process_bytes > 1.2e9 * 16
    with pytest.raises(SpecError) as raised:
        api.prepare_local(spec, processes=16, work_dir=tmp_path / "work")
    text = str(raised.value)
    assert "16 processes need about" in text and "GiB available" in text and "--set n_layers=2" in text
    assert not (tmp_path / "work").exists()


def test_a_small_model_fits_and_its_estimate_counts_torch_itself(spec_data):
    spec = validate_spec({**spec_data, "entry_point": "train.py", "source_dir": None,
                          "hyperparameters": {**GPT, "n_layers": 2, "d_model": 64, "n_heads": 4}})
    check = local_checks.estimate_memory(spec, 2)
    assert local_checks.TORCH_PROCESS_BYTES < check.per_process_bytes < local_checks.TORCH_PROCESS_BYTES + 2**28
    assert local_checks.memory_problems(check) == []


def saved_checkpoint(checkpoint_dir: Path, step: int, hyperparameters: dict, shaping=("hidden_sizes", "model")) -> Path:
    path = checkpoint_dir / f"step_{step:08d}"
    path.mkdir(parents=True)
    config = {"step": step, "hyperparameters": hyperparameters, "shaping": list(shaping)}
    (path / smr.CONFIG_FILE).write_text(json.dumps(config))
    (path / smr.COMPLETE_MARKER).touch()
    return path


def test_resuming_with_other_model_shaping_values_is_refused_before_start(spec_data, tmp_path):
    work = tmp_path / "work"
    saved_checkpoint(work / "checkpoints", 40, {"model": "mlp", "hidden_sizes": [16, 16], "lr": 0.1})
    data = {**spec_data, "hyperparameters": {"model": "mlp", "hidden_sizes": [32, 32], "lr": 0.5}}
    with pytest.raises(SpecError) as raised:
        local.prepare(request_for(data), work, 1)
    text = str(raised.value)
    assert "hidden_sizes: [16, 16] -> [32, 32]" in text and "--fresh" in text and "lr" not in text.split("To fix")[0]
    # the refused run leaves the work dir as it found it: no model/ or output/ folder, no lock file
    assert sorted(p.relative_to(work).as_posix() for p in work.rglob("*")) == [
        "checkpoints", "checkpoints/step_00000040", f"checkpoints/step_00000040/{smr.COMPLETE_MARKER}",
        f"checkpoints/step_00000040/{smr.CONFIG_FILE}"]
    layout = local.prepare(request_for(data), work, 1, fresh=True)  # the fix works
    assert not list(layout.checkpoint_dir.iterdir())
    local_checks.unlock(layout.base_dir)


def test_the_runtime_refuses_the_same_change(tmp_path):
    env = smr.environment({"SAGEMAKER_BASE_DIR": str(tmp_path)})
    saved_checkpoint(env.checkpoint_dir, 7, {"model": "mlp", "hidden_sizes": [16, 16]})
    assert smr.shaping_differences(env.checkpoint_dir / "step_00000007", {"model": "mlp", "hidden_sizes": [16, 16], "lr": 1}) == []
    assert smr.shaping_differences(env.checkpoint_dir / "step_00000007", {"model": "mlp", "hidden_sizes": [8]}) == [
        "hidden_sizes: [16, 16] -> [8]"]


def test_a_model_that_cannot_be_written_leaves_no_file_and_says_why(tmp_path):
    import torch

    env = smr.environment({"SAGEMAKER_BASE_DIR": str(tmp_path)})
    with read_only(env.model_dir):
        with pytest.raises(OSError, match="writing the model to .*model.pt failed .* MiB are free there"):
            smr.save_model(env, {"w": torch.zeros(4)})
    assert list(env.model_dir.iterdir()) == []


def test_the_lock_file_names_the_holder(tmp_path):
    assert local_checks.lock(tmp_path) is None
    try:
        assert (tmp_path / local_checks.LOCK_FILE).read_text() == str(os.getpid())
        assert local_checks.lock(tmp_path) is None  # the same process again: its own lock
    finally:
        local_checks.unlock(tmp_path)
    time.sleep(0)


def test_without_the_container_toolkit_run_exits_2_before_making_anything(tmp_path, monkeypatch):
    """A plain install (no `local` extra): `smjobs run` names the extra to install and leaves the work dir unmade."""
    import importlib.util

    from typer.testing import CliRunner

    from smjobs.cli import app

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name.split(".")[0] == "sagemaker_training" else real(name, *a))
    work = tmp_path / "work"
    result = CliRunner().invoke(app, ["run", "ddp_mlp", "--processes", "2", "--work-dir", str(work)])
    assert result.exit_code == 2, result.output
    assert "pip install 'smjobs[local]'" in result.output and "sagemaker_training" in result.output
    assert not work.exists()


def _checkpoint(folder: Path, step: int, complete: bool) -> None:
    path = folder / f"step_{step:08d}"
    path.mkdir(parents=True)
    (path / "__0_0.distcp").write_bytes(b"x")
    if complete:
        (path / smr.COMPLETE_MARKER).touch()


@pytest.mark.parametrize(("keep", "local_rank", "left"), [
    (4, 0, [20, 30, 50, 60]),
    (2, 0, [30, 50, 60]),  # 50 and 60 are incomplete: the newest complete one (30) is kept too
    (1, 0, [30, 60]),
    (0, 0, [10, 20, 30, 50, 60]),  # 0 keeps every checkpoint
    (1, 1, [10, 20, 30, 50, 60]),  # only local rank 0 prunes
])
def test_checkpoints_are_pruned_to_the_newest_and_the_newest_complete(tmp_path, keep, local_rank, left):
    for step, complete in ((10, True), (20, True), (30, True), (50, False), (60, False)):
        _checkpoint(tmp_path, step, complete)
    env = smr.SageMakerEnv(model_dir=tmp_path / "m", output_data_dir=tmp_path / "o",
                           failure_file=tmp_path / "f", checkpoint_dir=tmp_path, local_rank=local_rank)
    smr.prune_checkpoints(env, keep)
    assert sorted(int(p.name.removeprefix("step_")) for p in tmp_path.glob("step_*")) == left


def test_a_finished_run_is_not_trained_again_unless_it_changed_or_fresh(spec_data, tmp_path):
    work = tmp_path / "work"
    request = request_for(spec_data)
    layout = local.prepare(request, work, 1)
    (layout.model_dir / "model.pt").write_bytes(b"weights")
    local_checks.record_finished(request, layout.output_dir, layout.model_dir, 12.5)
    local_checks.unlock(layout.base_dir)
    before = sorted(str(p) for p in work.rglob("*"))
    later = build_request(validate_spec(spec_data), job_name="a-later-submission")  # another job name, same run
    with pytest.raises(local.FinishedBefore) as raised:
        local.prepare(later, work, 1, rerun_finished=False)
    assert raised.value.record["models"] == ["model.pt"] and raised.value.record["duration_s"] == 12.5
    assert sorted(str(p) for p in work.rglob("*")) == before, "nothing changes"
    result = api.run_local(validate_spec(spec_data), processes=1, work_dir=work)  # the API says so without running
    assert result.finished_before is not None and result.exit_code == 0 and "--fresh" in result.status
    # other hyperparameters (more steps: the run resumes), a missing model, or --fresh: it runs
    changed = request_for({**spec_data, "hyperparameters": {**spec_data.get("hyperparameters", {}), "steps": 999}})
    local_checks.unlock(local.prepare(changed, work, 1, rerun_finished=False).base_dir)
    local_checks.unlock(local.prepare(request, work, 1, rerun_finished=False, fresh=True).base_dir)
    assert not (work / "model" / "model.pt").exists()
    # a run that saved no model never counts as finished
    local_checks.record_finished(request, layout.output_dir, layout.model_dir, 1.0)
    local_checks.unlock(local.prepare(request, work, 1, rerun_finished=False).base_dir)


def test_the_bundled_gpt_defaults_the_memory_check_fills_in_are_the_scripts():
    import argparse
    import sys

    from smjobs.spec.job import ENTRY_POINTS_DIR

    sys.path.insert(0, str(ENTRY_POINTS_DIR))
    from common.models import add_model_arguments

    parser = argparse.ArgumentParser()
    add_model_arguments(parser)
    defaults = vars(parser.parse_args([]))
    assert {k: defaults[k] for k in local_checks.BUNDLED_GPT_DEFAULTS} == local_checks.BUNDLED_GPT_DEFAULTS


def test_a_large_smp_v2_gpt_is_sized_before_it_runs_and_the_degrees_fix_fits_the_processes():
    from smjobs.local import mpi, runner
    from smjobs.request.training import build_request
    from smjobs.spec.job import example_path, read_spec_data

    spec = validate_spec(read_spec_data(example_path("smp_v2_gpt")))  # vocab_size unset: the script's 256
    check = local_checks.estimate_memory(spec, 4)
    assert check is not None and check.parameters > 1e9
    request = build_request(spec, job_name="t")
    assert mpi.uses_smp_v2(request) and not mpi.uses_smdistributed(request)  # torchrun, as SageMaker starts it
    (problem,) = runner.local_problems(request, 4)
    assert problem.fix == ("run with --processes 16, or fit the degrees to 4 processes: "
                           "--set distribution.hybrid_shard_degree=2.")
