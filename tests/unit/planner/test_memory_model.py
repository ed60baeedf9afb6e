"""The analytic memory model against the published formulas, and its monotonic properties."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smjobs.planner.memory import GIB, Layout, TransformerShape, bytes_per_parameter, estimate

GPT_7B = TransformerShape(layers=32, hidden=4096, heads=32, seq_len=4096, vocab=32000, micro_batch=1)


def test_mixed_precision_adam_is_16_bytes_per_parameter():
    assert sum(bytes_per_parameter("mixed", "adam")) == 16
    assert sum(bytes_per_parameter("fp32", "adam")) == 16
    assert sum(bytes_per_parameter("fp32", "sgd")) == 8
    assert sum(bytes_per_parameter("mixed", "sgd_momentum")) == 12


def test_model_states_follow_zero():
    params = GPT_7B.parameter_count
    assert estimate(GPT_7B, Layout()).model_states == pytest.approx(16 * params)
    assert estimate(GPT_7B, Layout(dp_degree=8, sharding="full_shard")).model_states == pytest.approx(16 * params / 8)
    assert estimate(GPT_7B, Layout(dp_degree=8, sharding="shard_grad_op")).model_states == pytest.approx((2 + 14 / 8) * params)
    hybrid = estimate(GPT_7B, Layout(dp_degree=16, sharding="hybrid_shard", shard_degree=8))
    assert hybrid.model_states == pytest.approx(16 * params / 8)


def test_activations_follow_korthikanti():
    s, b, h, a, L, V = 4096, 1, 4096, 32, 32, 32000
    logits = 14 * s * b * V  # bf16 logits, their fp32 upcast, fp32 log-softmax and fp32 gradient
    plain = estimate(GPT_7B, Layout()).activations
    assert plain == pytest.approx(L * s * b * h * (34 + 5 * a * s / h) + logits)
    tp = estimate(GPT_7B, Layout(tp_degree=8)).activations
    assert tp == pytest.approx(L * s * b * h * (10 + 24 / 8 + 5 * a * s / (h * 8)) + logits / 8)
    sp = estimate(GPT_7B, Layout(tp_degree=8, sequence_parallel=True)).activations
    assert sp == pytest.approx(L * s * b * h * (34 + 5 * a * s / h) / 8 + logits / 8)
    assert estimate(GPT_7B, Layout(recompute="selective")).activations == pytest.approx(L * 34 * s * b * h + logits)
    # full recomputation: the paper's stored inputs, plus the whole activations of the one layer backward recomputes
    working = s * b * h * (34 + 5 * a * s / h)
    assert estimate(GPT_7B, Layout(recompute="full")).activations == pytest.approx(L * 2 * s * b * h + working + logits)
    # with tensor parallelism the paper's other rows: selective keeps 10 + 24/t, full the whole input unless SP
    assert estimate(GPT_7B, Layout(tp_degree=8, recompute="selective")).activations == pytest.approx(
        L * s * b * h * (10 + 24 / 8) + logits / 8)
    assert estimate(GPT_7B, Layout(tp_degree=8, recompute="selective", sequence_parallel=True)).activations == pytest.approx(
        L * s * b * h * 34 / 8 + logits / 8)
    working_tp = s * b * h * (10 + 24 / 8 + 5 * a * s / (h * 8))
    assert estimate(GPT_7B, Layout(tp_degree=8, recompute="full")).activations == pytest.approx(
        L * 2 * s * b * h + working_tp + logits / 8)
    assert estimate(GPT_7B, Layout(tp_degree=8, recompute="full", sequence_parallel=True)).activations == pytest.approx(
        L * 2 * s * b * h / 8 + working / 8 + logits / 8)


def test_fused_attention_without_sp_keeps_the_unsplit_part():
    """Fused attention drops the score terms only: the 10*sbh that tensor parallelism leaves whole stays whole."""
    s, b, h, L = 4096, 1, 4096, 32
    fused = estimate(GPT_7B, Layout(tp_degree=8, flash_attention=True)).activations
    assert fused == pytest.approx(L * s * b * h * (10 + 24 / 8) + 14 * s * b * 32000 / 8)


def test_autocast_softmax_is_kept_in_fp32_without_fused_attention():
    s, b, a, L = 4096, 1, 32, 32
    paper = estimate(GPT_7B, Layout()).activations
    autocast = estimate(GPT_7B, Layout(softmax_fp32=True)).activations
    # 4-byte softmax output + 2-byte copy + 1-byte mask instead of 2 + 2 + 1: 2 more bytes per score
    assert autocast - paper == pytest.approx(L * 2 * a * s * s * b)


def test_pipeline_stages_preallocate_a_receive_buffer_per_microbatch():
    """torch.distributed.pipelining: a middle stage holds m activation and m gradient receive buffers."""
    s, b, h = 4096, 1, 4096
    boundary = 2 * s * b * h
    few = estimate(GPT_7B, Layout(pp_degree=4, microbatches=4, recompute="full")).activations
    many = estimate(GPT_7B, Layout(pp_degree=4, microbatches=512, recompute="full")).activations
    # the second stage: 8 layers' inputs and its output for the 3 micro-batches in flight, 512 + 512 receive
    # buffers, and the whole activations of the layer being recomputed
    working = s * b * h * (34 + 5 * 32 * s / h)
    assert many == pytest.approx(8 * 3 * boundary + 3 * boundary + 2 * 512 * boundary + working)
    assert many > 5 * few  # the receive buffers grow with the micro-batches
    naive = estimate(GPT_7B, Layout(pp_degree=4, schedule="naive", microbatches=512, recompute="full")).activations
    assert naive < few


def test_pure_bf16_and_tf32_model_states():
    assert sum(bytes_per_parameter("bf16", "adam")) == 8
    assert sum(bytes_per_parameter("tf32", "adam")) == 16
    assert sum(bytes_per_parameter("bf16", "sgd_momentum")) == 6


def test_pipeline_schedules_hold_different_numbers_of_microbatches():
    gpipe = estimate(GPT_7B, Layout(pp_degree=4, schedule="GPipe", microbatches=16)).activations
    one_f_one_b = estimate(GPT_7B, Layout(pp_degree=4, schedule="1F1B", microbatches=16)).activations
    assert gpipe > one_f_one_b
    assert estimate(GPT_7B, Layout(pp_degree=4)).weights == pytest.approx(estimate(GPT_7B, Layout()).weights / 4)


def test_7b_needs_sharding_on_80gb_gpus():
    alone = estimate(GPT_7B, Layout(recompute="selective"))
    assert alone.total_gib > 80  # 16 bytes x 6.7e9 parameters = 100 GiB of model states alone
    sharded = estimate(GPT_7B, Layout(dp_degree=8, sharding="full_shard", recompute="selective"))
    assert sharded.total_gib < 80
    assert "GiB per GPU" in sharded.describe()


shapes = st.builds(
    TransformerShape,
    layers=st.integers(1, 96), hidden=st.sampled_from([256, 1024, 4096, 8192]), heads=st.sampled_from([8, 16, 32]),
    seq_len=st.sampled_from([512, 2048, 8192]), vocab=st.sampled_from([32000, 128000]), micro_batch=st.integers(1, 8),
)
layouts = st.builds(
    Layout,
    dp_degree=st.sampled_from([1, 2, 8]), tp_degree=st.sampled_from([1, 2, 8]), pp_degree=st.sampled_from([1, 2, 4]),
    sharding=st.sampled_from(["none", "full_shard", "shard_grad_op"]), recompute=st.sampled_from(["none", "selective", "full"]),
    microbatches=st.integers(1, 16),
)


@given(shapes, layouts, st.integers(1, 8))
def test_a_bigger_model_never_needs_less_memory(shape, layout, extra_layers):
    bigger = TransformerShape(shape.layers + extra_layers, shape.hidden, shape.heads, shape.seq_len, shape.vocab, shape.micro_batch)
    assert estimate(bigger, layout).total >= estimate(shape, layout).total


@given(shapes, layouts)
def test_more_sharding_never_needs_more_memory(shape, layout):
    unsharded = Layout(**{**layout.__dict__, "sharding": "none"})
    sharded = Layout(**{**layout.__dict__, "sharding": "full_shard"})
    assert estimate(shape, sharded).total <= estimate(shape, unsharded).total
    assert estimate(shape, layout).total > layout.overhead_gib * GIB


@pytest.mark.parametrize("mode", ["none", "full"])  # the recomputation the bundled gpt does (--recompute)
def test_the_traced_and_analytic_estimates_of_the_bundled_gpt_agree_under_every_recompute_mode(mode):
    """FakeTensorMode traces of the bundled train.py's GPT (torch's MemTracker over two AdamW steps) against the
    analytic model with the same settings: fp32 on CPU, SDPA's fused attention, no dropout, untied head, one
    micro-batch (the gradients come as the activations go), nothing reserved by an allocator."""
    import sys

    import torch

    from smjobs.planner.traced import trace_memory
    from smjobs.spec.job import ENTRY_POINTS_DIR

    sys.path.insert(0, str(ENTRY_POINTS_DIR))
    from common.models import GPT, apply_recompute

    vocab, width, layers, heads, seq, batch = 512, 256, 4, 4, 256, 8
    traced = trace_memory(lambda: apply_recompute(GPT(vocab, width, layers, heads, seq), mode),
                          lambda: (torch.randint(0, vocab, (batch, seq)), torch.randint(0, vocab, (batch, seq))), GPT.loss)
    shape = TransformerShape(layers=layers, hidden=width, heads=heads, seq_len=seq, vocab=vocab, micro_batch=batch,
                             tied_embeddings=False)
    layout = Layout(precision="fp32", activation_bytes=4, dropout=False, overhead_gib=0.0, allocator_reserve=0.0,
                    recompute=mode, flash_attention=True, single_microbatch=True)
    ratio = estimate(shape, layout).total / traced.total_bytes
    assert 0.9 <= ratio <= 1.1, (mode, ratio, traced.by_category)
