"""Plans a practitioner signs: each scenario's choice against a worked answer, and the plan through validate.

The worked answers (at the fitted defaults: A100 73.5% and H100 54.5% MFU for wide matmuls, catalog/utilisation.json):
- 7B (Llama-2 shape, 4096 tokens, 1M tokens per step) on 5B tokens within 24 h, at most 4 instances: about 2.3e20
  FLOPs; one p5 (8 x 989 TFLOPS at ~50%) needs ~16 h, two ~8.7 h for the same price per GPU-hour, and the planner
  takes the faster of two equal costs. FSDP shard_grad_op keeps the 13.5 GB of 16-bit weights whole (no re-gather
  in backward), micro-batch 2 as the spec allows: 68 GiB of 79.6.
- 7B on 100B tokens within 28 days: 20x the FLOPs; four p5 finish in ~86 h at the same layout.
- 13B (Llama-2 13B) on 5B tokens within 24 h and 100B within 28 days: 4 x p5, shard_grad_op, per-op selective
  recomputation to fit micro-batch 2 (full states of 26 GB of weights would not fit with every activation kept).
- 70B (Llama-2 70B with GQA) on 1B tokens within 24 h on at most 8 instances: FSDP needs full sharding over 64 GPUs
  (1.1 TB of model states, 17 GB per GPU) and per-op selective recomputation: 8 x p5, ~4.7 h. SMP v2's search
  contains the same plan (tensor parallel 1) and picks it: tensor parallelism only adds traffic here.
- The same 70B under pipeline parallelism: 80 layers over 10 stages (8 each, even), tensor parallel 4 inside each
  NVLink node with sequence parallelism, 256 micro-batches of 1 in one 1F1B schedule step (bubble 3.4%): 5 x p5.
- Inference: the 7B scoring 1M records of 4096 tokens within 24 h: forward FLOPs only, 3 x p4d in ~3.3 h is the
  cheapest (A100s cost less per FLOP at this utilisation than H100s on demand).
"""

from __future__ import annotations

import pytest

from smjobs.checks.validate import validate_and_plan
from smjobs.planner.cost import Workload
from smjobs.planner.inference_plan import InferenceWorkload, plan_inference
from smjobs.planner.memory import TransformerShape
from smjobs.planner.plan import Constraints, StrategyRequest, plan

LLAMA = {"gated_mlp": True, "dropout": False, "tied_embeddings": False, "vocab": 32000, "seq_len": 4096}
L7 = TransformerShape(layers=32, hidden=4096, heads=32, ffn_hidden=11008, micro_batch=2, **LLAMA)
L13 = TransformerShape(layers=40, hidden=5120, heads=40, ffn_hidden=13824, micro_batch=2, **LLAMA)
L70 = TransformerShape(layers=80, hidden=8192, heads=64, kv_heads=8, ffn_hidden=28672, micro_batch=1, **LLAMA)
DAY, DAYS_28 = 24, 28 * 24

