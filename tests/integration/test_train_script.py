"""The bundled training script runs on CPU with the example's hyperparameters and prints what the metrics match."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from smjobs.checks.validate import validate_spec
from smjobs.request.training import build_request
from smjobs.spec.job import ENTRY_POINTS_DIR, example_path, read_spec_data

pytestmark = pytest.mark.integration


def run(cmd, tmp_path):
    env = {**os.environ, "SAGEMAKER_BASE_DIR": str(tmp_path), "OMP_NUM_THREADS": "1"}
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=180, cwd=tmp_path)


def example_args(overrides: dict) -> list[str]:
    spec = validate_spec(read_spec_data(example_path("ddp_mlp")))
    hps = {k: v for k, v in build_request(spec).estimator["hyperparameters"].items() if not k.startswith("sagemaker_")}
    hps.update(overrides)
    return [item for key, value in hps.items() for item in (f"--{key}", str(value))], spec


def test_single_process_run_matches_metric_definitions(tmp_path):
    args, spec = example_args({"steps": 20, "log_every": 5, "global_batch_size": 32, "parallel": "none"})
    done = run([sys.executable, str(ENTRY_POINTS_DIR / "train.py"), *args], tmp_path)
    assert done.returncode == 0, done.stderr
    for metric in spec.metric_definitions:
        values = [float(v) for v in re.findall(metric.regex, done.stdout)]
        assert len(values) == 4, (metric.name, done.stdout)
    losses = [float(v) for v in re.findall(r"loss=([0-9.eE+-]+)", done.stdout)]
    assert losses[-1] < losses[0]
    assert (Path(tmp_path) / "model" / "model.pt").exists()


def test_two_process_ddp_under_torchrun(tmp_path):
    args, _ = example_args({"steps": 4, "log_every": 2, "global_batch_size": 16})
    torchrun = Path(sys.executable).parent / "torchrun"
    from smjobs.local.runner import free_port

    done = run([str(torchrun), "--nproc_per_node", "2", "--master_addr", "127.0.0.1", "--master_port", str(free_port()),
                str(ENTRY_POINTS_DIR / "train.py"), *args], tmp_path)
    assert done.returncode == 0, done.stderr
    assert "on 2 process(es)" in done.stdout and "step=4 " in done.stdout


def test_reads_a_channel_directory(tmp_path):
    import torch

    channel = tmp_path / "channel"
    channel.mkdir()
    x = torch.randn(64, 32)
    torch.save({"x": x[:40], "y": x[:40].sum(1, keepdim=True)}, channel / "part-0.pt")
    torch.save({"x": x[40:], "y": x[40:].sum(1, keepdim=True)}, channel / "part-1.pt")
    env = {**os.environ, "SAGEMAKER_BASE_DIR": str(tmp_path), "SM_CHANNEL_TRAIN": str(channel)}
    cmd = [sys.executable, str(ENTRY_POINTS_DIR / "train.py"), "--data_channel", "train", "--steps", "6",
           "--global_batch_size", "16", "--log_every", "3", "--parallel", "none"]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "step=6 " in done.stdout
    missing = subprocess.run([*cmd[:3], "nope", *cmd[4:]], capture_output=True, text=True, env=env, timeout=120)
    assert missing.returncode != 0 and "no such input channel" in missing.stderr
    assert "no such input channel" in (tmp_path / "output" / "failure").read_text()
