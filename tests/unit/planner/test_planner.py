"""The planner: its choice equals a brute-force minimum, it explains rejections, it respects constraints and
library rules, and ``instance_type: auto`` is resolved at validate and submit time."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from smjobs import catalog, cli
from smjobs.aws import submit as sagemaker_edge
from smjobs.checks.validate import validate_and_plan, validate_spec
from smjobs.errors import SpecError
from smjobs.planner.cost import Assumptions, Workload
from smjobs.planner.layouts import StrategyRequest, layouts_for
from smjobs.planner.memory import TransformerShape
from smjobs.planner.plan import DEFAULT_ASSUMPTIONS, Constraints, evaluate, plan

MODELS = {
    "125M": TransformerShape(layers=12, hidden=768, heads=12, seq_len=1024, vocab=50304, micro_batch=8),
    "1.3B": TransformerShape(layers=24, hidden=2048, heads=16, seq_len=2048, vocab=50304, micro_batch=4),
    "7B": TransformerShape(layers=32, hidden=4096, heads=32, seq_len=4096, vocab=32000, micro_batch=1),
    "13B": TransformerShape(layers=40, hidden=5120, heads=40, seq_len=4096, vocab=32000, micro_batch=1),
    "70B": TransformerShape(layers=80, hidden=8192, heads=64, seq_len=4096, vocab=32000, micro_batch=1),
}
LIBRARY_TYPES = {
    "smddp": set(catalog.frameworks().smddp_instance_types),
    "smp_v2": set(catalog.frameworks().smp_v2_instance_types),
    "smp_v1": set(catalog.frameworks().smp_v1_instance_types),
}


def brute_force(workload: Workload, strategy: StrategyRequest, constraints: Constraints, assumptions=DEFAULT_ASSUMPTIONS):
    """Every instance type x count x layout, no pruning; the cheapest job that fits."""
    region = constraints.region or catalog.prices().default_region
    every = []
    for instance in catalog.instances().types.values():
        if constraints.families and instance.family not in constraints.families:
            continue
        if strategy.kind in LIBRARY_TYPES and instance.name not in LIBRARY_TYPES[strategy.kind]:
            continue
        price = catalog.prices().price(instance.name, region)
        if price is None:
            continue
        for count in range(1, constraints.max_instances + 1):
            rate = price.usd_per_hour * count * (assumptions.spot_price_fraction if constraints.spot else 1)
            if constraints.max_usd_per_hour is not None and rate > constraints.max_usd_per_hour:
                continue
            for layout, micro in layouts_for(strategy, instance, count, workload):
                cand, _ = evaluate(workload, instance, count, layout, micro, price.usd_per_hour, constraints, assumptions)
                if cand is not None:
                    every.append(cand)
    if not every:
        return None
    # a cost within 2% of the cheapest is a tie, which the fastest wins
    cheapest = min(c.job_usd for c in every)
    return min((c for c in every if c.job_usd <= cheapest * 1.02), key=lambda c: (c.hours, c.job_usd))


SCENARIOS = [
    ("125M", "ddp", Constraints()),
    ("125M", "smddp", Constraints(max_instances=2)),
    ("125M", "fsdp", Constraints(max_usd_per_hour=5)),
    ("1.3B", "ddp", Constraints()),
    ("1.3B", "fsdp", Constraints(families=("p4d", "p5"))),
    ("1.3B", "pipeline", Constraints(max_instances=4)),
    ("1.3B", "naive_mp", Constraints(max_instances=2)),
    ("1.3B", "smp_v2", Constraints()),
    ("1.3B", "ddp", Constraints(spot=True, max_usd_per_hour=3)),
    ("7B", "fsdp", Constraints()),
    ("7B", "fsdp", Constraints(max_usd_per_hour=40)),
    ("7B", "fsdp", Constraints(families=("g5", "g6"), max_instances=16)),
    ("7B", "pipeline", Constraints()),
    ("7B", "smp_v2", Constraints(max_instances=4)),
    ("7B", "smp_v1", Constraints()),
    ("7B", "smddp", Constraints()),
    ("13B", "fsdp", Constraints(max_instances=16)),
    ("13B", "pipeline", Constraints(families=("g6e", "p4de"))),
    ("13B", "smp_v2", Constraints(spot=True)),
    ("70B", "fsdp", Constraints(max_instances=8)),
    ("70B", "pipeline", Constraints(max_instances=8)),
    ("70B", "smp_v2", Constraints(max_instances=16)),
    ("70B", "fsdp", Constraints(families=("g5",), max_instances=2)),  # nothing fits
    ("70B", "smp_v1", Constraints(max_instances=4)),
]


@pytest.mark.parametrize(("model", "kind", "limits"), SCENARIOS, ids=[f"{m}-{k}-{i}" for i, (m, k, _) in enumerate(SCENARIOS)])
def test_choice_equals_brute_force_minimum(model, kind, limits):
    workload = Workload(MODELS[model], global_batch=512, steps=2000)
    strategy = StrategyRequest(kind)
    found = plan(workload, strategy, limits)
    expected = brute_force(workload, strategy, limits)
    if expected is None:
        assert found.choice is None
        assert "no configuration fits" in found.why_nothing() and found.nearest()
        return
    choice = found.choice
    assert (choice.instance_type, choice.instance_count, choice.layout) == (expected.instance_type, expected.instance_count, expected.layout)
    assert choice.job_usd == pytest.approx(expected.job_usd)
    for i, c in enumerate(found.ranked):  # each is within the tie share of the cheapest ranked after it
        assert c.job_usd <= min(later.job_usd for later in found.ranked[i:]) * 1.02


def test_scenarios_cover_enough_distinct_choices_and_pruning_skips_work():
    choices, pruned = set(), 0
    for model, kind, limits in SCENARIOS:
        found = plan(Workload(MODELS[model], 512, 2000), StrategyRequest(kind), limits)
        choices.add(found.choice and (found.choice.instance_type, found.choice.instance_count))
        pruned += any(r.kind == "bound" for r in found.rejections)
    assert len(SCENARIOS) >= 20 and len(choices) >= 8
    assert pruned >= 5  # the brute-force comparison above exercises the branch and bound, not a plain loop


def test_memory_rejection_names_need_and_capacity():
    found = plan(Workload(MODELS["70B"], 512, 100), StrategyRequest("ddp"), Constraints(families=("g5",)))
    assert found.choice is None
    g5 = next(r for r in found.rejections if r.instance_type == "ml.g5.12xlarge")
    assert g5.kind == "memory"
    assert "GiB per GPU" in g5.reason and "ml.g5.12xlarge has 22.5 GiB per GPU as the driver reports it" in g5.reason
    needed = float(g5.reason.split("needs ")[1].split(" GiB")[0])
    assert needed > 500  # 16 bytes per parameter of 69B parameters, unsharded
    assert "Nearest" in found.why_nothing()


def test_library_rules_are_respected_and_explained():
    found = plan(Workload(MODELS["1.3B"], 512, 100), StrategyRequest("smddp"), Constraints())
    assert found.choice.instance_type in LIBRARY_TYPES["smddp"]
    g5 = next(r for r in found.rejections if r.instance_type == "ml.g5.48xlarge")
    assert (g5.kind, g5.reason) == ("library", "SMDDP does not run on ml.g5.48xlarge")
    assert {c.instance_type for c in found.ranked} <= LIBRARY_TYPES["smddp"]


def test_price_cap_is_respected_and_explained():
    found = plan(Workload(MODELS["7B"], 512, 100), StrategyRequest("fsdp"), Constraints(max_usd_per_hour=20))
    assert found.choice is not None and all(c.usd_per_hour <= 20 for c in found.ranked)
    p5 = next(r for r in found.rejections if r.instance_type == "ml.p5.48xlarge")
    assert p5.kind == "price" and "over max_usd_per_hour 20" in p5.reason


def test_unpriced_types_are_explained_not_chosen():
    found = plan(Workload(MODELS["7B"], 512, 100), StrategyRequest("fsdp"), Constraints())
    unpriced = {r.instance_type: r.reason for r in found.rejections if r.kind == "unpriced"}
    assert "smjobs prices refresh --region us-east-1" in unpriced["ml.p5en.48xlarge"]
    assert not set(unpriced) & {c.instance_type for c in found.scatter}


def test_fixed_degrees_are_kept():
    found = plan(Workload(MODELS["13B"], 512, 100), StrategyRequest("pipeline", pp_degree=4, tp_degree=2), Constraints())
    assert found.choice is not None
    assert all((c.layout.pp_degree, c.layout.tp_degree) == (4, 2) for c in found.ranked)


def test_every_candidate_fits_with_the_margin():
    limits = Constraints(memory_margin=0.2)
    found = plan(Workload(MODELS["13B"], 512, 100), StrategyRequest("fsdp"), limits)
    for c in found.scatter:
        assert c.memory.total <= catalog.instances().types[c.instance_type].gpu_memory_gib * 2**30 * 0.8


workloads = st.builds(
    Workload,
    shape=st.sampled_from(list(MODELS.values())),
    global_batch=st.sampled_from([64, 256, 1024]),
    steps=st.integers(10, 5000),
)
kinds = st.sampled_from(["ddp", "fsdp", "pipeline", "smp_v2"])


@settings(max_examples=40, deadline=None)
@given(workloads, kinds, st.floats(5, 400), st.floats(0.1, 1.0))
def test_a_tighter_budget_never_gets_a_more_expensive_plan(workload, kind, budget, tighten):
    loose = plan(workload, StrategyRequest(kind), Constraints(max_usd_per_hour=budget, max_instances=4))
    tight = plan(workload, StrategyRequest(kind), Constraints(max_usd_per_hour=budget * tighten, max_instances=4))
    if tight.choice is None:
        return
    assert loose.choice is not None  # whatever fits the tight budget fits the loose one
    assert tight.choice.usd_per_hour <= loose.choice.usd_per_hour + 1e-9
    # the loose budget's choice may give up to 2% of cost for speed (a tie), never more
    assert tight.choice.job_usd >= loose.choice.job_usd / 1.02 - 1e-9


@settings(max_examples=30, deadline=None)
@given(kinds, st.integers(1, 16), st.sampled_from(["ml.g5.48xlarge", "ml.p4d.24xlarge", "ml.g6e.12xlarge"]),
       st.integers(1, 4))
def test_a_bigger_model_never_needs_less_memory_per_gpu(kind, extra_layers, instance_type, count):
    small = Workload(MODELS["1.3B"], 256, 10)
    shape = MODELS["1.3B"]
    big = Workload(TransformerShape(shape.layers + extra_layers, shape.hidden, shape.heads, shape.seq_len, shape.vocab,
                                    shape.micro_batch), 256, 10)
    instance = catalog.instances().types[instance_type]
    limits = Constraints(memory_margin=-100)  # everything "fits": compare the estimates themselves
    for layout, micro in layouts_for(StrategyRequest(kind), instance, count, small):
        _, mem_small = evaluate(small, instance, count, layout, micro, 1.0, limits, Assumptions())
        _, mem_big = evaluate(big, instance, count, layout, micro, 1.0, limits, Assumptions())
        assert mem_big.total >= mem_small.total


def test_planning_is_fast_enough_to_run_at_validate_time():
    import time

    start = time.perf_counter()
    plan(Workload(MODELS["70B"], 512, 100), StrategyRequest("pipeline"), Constraints(max_instances=8))
    assert time.perf_counter() - start < 2  # benchmarks/plan.py measures the real figure; this guards regressions


# ----- spec integration ------------------------------------------------------------------------------
def auto_spec(spec_data, **plan_settings):
    data = dict(spec_data)
    data["compute"] = {"instance_type": "auto"}
    data["distribution"] = {"type": "fsdp"}
    data["hyperparameters"] = {**data.get("hyperparameters", {}), "global_batch_size": 256, "steps": 1000}
    data["plan"] = {"model": {"layers": 32, "hidden": 4096, "heads": 32, "seq_len": 4096, "vocab": 32000}, **plan_settings}
    return data


def test_auto_is_resolved_at_validate_time(spec_data):
    spec, found = validate_and_plan(auto_spec(spec_data, max_instances=4))
    assert found is not None and found.choice is not None
    assert (spec.compute.instance_type, spec.compute.instance_count) == (found.choice.instance_type, found.choice.instance_count)
    assert spec.distribution.sharding == found.choice.layout.sharding


def test_auto_is_resolved_in_the_request_sagemaker_receives(spec_data, moto_aws):
    spec = validate_spec(auto_spec(spec_data, max_instances=2, families=["p4d"]))
    request = sagemaker_edge.resolved_request(spec, moto_aws, sagemaker_edge.resolve(spec, moto_aws))
    sagemaker_edge.submit(request, moto_aws)
    assert moto_aws.sent[0]["ResourceConfig"]["InstanceType"] == "ml.p4d.24xlarge"
    assert moto_aws.sent[0]["ResourceConfig"]["InstanceCount"] == spec.compute.instance_count


def test_auto_without_a_model_names_the_missing_fields(spec_data):
    data = auto_spec(spec_data)
    del data["plan"]
    with pytest.raises(SpecError) as err:
        validate_spec(data)
    assert err.value.paths() == ["plan.model"]


def test_auto_that_cannot_fit_reports_the_nearest_and_changes_nothing(spec_data):
    data = auto_spec(spec_data, families=["g4dn"], max_instances=1)
    with pytest.raises(SpecError) as err:
        validate_spec(data)
    assert err.value.paths() == ["compute.instance_type"]
    assert "no configuration fits" in str(err.value) and "Nearest" in str(err.value)
    assert data["compute"] == {"instance_type": "auto"}


def test_cli_plan_prints_choice_alternatives_and_rejections(spec_data, tmp_path):
    import yaml

    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(auto_spec(spec_data, max_instances=2)))
    png = tmp_path / "plan.png"
    result = CliRunner().invoke(cli.app, ["plan", str(path), "--png", str(png)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "choice" in result.output and "why" in result.output and "GiB/GPU" in result.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    nothing = CliRunner().invoke(cli.app, ["plan", str(path), "--set", "plan.families=[g4dn]"], env={"COLUMNS": "200"})
    assert nothing.exit_code == 1 and "Nearest" in nothing.output


def test_cli_validate_shows_the_chosen_type(spec_data, tmp_path):
    import yaml

    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(auto_spec(spec_data, max_instances=2)))
    result = CliRunner().invoke(cli.app, ["validate", str(path)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "instance_type auto ->" in result.output and "x ml." in result.output