SCENARIOS = {
    # name: (shape, global batch, steps, strategy, hours, max instances) -> (type, count, layout, micro-batch)
    "7b-24h": ((L7, 256, 5_000, "fsdp", DAY, 4), ("ml.p5.48xlarge", 2, "dp 16, shard_grad_op", 2)),
    "7b-28d": ((L7, 256, 100_000, "fsdp", DAYS_28, 4), ("ml.p5.48xlarge", 4, "dp 32, shard_grad_op", 2)),
    "13b-24h": ((L13, 256, 5_000, "fsdp", DAY, 4),
                ("ml.p5.48xlarge", 4, "dp 32, shard_grad_op, selective_op recompute", 2)),
    "13b-28d": ((L13, 256, 100_000, "fsdp", DAYS_28, 4),
                ("ml.p5.48xlarge", 4, "dp 32, shard_grad_op, selective_op recompute", 2)),
    "70b-fsdp-24h": ((L70, 256, 1_000, "fsdp", DAY, 8),
                     ("ml.p5.48xlarge", 8, "dp 64, full_shard, selective_op recompute", 1)),
    "70b-smp-v2-24h": ((L70, 256, 1_000, "smp_v2", DAY, 8),
                       ("ml.p5.48xlarge", 8, "dp 64, full_shard, selective_op recompute", 1)),
    "70b-pipeline-24h": ((L70, 256, 1_000, "pipeline", DAY, 8),
                         ("ml.p5.48xlarge", 5, "dp 1, tp 4 with sequence parallel, pp 10 (1F1B, 256 micro-batches)", 1)),
}


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_each_scenario_gets_the_worked_answer(name):
    (shape, batch, steps, kind, hours, most), expected = SCENARIOS[name]
    found = plan(Workload(shape, batch, steps), StrategyRequest(kind), Constraints(max_hours=hours, max_instances=most), keep=3)
    c = found.choice
    assert c is not None, found.why_nothing()
    assert (c.instance_type, c.instance_count, c.describe_layout(), c.micro_batch) == expected
    assert c.hours <= hours and c.memory.total <= 0.9 * 79.6 * 2**30
    assert batch % c.layout.dp_degree == 0 and (batch // c.layout.dp_degree) % c.micro_batch == 0
    if c.layout.pp_degree > 1:
        assert shape.layers % c.layout.pp_degree == 0  # even stages


def test_the_inference_scenario_gets_the_worked_answer():
    found = plan_inference(InferenceWorkload(L7, records=1_000_000, batch_size=8), Constraints(max_hours=DAY, max_instances=4))
    c = found.choice
    assert (c.instance_type, c.instance_count) == ("ml.p4d.24xlarge", 3) and c.hours < 4


GPT_7B = {"model": "gpt", "n_layers": 32, "d_model": 4096, "n_heads": 32, "seq_len": 4096, "vocab_size": 32000,
          "global_batch_size": 256, "steps": 5000}


def test_the_bundled_train_py_plan_passes_validate_and_the_script_takes_it():
    from smjobs.entry_points.train import parse_args

    spec, found = validate_and_plan({"name": "gpt-7b", "entry_point": "train.py", "compute": {"instance_type": "auto"},
                                     "distribution": {"type": "fsdp"}, "hyperparameters": GPT_7B,
                                     "plan": {"micro_batch": 2, "max_instances": 4, "max_hours": 24}})
    c = found.choice
    assert c.instance_type == "ml.p5.48xlarge" and c.layout.recompute in ("none", "full")
    hps = spec.hyperparameters
    args = parse_args([f"--{k}={v}" for k, v in {**spec.distribution.script_settings(), **hps}.items()
                       if k in ("global_batch_size", "grad_accum_steps", "recompute", "parallel", "fsdp_sharding")])
    assert args.global_batch_size == 256 and args.grad_accum_steps * c.micro_batch * c.layout.dp_degree == 256


def test_the_bundled_pipeline_plan_passes_validate_and_the_script_takes_it():
    """The bundled train_pipeline.py (no sequence parallelism): the plan validate accepts is one the script's own
    argument check accepts, accumulation over schedule steps included."""
    from smjobs.entry_points.train_pipeline import parse_args

    spec, found = validate_and_plan({"name": "gpt-7b-pipe", "entry_point": "train_pipeline.py",
                                     "compute": {"instance_type": "auto"}, "distribution": {"type": "pipeline"},
                                     "hyperparameters": {**GPT_7B, "global_batch_size": 64},
                                     "plan": {"micro_batch": 1, "max_instances": 2, "max_hours": 24}})
    c = found.choice
    assert c is not None and not c.layout.sequence_parallel and c.layout.pp_degree > 1
    assert 32 % c.layout.pp_degree == 0
    settings = spec.distribution.script_settings()
    argv = [f"--{k}={v}" for k, v in settings.items() if k != "parallel"] + ["--global_batch_size=64"]
    args = parse_args(argv)
    assert args.pp_microbatches * args.pp_accumulation_steps * args.dp_degree == 64 // c.micro_batch


def test_sequence_parallelism_and_accumulation_over_schedule_steps_are_searched_where_the_script_can():
    from dataclasses import replace

    from smjobs.catalog import instances
    from smjobs.planner.layouts import layouts_for, pipeline_accumulations

    p5 = instances().types["ml.p5.48xlarge"]
    work = Workload(L70, 256, 10)
    laid = layouts_for(StrategyRequest("pipeline"), p5, 2, work)
    assert {lay.sequence_parallel for lay, _ in laid if lay.tp_degree > 1} == {True}
    assert {lay.accumulation for lay, _ in laid if lay.pp_degree == 4 and lay.tp_degree == 4} == {1, 16, 64}
    bundled = layouts_for(StrategyRequest("pipeline"), p5, 2, replace(work, sequence_parallel=False, pipeline_accumulation=False))
    assert not any(lay.sequence_parallel for lay, _ in bundled) and {lay.accumulation for lay, _ in bundled} == {1}
    assert pipeline_accumulations(64, 4, "1F1B") == [1, 16, 4] and pipeline_accumulations(6, 4, "1F1B") == [1]
    # accumulating shrinks what GPipe holds at once: fewer micro-batches in flight per schedule step
    gpipe = [(lay, m) for lay, m in layouts_for(StrategyRequest("pipeline", schedule="GPipe"), p5, 2, work)
             if lay.pp_degree == 4 and lay.tp_degree == 4 and lay.recompute == "full"]
    by_steps = {lay.accumulation: L70.memory(lay, m).activations for lay, m in gpipe}
    assert by_steps[64] < by_steps[16] < by_steps[1]


def test_the_bundled_smp_v2_plan_passes_validate_and_the_script_takes_it():
    """A 70B-wide bundled GPT under SMP v2 (train.py's native fallback runs it locally): the planned tensor-parallel
    degree divides the heads and the GPUs per host, dp divides the batch, and the script's arguments parse."""
    from smjobs.entry_points.train import parse_args

    gpt = {**GPT_7B, "n_layers": 80, "d_model": 8192, "n_heads": 64, "global_batch_size": 256, "steps": 1000}
    spec, found = validate_and_plan({"name": "gpt-70b-smp", "entry_point": "train.py", "compute": {"instance_type": "auto"},
                                     "framework_version": "2.5.1", "py_version": "py311",
                                     "distribution": {"type": "smp_v2"}, "hyperparameters": gpt,
                                     "plan": {"micro_batch": 1, "max_instances": 8, "max_hours": 24}})
    c = found.choice
    assert c is not None and c.instance_type == "ml.p5.48xlarge" and c.layout.recompute in ("none", "full")
    assert 64 % c.layout.tp_degree == 0 and 8 % c.layout.tp_degree == 0 and 256 % c.layout.dp_degree == 0
    assert spec.distribution.tensor_parallel_degree == c.layout.tp_degree
    hps = spec.hyperparameters
    args = parse_args(["--global_batch_size=256", f"--recompute={hps['recompute']}",
                       f"--grad_accum_steps={hps.get('grad_accum_steps', 1)}"])
    assert args.grad_accum_steps * c.micro_batch * c.layout.dp_degree == 256
