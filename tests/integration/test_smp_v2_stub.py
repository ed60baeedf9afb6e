"""SMP v2 under smdistributed-stub's torch.sagemaker stand-in, with real processes:

- a script written the way AWS writes SMP v2 scripts (tests/fixtures/smdistributed/smp_v2_train.py) runs
  unmodified on 4 processes (hybrid shard 2 x tensor parallel 2) and on 2 (shard 2), stops and resumes from its
  checkpoints (async_local; sharded), and matches a plain-torch one-process run;
- the bundled train.py's smp_v2 path (`smjobs run smp_v2_gpt --processes 4`) under the stand-in matches the same
  model under plain FSDP2 + DTensor with the same degrees, and a stopped run resumes bitwise."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from smjobs.checks.validate import validate_spec
from smjobs.local import runner as local
from smjobs.local.runner import free_port
from smjobs.request.training import build_request
from smjobs.spec.job import example_path, read_spec_data

pytestmark = pytest.mark.integration
SCRIPTS = Path(__file__).resolve().parents[1] / "fixtures" / "smdistributed"
BIN = Path(sys.executable).parent
ATOL = 1e-5


def aws_style(tmp_path, name, processes, mp_parameters, *args):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SM_")}
    env.update(OMP_NUM_THREADS="1", SM_HP_MP_PARAMETERS=json.dumps(mp_parameters))
    out = tmp_path / f"{name}.pt"
    done = subprocess.run([str(BIN / "torchrun"), "--nproc_per_node", str(processes), "--master_addr", "127.0.0.1",
                           "--master_port", str(free_port()), str(SCRIPTS / "smp_v2_train.py"), "--out", str(out), *args],
                          capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return torch.load(out, weights_only=False)


@pytest.fixture(scope="module")
def reference():
    sys.path.insert(0, str(SCRIPTS))
    import hf_style_gpt

    return hf_style_gpt.reference_run()


def assert_close(result, reference, atol=ATOL):
    state, losses = reference
    start = result["start"]
    assert len(result["losses"]) == len(losses) - start
    assert max(abs(a - b) for a, b in zip(result["losses"], losses[start:], strict=True)) <= atol
    assert result["model"].keys() == state.keys()
    for key, value in state.items():
        assert (result["model"][key] - value).abs().max().item() <= atol, key


def test_aws_style_script_hybrid_shard_2_x_tp_2_matches_plain_torch_and_resumes(tmp_path, reference):
    """Stopped after step 4 and resumed from its async_local checkpoint (each rank's own shards and optimizer
    state): both runs together are the one-process run (the bundled script's test shows a resume is bitwise)."""
    layout = {"hybrid_shard_degree": 2, "tensor_parallel_degree": 2}
    stopped = aws_style(tmp_path, "stopped", 4, layout, "--checkpoint_dir", str(tmp_path / "b"),
                        "--checkpoint_type", "async_local", "--stop_at_step", "4")
    assert stopped["layout"] == (2, 2) and "tp 0/2" in stopped["state"] and len(stopped["losses"]) == 4
    assert max(abs(a - b) for a, b in zip(stopped["losses"], reference[1][:4], strict=True)) <= ATOL
    # each rank's own shards, in AWS's tp{rank}_ep{rank}_fsdp{rank} directories
    assert sorted(p.name for p in (tmp_path / "b" / "gpt-4steps").iterdir()) == [
        "tp0_ep0_fsdp0", "tp0_ep0_fsdp1", "tp1_ep0_fsdp0", "tp1_ep0_fsdp1"]
    resumed = aws_style(tmp_path, "resumed", 4, layout, "--checkpoint_dir", str(tmp_path / "b"), "--checkpoint_type", "async_local")
    assert resumed["start"] == 4
    assert_close(resumed, reference)


def test_aws_style_script_on_2_processes_resumes_its_sharded_checkpoint(tmp_path, reference):
    stopped = aws_style(tmp_path, "stopped", 2, {"hybrid_shard_degree": 2}, "--checkpoint_dir", str(tmp_path / "d"),
                        "--stop_at_step", "4")
    assert len(stopped["losses"]) == 4
    assert max(abs(a - b) for a, b in zip(stopped["losses"], reference[1][:4], strict=True)) <= ATOL
    assert (tmp_path / "d" / "gpt-4steps" / ".metadata").is_file()  # sharded, through DCP
    resumed = aws_style(tmp_path, "resumed", 2, {"hybrid_shard_degree": 2}, "--checkpoint_dir", str(tmp_path / "d"))
    assert resumed["start"] == 4
    assert_close(resumed, reference)


# ----- the bundled train.py ----------------------------------------------------------------------------------
SMALL = {"n_layers": 2, "d_model": 32, "n_heads": 4, "seq_len": 8, "global_batch_size": 16, "steps": 6, "log_every": 1,
         "checkpoint_every": 3, "lr": 0.05, "optimizer": {"name": "sgd", "momentum": 0.9}}
# SGD: Adam turns the rounding noise of gradients that are zero in exact arithmetic (attention's key bias) into
# whole steps, which differ between any two implementations


def bundled(degrees: dict, **hyperparameters) -> dict:
    data = read_spec_data(example_path("smp_v2_gpt"))
    data["distribution"] = {**data["distribution"], **degrees}
    data["hyperparameters"] = {**data["hyperparameters"], **SMALL, **hyperparameters}
    return data


def run(data, work_dir, **kwargs):
    request = build_request(validate_spec(data), job_name="smp-v2-local")
    return local.launch(request, local.prepare(request, work_dir, 4), **kwargs)


def losses(lines) -> list[float]:
    return [float(m.group(1)) for line in lines for m in [re.search(r"step=\d+ loss=([0-9.]+)", line)] if m]


def model(work_dir: Path) -> dict:
    return torch.load(work_dir / "model" / "model.pt", weights_only=False)["model"]


@pytest.fixture(scope="module")
def stand_in_run(tmp_path_factory):
    """`smjobs run smp_v2_gpt --processes 4` as a user types it, fitted to 4 processes and a small GPT."""
    work = tmp_path_factory.mktemp("smp-v2") / "stand-in"
    sets = [f"--set={k}={json.dumps(v) if isinstance(v, dict) else v}" for k, v in SMALL.items()]
    done = subprocess.run([str(BIN / "smjobs"), "run", "smp_v2_gpt", "--processes", "4", "--work-dir", str(work), "--quiet",
                           "--set", "distribution.hybrid_shard_degree=2", *sets],
                          capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "smp_v2 (torch.sagemaker, smdistributed-stub) on 4 process(es)" in done.stdout
    return work, losses(done.stdout.splitlines())


def test_bundled_smp_v2_under_the_stand_in_matches_plain_fsdp2(stand_in_run, tmp_path):
    work, stand_in_losses = stand_in_run
    native = run(bundled({"hybrid_shard_degree": 2}, smp_v2_backend="native"), tmp_path / "native")
    assert native.exit_code == 0 and "(native FSDP2)" in "\n".join(native.lines)
    assert len(stand_in_losses) == SMALL["steps"]
    assert max(abs(a - b) for a, b in zip(stand_in_losses, losses(native.lines), strict=True)) <= ATOL
    ours, plain = model(work), model(tmp_path / "native")
    assert ours.keys() == plain.keys()
    assert all((ours[k] - plain[k]).abs().max().item() <= ATOL for k in plain)


SHARD_4 = {"hybrid_shard_degree": 4, "tensor_parallel_degree": 1, "sm_activation_offloading": False}


def test_bundled_smp_v2_shard_4_under_the_stand_in_matches_plain_fsdp2(tmp_path):
    work = tmp_path / "ours"
    result = run(bundled(SHARD_4), work)
    assert result.exit_code == 0, "\n".join(result.lines[-30:])
    ours = losses(result.lines)
    plain = run(bundled(SHARD_4, smp_v2_backend="native"), tmp_path / "plain")
    assert plain.exit_code == 0
    assert max(abs(a - b) for a, b in zip(ours, losses(plain.lines), strict=True)) <= ATOL
    a, b = model(work), model(tmp_path / "plain")
    assert all((a[k] - b[k]).abs().max().item() <= ATOL for k in b)


def test_bundled_smp_v2_stopped_under_the_stand_in_resumes_bitwise(stand_in_run, tmp_path):
    """Hybrid shard 2 x tp 2: each rank keeps its own optimizer state (FSDP1 cannot convert TP slices' on load)."""
    work, _ = stand_in_run
    data = bundled({"hybrid_shard_degree": 2})
    started = {}

    def stop_after_step_3(line):
        if "step=3 " in line and "sent" not in started:
            started["sent"] = True
            local.interrupt(started["proc"])  # SIGTERM, as a spot interruption

    stopped = run(data, tmp_path / "work", on_line=stop_after_step_3, on_start=lambda proc: started.update(proc=proc))
    assert stopped.stopped and stopped.exit_code == 0, "\n".join(stopped.lines[-30:])
    resumed = run(data, tmp_path / "work")
    log = "\n".join(resumed.lines)
    assert resumed.exit_code == 0 and "from step " in log and "from step 0" not in log, log[-3000:]
    whole, again = model(work), model(tmp_path / "work")
    assert all(torch.equal(whole[k], again[k]) for k in whole)
