"""Faults injected by hand: a stop at any moment, a stop and resume of every model-parallel script (bitwise), a
corrupt newest checkpoint, a changed model on resume."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from smjobs.checks.validate import validate_spec
from smjobs.local import runner as local
from smjobs.request.training import build_request
from smjobs.spec.job import ENTRY_POINTS_DIR

pytestmark = pytest.mark.integration
TORCHRUN = Path(sys.executable).parent / "torchrun"

TINY = {"model": "mlp", "hidden_sizes": [16, 16, 16], "global_batch_size": 8, "lr": 0.01, "log_every": 1}
SCRIPTS = {
    "pipeline": ({"name": "fault-pipeline", "entry_point": "train_pipeline.py",
                  "distribution": {"type": "pipeline", "dp_degree": 2, "pp_degree": 2, "microbatches": 2}}, 4),
    "naive_mp": ({"name": "fault-naive", "entry_point": "train_naive_mp.py", "distribution": {"type": "naive_mp"}}, 2),
}


def spec(kind: str, steps: int) -> dict:
    base, _ = SCRIPTS[kind]
    return {**base, "compute": {"instance_type": "ml.g5.12xlarge", "instance_count": 1},
            "hyperparameters": {**TINY, "steps": steps}}


def run(data, work_dir, processes, **kwargs):
    request = build_request(validate_spec(data), job_name="fault-test")
    return local.launch(request, local.prepare(request, work_dir, processes), **kwargs)


def model_of(result) -> dict[str, torch.Tensor]:
    return torch.load(result.layout.model_dir / "model.pt", weights_only=False)["model"]


def assert_bitwise_equal(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), f"{key} differs"


@pytest.mark.parametrize("kind", list(SCRIPTS))
def test_stop_and_resume_is_bitwise_equal_to_an_uninterrupted_run(kind, tmp_path):
    data, processes = spec(kind, 100), SCRIPTS[kind][1]  # the stop comes at step 5: room for a slow machine
    reference = run(data, tmp_path / "reference", processes)
    assert reference.exit_code == 0, "\n".join(reference.lines[-30:])

    state = {}

    def stop_at_step_5(line):
        if "step=5 " in line and "sent" not in state:
            state["sent"] = True
            local.interrupt(state["proc"])

    stopped = run(data, tmp_path / "work", processes, on_line=stop_at_step_5, on_start=lambda p: state.update(proc=p))
    assert stopped.stopped and stopped.stopped_at_step is not None, "\n".join(stopped.lines[-30:])
    assert 5 <= stopped.stopped_at_step < 100
    assert stopped.status == f"stopped: checkpoint at step {stopped.stopped_at_step} saved; run again to resume"
    assert not (tmp_path / "work" / "model" / "model.pt").exists()

    resumed = run(data, tmp_path / "work", processes)
    assert resumed.exit_code == 0, "\n".join(resumed.lines[-30:])
    assert f"resuming from checkpoint step_{stopped.stopped_at_step:08d}" in "\n".join(resumed.lines)
    assert_bitwise_equal(model_of(reference), model_of(resumed))


def test_a_stop_during_start_up_stops_the_run(tmp_path, run_processes):
    data = {"name": "fault-startup", "entry_point": "train.py", "compute": {"instance_type": "ml.g5.12xlarge"},
            "hyperparameters": {**TINY, "steps": 100000, "log_every": 1000}}
    state = {}
    started = time.monotonic()
    # the stop comes while only the toolkit exists: torchrun and the ranks it starts later must get it too
    result = run(data, tmp_path / "work", 2, on_start=lambda proc: local.interrupt(proc) or state.update(proc=proc))
    elapsed = time.monotonic() - started
    assert result.stopped, "\n".join(result.lines[-30:])
    assert not (tmp_path / "work" / "model" / "model.pt").exists(), "the run trained to the end"
    assert elapsed < 30, f"{elapsed:.1f} s"
    assert run_processes(tmp_path / "work") == [], "processes of the run were left behind"


@pytest.mark.parametrize(("when", "sig"), [(0.3, signal.SIGTERM), (0.6, signal.SIGINT), (1.5, signal.SIGTERM),
                                           ("toolkit started", signal.SIGTERM), ("rank started", signal.SIGINT)])
def test_a_signal_to_the_cli_at_any_moment_stops_it_in_one_line(when, sig, tmp_path, run_processes):
    work = tmp_path / "work"
    spec_file = tmp_path / "job.yaml"
    spec_file.write_text("name: fault-cli\nentry_point: train.py\ncompute: {instance_type: ml.g5.12xlarge}\n"
                         "hyperparameters: {model: mlp, steps: 100000, log_every: 1000, global_batch_size: 8}\n")
    # python -m smjobs: what the console script runs
    cli = subprocess.Popen([sys.executable, "-m", "smjobs", "run", str(spec_file), "--processes", "2",
                            "--work-dir", str(work)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    started = time.monotonic()
    while time.monotonic() - started < 60:  # a moment while importing, validating, starting the toolkit, training
        if isinstance(when, float) and time.monotonic() - started >= when:
            break
        members = run_processes(work)
        if when == "toolkit started" and members or when == "rank started" and len(members) >= 4:
            break
        time.sleep(0.02)
    cli.send_signal(sig)
    stopped_at = time.monotonic()
    output, _ = cli.communicate(timeout=90)
    took_s = time.monotonic() - stopped_at
    assert cli.returncode == 128 + sig, output[-3000:]  # 143 for SIGTERM, 130 for SIGINT, as a shell reports them
    said = [line for line in output.splitlines() if "stopped by " + signal.Signals(sig).name in line]
    assert len(said) == 1, output[-3000:]  # one line says what was stopped, whenever the signal came
    # no traceback of smjobs' own (torchrun may print one for a rank the stop ended before its handler existed)
    smjobs_frames = [line for line in output.splitlines() if line.strip().startswith("File ") and "/jobs/" in line
                     or "/smjobs/" in line and "File " in line]
    assert smjobs_frames == [] and "Aborted" not in output, output[-3000:]
    if when != "rank started":  # nothing could save a checkpoint yet: everything ends at once
        assert took_s < 5, f"{took_s:.1f} s:\n{output[-3000:]}"
    assert not (work / "output" / "failure").exists(), "a stop is not a failure"
    assert not (work / "model" / "model.pt").exists(), "the run trained to the end"
    assert run_processes(work) == [], "processes of the run were left behind"


# ----- checkpoints ----------------------------------------------------------------------------------------
def torchrun(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    from smjobs.local.runner import free_port

    env = {**os.environ, "OMP_NUM_THREADS": "1", "SAGEMAKER_BASE_DIR": str(tmp_path)}
    return subprocess.run([str(TORCHRUN), "--nproc_per_node", "2", "--master_addr", "127.0.0.1", "--master_port",
                           str(free_port()), str(ENTRY_POINTS_DIR / "train.py"), "--model", "mlp", "--hidden_sizes",
                           "[16,16]", "--global_batch_size", "8", "--checkpoint_every", "2", *args],
                          capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)


def corrupt(checkpoint: Path, how: str) -> None:
    if how == "truncated shard":
        shard = checkpoint / "__1_0.distcp"
        shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 3])
    elif how == "garbage metadata":
        (checkpoint / ".metadata").write_bytes(os.urandom(64))
    else:
        (checkpoint / ".metadata").unlink()


@pytest.fixture(scope="module")
def uninterrupted_dir(tmp_path_factory) -> Path:
    """The base dir of a finished 8-step run that saved a checkpoint every 2 steps."""
    base = tmp_path_factory.mktemp("uninterrupted")
    done = torchrun(base, "--steps", "8")
    assert done.returncode == 0, done.stderr[-3000:]
    return base


@pytest.fixture(scope="module")
def uninterrupted(uninterrupted_dir) -> dict:
    return torch.load(uninterrupted_dir / "model" / "model.pt", weights_only=False)["model"]


def test_old_checkpoints_are_pruned_to_the_newest_three(uninterrupted_dir):
    kept = sorted(path.name for path in (uninterrupted_dir / "checkpoints").iterdir())
    assert kept == ["step_00000004", "step_00000006", "step_00000008"]  # of 2, 4, 6, 8 (checkpoint_keep 3)


@pytest.mark.parametrize("how", ["truncated shard", "garbage metadata", "missing metadata"])
def test_a_corrupt_newest_checkpoint_is_skipped_for_the_one_before(how, tmp_path, uninterrupted):
    first = torchrun(tmp_path, "--steps", "6")
    assert first.returncode == 0, first.stderr[-3000:]
    corrupt(tmp_path / "checkpoints" / "step_00000006", how)
    shutil.rmtree(tmp_path / "model")
    again = torchrun(tmp_path, "--steps", "8")
    log = again.stdout + again.stderr
    assert again.returncode == 0, log[-3000:]
    assert "checkpoint step_00000006 skipped: cannot be read" in log
    assert "resuming from checkpoint step_00000004 (step 4); skipped 1 newer" in log
    assert_bitwise_equal(uninterrupted, torch.load(tmp_path / "model" / "model.pt", weights_only=False)["model"])


def test_changed_model_shape_on_resume_is_refused_by_the_script(tmp_path):
    first = torchrun(tmp_path, "--steps", "2")
    assert first.returncode == 0, first.stderr[-3000:]
    again = torchrun(tmp_path, "--steps", "4", "--hidden_sizes", "[32,32]")
    assert again.returncode != 0
    failure = (tmp_path / "output" / "failure").read_text()
    assert "CheckpointMismatch" in failure and "hidden_sizes: [16, 16] -> [32, 32]" in failure and "--fresh" in failure


def test_the_gpts_full_recomputation_trains_the_same_model(tmp_path):
    """--recompute full (what the planner sets for a plan with full recomputation) keeps only each block's input
    and runs the block again in backward: the trained parameters are those of a run that keeps everything."""
    models = {}
    for mode in ("none", "full"):
        base = tmp_path / mode
        done = subprocess.run([sys.executable, str(ENTRY_POINTS_DIR / "train.py"), "--model", "gpt", "--n_layers", "2",
                               "--d_model", "32", "--n_heads", "2", "--seq_len", "16", "--vocab_size", "64",
                               "--global_batch_size", "4", "--steps", "3", "--parallel", "none", "--recompute", mode],
                              capture_output=True, text=True, timeout=300, cwd=tmp_path,
                              env={**os.environ, "OMP_NUM_THREADS": "1", "SAGEMAKER_BASE_DIR": str(base)})
        assert done.returncode == 0, done.stderr[-3000:]
        models[mode] = torch.load(base / "model" / "model.pt", weights_only=False)["model"]
    assert models["none"].keys() == models["full"].keys()
    for key in models["none"]:
        assert torch.allclose(models["none"][key], models["full"][key], atol=1e-6), key


def test_full_recomputation_runs_each_block_again_in_backward(monkeypatch):
    monkeypatch.syspath_prepend(str(ENTRY_POINTS_DIR))
    from common.models import GPT, Block, apply_recompute

    calls = []
    original = Block._forward
    monkeypatch.setattr(Block, "_forward", lambda self, x: calls.append(1) or original(self, x))
    for mode, per_block in (("none", 1), ("full", 2)):
        calls.clear()
        model = apply_recompute(GPT(vocab_size=32, d_model=16, n_layers=3, n_heads=2, seq_len=8), mode)
        model(torch.randint(0, 32, (2, 8))).sum().backward()
        assert len(calls) == 3 * per_block, (mode, len(calls))
