"""Local runs under the real container toolkit: conformance with SageMaker's contract, and correctness."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
import torch

from smjobs.checks.validate import validate_spec
from smjobs.local import runner as local
from smjobs.local.stop import rank_pid
from smjobs.request.training import build_request

pytestmark = pytest.mark.integration

TRAIN_SPEC = {
    "name": "local-test",
    "entry_point": "train.py",
    "compute": {"instance_type": "ml.g5.12xlarge", "instance_count": 1},
    "hyperparameters": {"model": "mlp", "steps": 8, "global_batch_size": 16, "lr": 0.01, "log_every": 1,
                        "hidden_sizes": [32, 32], "optimizer": {"name": "adamw", "betas": [0.9, 0.95]}},
}


def run(data, work_dir, processes, **kwargs):
    request = build_request(validate_spec(data), job_name="local-test")
    layout = local.prepare(request, work_dir, processes)
    return local.launch(request, layout, **kwargs)


def final_params(result) -> dict[str, torch.Tensor]:
    return torch.load(result.layout.model_dir / "model.pt", weights_only=False)["model"]


def assert_same_params(a, b, atol=1e-6):
    assert a.keys() == b.keys()
    for key in a:
        diff = (a[key].float() - b[key].float()).abs().max().item()
        assert diff <= atol, f"{key}: max abs diff {diff}"


def with_changes(changes: dict) -> dict:
    data = json.loads(json.dumps(TRAIN_SPEC))
    data["hyperparameters"].update(changes.pop("hyperparameters", {}))
    data.update(changes)
    return data


# ----- conformance -------------------------------------------------------------------------------------
TOOLKIT_ENV = "import json; from sagemaker_training import environment; print(json.dumps(environment.Environment().to_env_vars()))"


def test_script_sees_the_environment_sagemaker_derives(spec_data, tmp_path):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "part-0.txt").write_text("a record\n")
    data = {**spec_data, "hyperparameters": {"steps": 3, "layers": [1, 2], "flag": True},
            "inputs": {"train": {"uri": str(data_dir), "input_mode": "FastFile", "s3_distribution": "ShardedByS3Key"}}}
    request = build_request(validate_spec(data), job_name="conformance")
    layout = local.prepare(request, tmp_path / "work", processes=2)
    result = local.launch(request, layout)
    assert result.exit_code == 0, "\n".join(result.lines[-30:])

    # the toolkit's own derivation from the same config files
    env = {**local.toolkit_environment(layout)}
    done = subprocess.run([sys.executable, "-c", TOOLKIT_ENV], env=env, capture_output=True, text=True, timeout=120)
    expected = json.loads(done.stdout.strip().splitlines()[-1])
    for rank in (0, 1):
        seen = json.loads((layout.output_dir / "data" / f"probe-rank{rank}.json").read_text())
        sm_seen = {k: v for k, v in seen["env"].items() if k != "SM_STUDIO_LOCAL_MODE"}
        # sagemaker-pytorch-training adds the torch version on top of the toolkit's variables
        assert sm_seen == {**expected, "SM_DLC_TORCH_VERSION": torch.__version__}
        assert seen["torchrun"]["WORLD_SIZE"] == "2" and seen["torchrun"]["RANK"] == str(rank)
    assert expected["SM_CHANNEL_TRAIN"] == str(layout.data_dir / "train")
    assert expected["SM_NUM_GPUS"] == "0" and expected["SM_HOSTS"] == '["algo-1"]'
    assert expected["SM_MODEL_DIR"] == str(layout.model_dir)

    # the config files are what SageMaker writes for the submitted request
    files = {p.name: json.loads(p.read_text()) for p in layout.config_dir.glob("*.json")}
    sent = request.create_training_job
    hps = files["hyperparameters.json"]
    assert all(isinstance(v, str) for v in hps.values())
    differs = {k for k in hps if hps[k] != sent["HyperParameters"].get(k)}
    assert differs == {"sagemaker_submit_directory", "sagemaker_mpi_num_of_processes_per_host"}
    assert json.loads(hps["sagemaker_mpi_num_of_processes_per_host"]) == 2
    channel = sent["InputDataConfig"][0]
    assert files["inputdataconfig.json"] == {"train": {
        "TrainingInputMode": channel["InputMode"],
        "S3DistributionType": channel["DataSource"]["S3DataSource"]["S3DataDistributionType"],
        "RecordWrapperType": "None"}}
    resource = files["resourceconfig.json"]
    assert resource["current_host"] in resource["hosts"]
    assert resource["current_instance_type"] == sent["ResourceConfig"]["InstanceType"]


# ----- correctness ------------------------------------------------------------------------------------------
def test_ddp_two_processes_equal_one(tmp_path):
    one = run(TRAIN_SPEC, tmp_path / "one", 1)
    two = run(TRAIN_SPEC, tmp_path / "two", 2)
    assert one.exit_code == two.exit_code == 0, "\n".join(two.lines[-20:])
    assert "on 2 process(es)" in "\n".join(two.lines)
    assert_same_params(final_params(one), final_params(two))


def test_ddp_accumulating_micro_batches_syncs_once_and_equals_one_process(tmp_path):
    """train.py skips DDP's all-reduce on all but the last micro-batch (no_sync), as the planner assumes: the
    gradients still average over every micro-batch of every rank."""
    data = with_changes({"hyperparameters": {"grad_accum_steps": 2}})
    one = run(data, tmp_path / "one", 1)
    two = run(data, tmp_path / "two", 2)
    assert one.exit_code == two.exit_code == 0, "\n".join(two.lines[-20:])
    assert_same_params(final_params(one), final_params(two))


# Adam turns round-off in a gradient that is zero in exact arithmetic (attention's key bias) into +-lr
# steps, so the transformer is compared under SGD; the MLP, which has no such parameter, under AdamW.
@pytest.mark.parametrize("hyperparameters", [
    {"model": "mlp"},
    {"model": "gpt", "d_model": 32, "n_layers": 2, "seq_len": 16, "optimizer": {"name": "sgd", "momentum": 0.9}},
], ids=["mlp-adamw", "gpt-sgd"])
def test_fsdp_two_processes_equal_one(tmp_path, hyperparameters):
    data = with_changes({"distribution": {"type": "fsdp", "mixed_precision": "fp32"}, "hyperparameters": hyperparameters})
    one = run(data, tmp_path / "one", 1)
    two = run(data, tmp_path / "two", 2)
    assert one.exit_code == two.exit_code == 0, "\n".join(two.lines[-20:])
    assert f"{hyperparameters['model']} with fsdp on 2 process(es)" in "\n".join(two.lines)
    assert_same_params(final_params(one), final_params(two))


def test_fsdp_unsharded_between_microbatches_equals_one_process(tmp_path):
    """The planner's FSDP2 option (one gather and one reduce-scatter per step) trains what one process trains."""
    data = with_changes({"distribution": {"type": "fsdp", "mixed_precision": "fp32", "unsharded_microbatches": True},
                         "hyperparameters": {"model": "mlp", "grad_accum_steps": 2}})
    one = run(with_changes({"hyperparameters": {"model": "mlp", "grad_accum_steps": 2}}), tmp_path / "one", 1)
    two = run(data, tmp_path / "two", 2)
    assert one.exit_code == two.exit_code == 0, "\n".join(two.lines[-20:])
    assert "fsdp unsharded between 2 micro-batches" in "\n".join(two.lines)  # the script got the setting
    assert_same_params(final_params(one), final_params(two))


