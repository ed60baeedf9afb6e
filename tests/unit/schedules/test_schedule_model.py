"""The pipeline timeline model: it reproduces the closed-form bubbles and never breaks a dependency."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from smjobs.cli import app
from smjobs.schedules.model import simulate, stage_of, theoretical_bubble
from smjobs.schedules.render import chunk_of, label, plot, render_text, text_geometry
from smjobs.spec.strategies import PIPELINE_SCHEDULES


@pytest.mark.parametrize("schedule,v", [("GPipe", 1), ("1F1B", 1), ("Interleaved1F1B", 2), ("LoopedBFS", 2)])
@pytest.mark.parametrize("p,m", [(2, 4), (4, 8), (4, 16), (8, 8)])
def test_bubble_matches_the_closed_form(schedule, v, p, m):
    assert simulate(schedule, p, m, v).bubble_fraction == pytest.approx(theoretical_bubble(schedule, p, m, v), abs=1e-9)


@pytest.mark.parametrize("schedule", PIPELINE_SCHEDULES)
def test_every_operation_runs_once_after_its_inputs(schedule):
    p, m = 4, 8
    v = 1 if schedule in ("GPipe", "1F1B") else 2
    timeline = simulate(schedule, p, m, v)
    n_stages = p * timeline.virtual_stages
    end = {}
    for slot in timeline.slots:
        assert slot.stage == stage_of(schedule, slot.rank, 0, p) or slot.stage == stage_of(schedule, slot.rank, 1, p)
        key = (slot.kind, slot.microbatch, slot.stage)
        assert key not in end
        end[key] = slot.end
    forward = {k: t for k, t in end.items() if k[0] == "F"}
    assert len(forward) == m * n_stages
    for (kind, mb, stage), _ in end.items():
        start = next(s.start for s in timeline.slots if (s.kind, s.microbatch, s.stage) == (kind, mb, stage))
        if kind == "F" and stage > 0:
            assert start >= end[("F", mb, stage - 1)]
        if kind in ("B", "I"):
            assert start >= end[("F", mb, stage)]
            if stage < n_stages - 1:
                assert start >= end.get(("B", mb, stage + 1), end.get(("I", mb, stage + 1)))
    per_rank = {}
    for slot in timeline.slots:  # a rank does one thing at a time
        per_rank.setdefault(slot.rank, []).append((slot.start, slot.end))
    for spans in per_rank.values():
        spans.sort()
        assert all(a_end <= b_start + 1e-9 for (_, a_end), (b_start, _) in zip(spans, spans[1:], strict=False))


def test_more_microbatches_shrink_the_bubble_and_zero_bubble_beats_1f1b():
    assert simulate("1F1B", 4, 16).bubble_fraction < simulate("1F1B", 4, 4).bubble_fraction
    assert simulate("ZBVZeroBubble", 4, 8, 2).bubble_fraction < simulate("1F1B", 4, 8).bubble_fraction
    assert simulate("Interleaved1F1B", 4, 8, 2).makespan < simulate("1F1B", 4, 8).makespan


def test_text_rendering_has_a_row_per_rank():
    lines = render_text(simulate("GPipe", 3, 4))
    assert len(lines) == 3 and all(line.startswith(f"rank {i} |") for i, line in enumerate(lines))
    assert "F0" in lines[0] and "B3" in lines[2]


def _virtual(schedule):
    return 1 if schedule in ("GPipe", "1F1B") else 2


@pytest.mark.parametrize("schedule", PIPELINE_SCHEDULES)
@pytest.mark.parametrize("m,max_width", [(8, 10_000), (8, 60), (32, 160)])
def test_every_slot_is_drawn_exactly_where_and_as_long_as_it_runs(schedule, m, max_width):
    """Read the rows back: each slot's cells start with its label (or letter), idle cells are dots, nothing else."""
    timeline = simulate(schedule, 4, m, _virtual(schedule))
    unit, cell = text_geometry(timeline, max_width)
    rows = [line.split("|")[1] for line in render_text(timeline, max_width)]
    for rank, row in enumerate(rows):
        covered = [False] * len(row)
        for slot in (s for s in timeline.slots if s.rank == rank):
            a, b = round(slot.start / unit) * cell, round(slot.end / unit) * cell
            assert abs(slot.start / unit - round(slot.start / unit)) < 1e-9  # boundaries fall on cells
            text = row[a:b]
            if cell == 1:
                letter = text[0]
                assert letter.upper() == slot.kind and set(text) == {letter}
                assert letter.islower() == (timeline.virtual_stages == 2 and chunk_of(timeline, slot) == 1)
            else:
                assert text.startswith(label(timeline, slot)) and len(text) == b - a
            assert not any(covered[a:b])
            covered[a:b] = [True] * (b - a)
        assert all(ch == "." for ch, used in zip(row, covered, strict=True) if not used)
    if timeline.virtual_stages > 1 and cell > 1:  # the stages of a rank are told apart
        assert {label(timeline, s)[-2:] for s in timeline.slots} >= {"/0", "/1"}


@pytest.mark.parametrize("schedule", ["Interleaved1F1B", "DualPipeV"])
def test_pictures_stay_bounded_and_shade_each_stage(schedule, tmp_path):
    from matplotlib.image import imread

    small = plot(simulate(schedule, 4, 8, 2), tmp_path / "nested" / "small.png")  # folders are made
    wide = plot(simulate(schedule, 4, 64, 2), tmp_path / "wide.png")
    assert imread(wide).shape[1] <= 1600 and imread(small).shape[1] <= 1600
    pixels = imread(small)[..., :3].reshape(-1, 3)
    import numpy as np

    from smjobs.schedules.render import COLORS, _shade

    for chunk in (0, 1):  # both chunks' forward shades are in the picture, each over many pixels
        close = np.abs(pixels - np.array(_shade(COLORS["F"], chunk, 2))).max(axis=1) < 0.01
        assert close.sum() > 500


def test_schedule_command_prints_timeline_bubble_and_png(tmp_path):
    png = tmp_path / "s.png"
    result = CliRunner().invoke(app, ["schedule", "--stages", "4", "--microbatches", "8", "--schedule", "1F1B", "--png", str(png)])
    assert result.exit_code == 0, result.output
    for schedule in PIPELINE_SCHEDULES:  # every schedule it accepts runs with its default stages per rank
        shown = CliRunner().invoke(app, ["schedule", "--schedule", schedule, "--png", str(tmp_path / f"{schedule}.png")])
        assert shown.exit_code == 0 and "= idle" in shown.output, shown.output
    assert "bubble: 27.3% of rank-time (model); (p-1)/(m+p-1): 27.3%" in result.output
    assert png.stat().st_size > 10_000
    bad = CliRunner().invoke(app, ["schedule", "--stages", "4", "--microbatches", "2", "--schedule", "1F1B", "--png", str(png)])
    assert bad.exit_code == 2 and "2 < pp(4)" in bad.output
    unknown = CliRunner().invoke(app, ["schedule", "--schedule", "Zigzag"])
    assert unknown.exit_code == 2 and "choose one of" in unknown.output


def test_the_installed_torch_offers_every_schedule():
    from torch.distributed import pipelining

    for name in PIPELINE_SCHEDULES:
        assert hasattr(pipelining, "Schedule" + name), name
