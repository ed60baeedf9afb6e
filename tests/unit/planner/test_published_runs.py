"""The planner's memory and step-time models against published training runs (tests/data/published_runs.yaml).

Targets (issue: planner fidelity): analytic memory within 10% median and 20% worst; step time within 25% median
at the runs' stated MFU. At the planner's default 40% the step time is off by the utilisation the runs reached
(51-61% on A100); the README's accuracy section reports both.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from smjobs.planner import calibration

RUNS = Path(__file__).parents[2] / "data" / "published_runs.yaml"


@pytest.fixture(scope="module")
def summary():
    return calibration.summarise(RUNS)


def test_the_table_names_its_sources_and_says_why_runs_are_left_out():
    data = calibration.load(RUNS)
    for run in data["runs"]:
        assert run["source"] in data["sources"], run["id"]
        if not run["expressible"]:
            assert len(run["reason"]) > 20, run["id"]
        elif run["source"] != "korthikanti":
            assert run["published"]["tokens_per_s_per_gpu"] > 0 and run["model"] in data["models"]
    ids = {run["id"] for run in data["runs"] if run["expressible"]}
    assert {"titan-h100-8b-fsdp-8gpu", "titan-h100-8b-fsdp-128gpu", "titan-a100-l3-70b-full"} <= ids
    assert sum(run["source"] == "korthikanti" for run in data["runs"]) == 4


def test_memory_is_within_10_percent_median_and_20_worst(summary):
    figures = summary.figures()
    assert figures["memory_runs"] >= 2
    assert figures["memory_median"] <= 0.10 and figures["memory_worst"] <= 0.20, summary.checks


def test_the_generalised_activation_count_gives_korthikantis_table(summary):
    assert len(summary.korthikanti) == 4
    for model, ratios in summary.korthikanti.items():
        assert len(ratios) == 5
        for technique, ratio in ratios.items():
            assert ratio == pytest.approx(1.0, rel=1e-12), (model, technique)


def test_step_time_is_within_25_percent_at_the_stated_mfu(summary):
    figures = summary.figures()
    assert figures["stated_mfu_runs"] >= 6
    assert figures["step_median_stated_mfu"] <= 0.25, summary.checks


def test_at_the_default_assumption_plans_are_conservative_not_optimistic(summary):
    """40% MFU is below what these runs reached: predicted throughput is lower, by no more than the README says."""
    for check in summary.checks:
        if check.tps_ratio_stated_mfu is not None:  # the A100 runs, which published 50-61% MFU
            assert 0.55 <= check.tps_ratio <= 0.75, check
        else:  # the H100 runs (33-39% MFU at the SXM peak, per the source)
            assert 0.9 <= check.tps_ratio <= 1.15, check