def test_sigterm_checkpoints_and_resume_equals_uninterrupted(tmp_path):
    data = with_changes({"hyperparameters": {"steps": 600, "log_every": 10}})
    reference = run(data, tmp_path / "reference", 2)
    assert reference.exit_code == 0

    started = {}

    def interrupt_at_step_100(line):
        if "step=100 " in line and "sent" not in started:
            started["sent"] = True
            local.interrupt(started["proc"])  # SIGTERM to the training processes, as a spot interruption

    interrupted = run(data, tmp_path / "work", 2, on_line=interrupt_at_step_100,
                      on_start=lambda proc: started.update(proc=proc))
    log = "\n".join(interrupted.lines)
    assert interrupted.stopped and "checkpoint at step" in log, log[-2000:]
    assert interrupted.exit_code == 0, "the ranks stop cleanly, and torchrun and the toolkit end with them"
    checkpoints = sorted((tmp_path / "work" / "checkpoints").glob("step_*"))
    assert len(checkpoints) == 1 and 100 <= int(checkpoints[0].name[5:]) < 600
    assert not (tmp_path / "work" / "model" / "model.pt").exists()

    resumed = run(data, tmp_path / "work", 2)
    assert resumed.exit_code == 0, "\n".join(resumed.lines[-40:])
    assert f"from step {int(checkpoints[0].name[5:])}" in "\n".join(resumed.lines)
    assert_same_params(final_params(reference), final_params(resumed))


def test_a_failing_rank_stops_the_whole_run(tmp_path):
    data = with_changes({"hyperparameters": {"steps": 1000, "fail_at_step": 3, "fail_rank": 1}})
    procs = {}
    start = time.monotonic()
    result = run(data, tmp_path / "work", 2, on_start=lambda p: procs.update(p=p))
    elapsed = time.monotonic() - start
    assert result.exit_code != 0
    assert elapsed < 30, f"took {elapsed:.1f} s"
    assert "injected failure at step 3 on rank 1" in (result.failure or "")
    with pytest.raises(ProcessLookupError):
        os.killpg(procs["p"].pid, 0)  # nothing of the run's process group is left


def test_a_rank_killed_with_sigkill_ends_the_run_within_5_s_and_is_named(tmp_path, run_processes):
    data = with_changes({"hyperparameters": {"steps": 5000, "log_every": 1}})
    state = {}

    def on_line(line):
        if "killed_at" not in state and line.startswith("[default0]:step="):
            pid = rank_pid(state["proc"].pid, 1)
            if pid is not None:
                state["killed_at"], state["pid"] = time.monotonic(), pid
                os.kill(pid, 9)

    result = run(data, tmp_path / "work", 2, on_start=lambda p: state.update(proc=p), on_line=on_line)
    ended = time.monotonic()
    assert "killed_at" in state and result.exit_code != 0
    assert ended - state["killed_at"] < 5, f"the run took {ended - state['killed_at']:.1f} s to end after the kill"
    assert result.root_cause is not None and (result.root_cause.rank, result.root_cause.signal_name) == (1, "SIGKILL")
    assert result.failure.startswith(f"first failure: rank 1 (pid {state['pid']}) was killed by SIGKILL")
    with pytest.raises(ProcessLookupError):
        os.killpg(state["proc"].pid, 0)
    assert run_processes(tmp_path / "work") == [], "ranks (in sessions of their own) were left behind"
