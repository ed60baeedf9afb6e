"""Memory check for any model: plan.model_factory traced under FakeTensorMode, and validate with a fixed type."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from smjobs.api import load_spec, plan
from smjobs.errors import SpecError
from smjobs.planner.factory import ModelProfile, trace
from smjobs.planner.memory import Layout
from smjobs.planner.traced import TraceSetup, trace_memory

USER_PROJECT = Path(__file__).resolve().parents[2] / "fixtures" / "user_project"
SIZES = '''
from model import build_model


def w256():
    return build_model(width=256, depth=4)


def w1024():
    return build_model(width=1024, depth=4)
'''


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("factory") / "project"
    shutil.copytree(USER_PROJECT, root)
    (root / "data").mkdir()
    (root / "user_sizes.py").write_text(SIZES)
    return root


def spec_file(root: Path, name: str, **changes) -> Path:
    data = yaml.safe_load((root / "job.yaml").read_text())
    data["plan"] = {"model_factory": "model:build_large", "batch_factory": "model:example_batch",
                    "loss_fn": "model:loss_fn", "micro_batch": 64, "global_batch": 512, "steps": 1000}
    for key, value in changes.items():
        node = data
        *parents, last = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    path = root / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_a_model_that_cannot_fit_a_fixed_type_is_rejected_and_the_planners_choice_accepted(project):
    path = spec_file(project, "fixed", **{"compute.instance_type": "ml.g5.xlarge", "compute.instance_count": 1})
    with pytest.raises(SpecError) as info:
        load_spec(path)
    problem = next(p for p in info.value.problems if p.path == "compute.instance_type")
    assert "traced from plan.model_factory" in problem.message
    estimate = float(problem.message.split("needs ")[1].split(" GiB")[0])
    assert estimate > 30  # 2.1B parameters x 16 bytes of fp32 AdamW states alone is 32 GiB
    assert "ml.g5.xlarge has 22.5 GiB per GPU as the driver reports it (20.2 usable with a 10% margin)" in problem.message
    choice = plan(path).choice  # the same spec planned over every instance type
    assert f"the cheapest configuration that fits is {choice.instance_count} x {choice.instance_type}" in problem.fix
    assert choice.memory.total_gib == pytest.approx(estimate, abs=0.05)
    fits = load_spec(spec_file(project, "chosen", **{"compute.instance_type": choice.instance_type,
                                                      "compute.instance_count": choice.instance_count}))
    assert fits.compute.instance_type == choice.instance_type
    auto = load_spec(spec_file(project, "auto", compute={"instance_type": "auto"}))
    assert (auto.compute.instance_type, auto.compute.instance_count) == (choice.instance_type, choice.instance_count)


def test_fsdp_shards_the_traced_model_enough_to_fit(project):
    spec = load_spec(spec_file(project, "fsdp", **{"compute.instance_type": "ml.g5.12xlarge", "compute.instance_count": 2,
                                                    "distribution": {"type": "fsdp"}}))
    assert spec.distribution.type == "fsdp"  # 2 x 4 A10G: 32 GiB of states / 8 per GPU fits where DDP does not
    with pytest.raises(SpecError, match="does not fit in GPU memory"):
        load_spec(spec_file(project, "ddp", **{"compute.instance_type": "ml.g5.12xlarge", "compute.instance_count": 2}))


def test_a_factory_that_fails_or_is_missing_is_reported(project):
    with pytest.raises(SpecError) as info:
        load_spec(spec_file(project, "missing", **{"plan.model_factory": "nowhere:build", "compute.instance_type": "ml.g5.xlarge"}))
    assert f"module 'nowhere' is not in {project}" in info.value.problems[0].message
    (project / "broken.py").write_text("import not_installed_anywhere\n\ndef build():\n    pass\n")
    with pytest.raises(SpecError) as info:
        load_spec(spec_file(project, "broken", **{"plan.model_factory": "broken:build", "compute.instance_type": "ml.g5.xlarge"}))
    assert "No module named 'not_installed_anywhere'" in info.value.problems[0].message
    with pytest.raises(SpecError, match="plan.batch_factory: is required"):
        load_spec(spec_file(project, "nobatch", **{"plan.batch_factory": None, "compute.instance_type": "ml.g5.xlarge"}))


@pytest.mark.parametrize("factory,micro", [("user_sizes:w256", 64), ("user_sizes:w1024", 8)])
def test_fsdp_estimate_of_a_traced_model_is_within_10_percent_of_fsdp2s_own_trace(project, factory, micro, monkeypatch):
    monkeypatch.syspath_prepend(str(project))
    import model
    import user_sizes

    profile = ModelProfile(**trace(str(project), factory, "model:example_batch", "model:loss_fn", micro), micro_batch=micro)
    for world in (2, 8):
        estimate = profile.memory(Layout(dp_degree=world, sharding="full_shard", overhead_gib=0, allocator_reserve=0), micro).total
        # FSDP2 really runs, on torch's fake process group, wrapping each block (a Sequential) and the Linears outside
        traced = trace_memory(getattr(user_sizes, factory.split(":")[1]), lambda: model.example_batch(micro), model.loss_fn,
                              TraceSetup("fsdp", world_size=world, fsdp_unit_types=("Sequential", "Linear")))
        assert estimate / traced.total_bytes == pytest.approx(1.0, abs=0.10), (factory, world)


def test_a_described_model_on_a_fixed_type_is_checked_too(spec_data):
    """plan.model (analytic): a 7B model on one 24 GB GPU is refused; the same model sharded over p4de fits."""
    seven_b = {"model": {"layers": 32, "hidden": 4096, "heads": 32, "seq_len": 4096, "vocab": 32000},
               "global_batch": 64, "steps": 100}
    data = {**spec_data, "compute": {"instance_type": "ml.g5.xlarge", "instance_count": 1}, "plan": seven_b}
    with pytest.raises(SpecError) as info:
        load_spec(data)
    problem = info.value.problems[0]
    assert problem.path == "compute.instance_type" and "estimated from plan.model" in problem.message
    assert "ml.g5.xlarge has 22.5 GiB per GPU" in problem.message and "without activation recomputation" in problem.message
    assert "nothing in the catalog fits" in problem.fix  # DDP keeps all 16 bytes per parameter on every GPU
    sharded = {**data, "distribution": {"type": "fsdp"}, "compute": {"instance_type": "ml.p4de.24xlarge", "instance_count": 2}}
    assert load_spec(sharded).distribution.type == "fsdp"
    fsdp_small = {**sharded, "compute": {"instance_type": "ml.g5.xlarge", "instance_count": 1}}
    with pytest.raises(SpecError) as info:
        load_spec(fsdp_small)
    assert "the cheapest configuration that fits is" in info.value.problems[0].fix


def test_a_small_models_plan_reads_in_its_own_units_and_lists_the_unevaluated_types_once(project):
    from rich.console import Console

    from smjobs.planner.report import print_plan

    found = plan(spec_file(project, "small", **{"plan.model_factory": "model:build_model",
                                                "compute": {"instance_type": "auto"}}))
    assert found.choice is not None
    console = Console(width=200, record=True, file=open("/dev/null", "w"))  # noqa: SIM115  (closed with the console)
    print_plan(found, out=console, err=console)
    text = console.export_text()
    assert "K parameters (traced from model:build_model" in text and "0.00B" not in text  # ~10K parameters
    job_usd = [line.split("│")[-2].strip() for line in text.splitlines() if " x ml." in line and "│" in line]
    assert job_usd and all(value != "0" and float(value.lstrip("<")) > 0 for value in job_usd), job_usd
    bounded = [r for r in found.rejections if r.only_bound_usd is not None]
    assert len(bounded) > 3, "the cost bound skipped most types of a tiny model"
    assert text.count("not evaluated: the cheapest job on each costs at least") == 1
    assert "cost at least $0 " not in text


def test_a_job_without_a_described_model_is_told_both_ways_to_describe_it(project):
    path = spec_file(project, "undescribed", compute={"instance_type": "auto"})
    data = yaml.safe_load(path.read_text())
    data["plan"] = {"global_batch": 64}
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(SpecError) as info:
        plan(path)
    problem = next(p for p in info.value.problems if p.path == "plan.model")
    assert "plan.model {layers" in problem.fix and "plan.model_factory" in problem.fix and "plan.batch_factory" in problem.fix


def test_the_bundled_gpts_hyperparameters_on_a_fixed_type_are_checked_with_the_scripts_defaults(spec_data):
    """No plan.model: validate sizes the bundled gpt from its hyperparameters, the rest from train.py's own defaults,
    as tune and plan do, and agrees with the planner on the estimate."""
    from smjobs.checks.job import with_script_defaults
    from smjobs.planner.resolve import check_fits

    data = {**spec_data, "entry_point": "train.py", "source_dir": None,
            "compute": {"instance_type": "ml.g5.xlarge", "instance_count": 1},
            "hyperparameters": {"model": "gpt", "n_layers": 96, "d_model": 2048}}
    with pytest.raises(SpecError) as info:
        load_spec(data)
    problem = next(p for p in info.value.problems if p.path == "compute.instance_type")
    assert "estimated from the gpt's hyperparameters" in problem.message
    assert "ml.g5.xlarge has 22.5 GiB per GPU" in problem.message
    filled = with_script_defaults(load_spec({**data, "compute": {"instance_type": "ml.p5.48xlarge", "instance_count": 1},
                                             "distribution": {"type": "fsdp"}}))
    assert {"n_heads", "seq_len", "vocab_size", "global_batch_size"} <= set(filled.hyperparameters)  # train.py's defaults
    assert check_fits(filled) == []  # sharded over 8 H100s it fits
    small = {**data, "hyperparameters": {"model": "gpt", "n_layers": 2, "d_model": 64}}
    assert load_spec(small).compute.instance_type == "ml.g5.xlarge"
