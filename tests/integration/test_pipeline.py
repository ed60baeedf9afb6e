"""Pipeline and naive model parallelism on gloo: every schedule matches a single-process run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from smjobs.local.runner import free_port
from smjobs.spec.job import ENTRY_POINTS_DIR

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
TORCHRUN = Path(sys.executable).parent / "torchrun"
BASE = ["--model", "mlp", "--steps", "3", "--global_batch_size", "32", "--lr", "0.01",
        "--hidden_sizes", "[24,24,24,24,24,24,24]", "--optimizer", '{"name":"adamw"}']
SCHEDULES = {"GPipe": 1, "1F1B": 1, "Interleaved1F1B": 2, "LoopedBFS": 2, "InterleavedZeroBubble": 2,
             "ZBVZeroBubble": 2, "DualPipeV": 2}


def reference(argv) -> dict:
    sys.path.insert(0, str(ENTRY_POINTS_DIR))
    import train_pipeline

    state, losses = train_pipeline.run_reference(train_pipeline.parse_args(argv), torch.device("cpu"))
    return {"model": state, "losses": losses}


def launch(script, processes, args, tmp_path) -> subprocess.CompletedProcess:
    tmp_path.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "SAGEMAKER_BASE_DIR": str(tmp_path)}
    return subprocess.run([str(TORCHRUN), "--nproc_per_node", str(processes), "--master_addr", "127.0.0.1",
                           "--master_port", str(free_port()), str(script), *args],
                          capture_output=True, text=True, env=env, timeout=600, cwd=tmp_path)


def assert_matches(result: dict, expected: dict, atol=1e-6):
    assert torch.allclose(torch.tensor(result["losses"]), torch.tensor(expected["losses"]), atol=atol)
    assert result["model"].keys() == expected["model"].keys()
    for key, value in expected["model"].items():
        diff = (result["model"][key] - value).abs().max().item()
        assert diff <= atol, f"{key}: {diff}"


@pytest.mark.parametrize("processes", [2, 4])
def test_every_schedule_matches_one_process(processes, tmp_path):
    microbatches = 2 * processes  # enough for every schedule; divides the batch of 32 (and 16 per dp replica)
    configs = {
        name: [*BASE, "--pp_degree", str(processes), "--pp_schedule", name, "--pp_virtual_stages", str(v),
               "--pp_microbatches", str(microbatches)]
        for name, v in SCHEDULES.items()
    }
    if processes == 2:  # gradients accumulated over 2 schedule steps of 4 micro-batches: the same training
        configs["GPipe-2-accumulation-steps"] = [*BASE, "--pp_degree", "2", "--pp_schedule", "GPipe",
                                                 "--pp_microbatches", "4", "--pp_accumulation_steps", "2"]
    if processes == 4:
        configs["dp2xpp2-1F1B"] = [*BASE, "--dp_degree", "2", "--pp_degree", "2", "--pp_schedule", "1F1B",
                                   "--pp_microbatches", "4"]
        configs["dp2xpp2-Interleaved1F1B"] = [*BASE, "--dp_degree", "2", "--pp_degree", "2", "--pp_virtual_stages", "2",
                                              "--pp_schedule", "Interleaved1F1B", "--pp_microbatches", "4"]
    done = launch(ROOT / "tests" / "fixtures" / "pipeline_runs.py", processes, [str(tmp_path), json.dumps(configs)], tmp_path)
    assert done.returncode == 0, done.stderr[-4000:]
    expected = reference(BASE)
    for name in configs:
        result = torch.load(tmp_path / f"{name}.pt", weights_only=False)
        assert_matches(result, expected)


def test_dp_pp_tp_on_four_processes(tmp_path):
    gpt = ["--model", "gpt", "--steps", "3", "--global_batch_size", "16", "--lr", "0.05", "--n_layers", "2",
           "--d_model", "32", "--seq_len", "8", "--optimizer", '{"name":"sgd"}']
    configs = {"pp2xtp2": [*gpt, "--pp_degree", "2", "--tp_degree", "2", "--pp_schedule", "GPipe", "--pp_microbatches", "2"]}
    done = launch(ROOT / "tests" / "fixtures" / "pipeline_runs.py", 4, [str(tmp_path), json.dumps(configs)], tmp_path)
    assert done.returncode == 0, done.stderr[-4000:]
    assert_matches(torch.load(tmp_path / "pp2xtp2.pt", weights_only=False), reference(gpt))


@pytest.mark.parametrize("processes", [2, 4])
def test_naive_split_matches_one_process(processes, tmp_path):
    done = launch(ENTRY_POINTS_DIR / "train_naive_mp.py", processes, BASE, tmp_path)
    assert done.returncode == 0, done.stderr[-4000:]
    assert f"naive model parallel: {processes} stages" in done.stdout
    saved = torch.load(tmp_path / "model" / "model.pt", weights_only=False)
    assert_matches({"model": saved["model"], "losses": saved["losses"]}, reference(BASE))


@pytest.mark.parametrize("processes,mp_parameters", [
    (4, {"hybrid_shard_degree": 2, "tensor_parallel_degree": 2}),
    (2, {"hybrid_shard_degree": 0, "tensor_parallel_degree": 1}),
], ids=["hsdp2xtp2", "full-shard"])
def test_smp_v2_native_fallback_matches_one_process(processes, mp_parameters, tmp_path):
    """Without torch.sagemaker, an SMP v2 job runs on FSDP2 (hybrid sharding) + DTensor tensor parallelism."""
    args = ["--model", "gpt", "--steps", "3", "--global_batch_size", "8", "--lr", "0.05", "--d_model", "32",
            "--seq_len", "8", "--optimizer", '{"name":"sgd","momentum":0.9}', "--log_every", "1"]
    done = launch(ENTRY_POINTS_DIR / "train.py", processes, [*args, "--parallel", "smp_v2", "--smp_v2_backend", "native",
                                                              "--mp_parameters", json.dumps(mp_parameters)], tmp_path / "smp")
    assert done.returncode == 0, done.stderr[-4000:]
    single = subprocess.run([sys.executable, str(ENTRY_POINTS_DIR / "train.py"), *args, "--parallel", "none"],
                            capture_output=True, text=True, env={**os.environ, "SAGEMAKER_BASE_DIR": str(tmp_path / "one")})
    assert single.returncode == 0, single.stderr
    ours = torch.load(tmp_path / "smp" / "model" / "model.pt", weights_only=False)["model"]
    ref = torch.load(tmp_path / "one" / "model" / "model.pt", weights_only=False)["model"]
    assert ours.keys() == ref.keys()
    for key in ref:
        assert (ours[key] - ref[key]).abs().max().item() <= 1e-6, key
