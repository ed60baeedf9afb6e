"""Memory estimates against memory measured in real multi-process CPU training.

The training scripts measure their own peak (``--track_memory``, torch's MemTracker over the real step, with
real gloo collectives and real pipeline schedules). The traced estimate (``smjobs.planner.traced``) must come
within 10% of it for five models of the zoo under DDP, FSDP and pipeline settings; the analytic estimate
(``smjobs.planner.memory``) within 20% for the GPT language model. Why the analytic one differs: docs/planner.md, "Measured against real ... training steps".
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from smjobs.local.runner import free_port
from smjobs.planner.memory import Layout, TransformerShape, estimate
from smjobs.planner.traced import TraceSetup, trace_memory
from smjobs.spec.job import ENTRY_POINTS_DIR

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
TORCHRUN = Path(sys.executable).parent / "torchrun"
PROCESSES = 2
GPT = {"model": "gpt", "vocab_size": 256, "d_model": 128, "n_layers": 4, "n_heads": 4, "seq_len": 64}
MLP = {"model": "mlp", "in_features": 256, "hidden_sizes": [512, 512, 512]}
ENCODER = {"model": "encoder", "vocab_size": 256, "d_model": 128, "n_layers": 2, "n_heads": 4, "seq_len": 64}
# name -> (script, model settings, layout settings, global batch)
CONFIGS = {
    "mlp-ddp": ("train", MLP, {"parallel": "ddp"}, 256),
    "mlp-fsdp": ("train", MLP, {"parallel": "fsdp"}, 256),
    "mlp-pipeline-1F1B": ("train_pipeline", MLP, {"pp_degree": 2, "pp_schedule": "1F1B", "pp_microbatches": 4}, 256),
    "cnn-ddp": ("train", {"model": "cnn"}, {"parallel": "ddp"}, 128),
    "resnet-ddp": ("train", {"model": "resnet"}, {"parallel": "ddp"}, 64),
    "resnet-fsdp": ("train", {"model": "resnet"}, {"parallel": "fsdp"}, 64),
    "encoder-ddp": ("train", ENCODER, {"parallel": "ddp"}, 32),
    "encoder-fsdp": ("train", ENCODER, {"parallel": "fsdp"}, 32),
    "gpt-ddp": ("train", GPT, {"parallel": "ddp"}, 16),
    "gpt-fsdp": ("train", GPT, {"parallel": "fsdp"}, 16),
    "gpt-pipeline-1F1B": ("train_pipeline", GPT, {"pp_degree": 2, "pp_schedule": "1F1B", "pp_microbatches": 4}, 16),
    "gpt-pipeline-GPipe": ("train_pipeline", GPT, {"pp_degree": 2, "pp_schedule": "GPipe", "pp_microbatches": 4}, 16),
}


def argv(model: dict, layout: dict, batch: int) -> list[str]:
    settings = {**model, **layout, "global_batch_size": batch, "steps": 2}
    return [x for k, v in settings.items() for x in (f"--{k}", json.dumps(v) if isinstance(v, list) else str(v))]


@pytest.fixture(scope="module")
def measured(tmp_path_factory) -> dict[str, int]:
    work = tmp_path_factory.mktemp("memory")
    out = work / "peaks.json"
    configs = {name: [script, argv(model, layout, batch)] for name, (script, model, layout, batch) in CONFIGS.items()}
    env = {**os.environ, "OMP_NUM_THREADS": "1", "SAGEMAKER_BASE_DIR": str(work)}
    done = subprocess.run([str(TORCHRUN), "--nproc_per_node", str(PROCESSES), "--master_addr", "127.0.0.1",
                           "--master_port", str(free_port()), str(ROOT / "tests" / "fixtures" / "memory_runs.py"),
                           str(out), json.dumps(configs)], capture_output=True, text=True, env=env, timeout=600, cwd=work)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads(out.read_text())


def traced(name: str) -> int:
    sys.path.insert(0, str(ENTRY_POINTS_DIR))
    from common.models import build_model, synthetic_batch
    from common.stages import build_stages, loss_fn

    script, model, layout, batch = CONFIGS[name]
    args = parse(script, argv(model, layout, batch))
    if script == "train_pipeline":
        micro = batch // layout["pp_microbatches"]
        setup = TraceSetup("pipeline", PROCESSES, layout["pp_schedule"], layout["pp_microbatches"])
        return trace_memory(lambda: build_stages(args, PROCESSES)[0], lambda: synthetic_batch(args, 0, micro),
                            loss_fn(args), setup).total_bytes
    local = batch // PROCESSES
    loss = type(build_model(args)).loss
    setup = TraceSetup(layout["parallel"], PROCESSES)
    return trace_memory(lambda: build_model(args), lambda: synthetic_batch(args, 0, local), loss, setup).total_bytes


def parse(script: str, args: list[str]):
    sys.path.insert(0, str(ENTRY_POINTS_DIR))
    module = __import__(script)
    return module.parse_args(args)


@pytest.mark.parametrize("name", list(CONFIGS))
def test_traced_estimate_is_within_10_percent_of_measured(name, measured):
    estimate_bytes = traced(name)
    ratio = estimate_bytes / measured[name]
    print(f"{name}: traced {estimate_bytes / 2**20:.2f} MiB, measured {measured[name] / 2**20:.2f} MiB, ratio {ratio:.3f}")
    assert 0.9 <= ratio <= 1.1, f"{name}: traced {estimate_bytes} vs measured {measured[name]} bytes ({ratio:.3f})"


GPT_SHAPE = TransformerShape(layers=4, hidden=128, heads=4, seq_len=64, vocab=256)
CPU_FP32 = {"precision": "fp32", "activation_bytes": 4, "dropout": False, "overhead_gib": 0.0, "allocator_reserve": 0.0}


@pytest.mark.parametrize(("name", "micro_batch", "layout"), [
    ("gpt-ddp", 8, Layout(dp_degree=2, **CPU_FP32)),
    ("gpt-fsdp", 8, Layout(dp_degree=2, sharding="full_shard", **CPU_FP32)),
    ("gpt-pipeline-1F1B", 4, Layout(pp_degree=2, schedule="1F1B", microbatches=4, **CPU_FP32)),
    ("gpt-pipeline-GPipe", 4, Layout(pp_degree=2, schedule="GPipe", microbatches=4, **CPU_FP32)),
])
def test_analytic_estimate_is_within_20_percent_for_the_language_model(name, micro_batch, layout, measured):
    shape = TransformerShape(**{**GPT_SHAPE.__dict__, "micro_batch": micro_batch})
    analytic = estimate(shape, layout).total
    ratio = analytic / measured[name]
    print(f"{name}: analytic {analytic / 2**20:.2f} MiB, measured {measured[name] / 2**20:.2f} MiB, ratio {ratio:.3f}")
    assert 0.8 <= ratio <= 1.2, f"{name}: analytic {analytic} vs measured {measured[name]} bytes ({ratio:.3f})"


def test_measurement_sees_what_sharding_saves(measured):
    """The measured side is not a constant: FSDP holds less than DDP and 1F1B less than GPipe."""
    assert measured["gpt-fsdp"] < 0.9 * measured["gpt-ddp"]
    assert measured["gpt-pipeline-1F1B"] < 0.9 * measured["gpt-pipeline-GPipe"]
