"""smdistributed-stub without processes: rank placement as AWS documents it, configuration errors, launcher
environments, micro-batch slicing, the shadowing guard, and the coverage table checked against the package."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest
import torch
from smdistributed import _launch
from smdistributed.modelparallel import torch as smp
from smdistributed.modelparallel.torch import _step, _topology

STUB = Path(__file__).resolve().parents[3] / "stubs" / "smdistributed-stub"


def topo(world: int, **config):
    cfg = _topology.config_from({"ddp": True, **config})
    return _topology.topology(cfg, 0, world)


def test_placement_without_tensor_parallelism_matches_aws_ranking_basics():
    # 8 processes, partitions=2 (AWS's example): spread and cluster give these mp and dp groups
    spread = topo(8, partitions=2, placement_strategy="spread")
    assert spread.axis_groups("D") == [[0, 4], [1, 5], [2, 6], [3, 7]]
    assert spread.axis_groups("P") == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert spread.group_of(6, "P").index(6) == 2  # "the dp_rank of process 6 is 2"
    cluster = topo(8, partitions=2, placement_strategy="cluster")
    assert cluster.axis_groups("D") == [[0, 1], [2, 3], [4, 5], [6, 7]]
    assert cluster.axis_groups("P") == [[0, 2, 4, 6], [1, 3, 5, 7]]


def test_placement_with_tensor_parallelism_matches_aws_dpt_table():
    t = topo(8, partitions=2, tensor_parallel_degree=2, placement_strategy="DPT")
    table = [(t.coords[r]["D"], t.coords[r]["P"], t.coords[r]["T"]) for r in range(8)]
    assert table == [(0, 0, 0), (0, 0, 1), (0, 1, 0), (0, 1, 1), (1, 0, 0), (1, 0, 1), (1, 1, 0), (1, 1, 1)]
    assert topo(8, partitions=2, tensor_parallel_degree=2, placement_strategy="cluster").coords == t.coords
    tpd = topo(8, partitions=2, tensor_parallel_degree=2, placement_strategy="TPD")
    assert [tpd.coords[r]["D"] for r in range(8)] == [0, 1, 0, 1, 0, 1, 0, 1]


@pytest.mark.parametrize(("config", "error", "text"), [
    ({"partitions": 2, "nonsense": 1}, ValueError, "unknown mp_parameters ['nonsense']"),
    ({"partitions": 2, "fp16": True}, NotImplementedError, "['fp16'] are not emulated"),
    ({"partitions": 2, "shard_optimizer_state": True}, NotImplementedError, "shard_optimizer_state"),
    ({"partitions": 2, "sharded_data_parallel_degree": 4}, NotImplementedError, "sharded_data_parallel_degree"),
    ({"partitions": 2, "placement_strategy": "XYZ"}, ValueError, "placement_strategy 'XYZ'"),
])
def test_bad_configuration_is_refused_with_the_key_named(config, error, text):
    with pytest.raises(error, match=re.escape(text)):
        _topology.config_from(config)


def test_data_parallelism_needs_ddp_and_the_degrees_must_divide():
    with pytest.raises(ValueError, match="ddp: True"):
        _topology.topology(_topology.config_from({"partitions": 2}), 0, 4)
    with pytest.raises(ValueError, match="cannot hold pipeline_parallel_degree 3"):
        _topology.topology(_topology.config_from({"partitions": 3, "ddp": True}), 0, 4)


def test_configuration_comes_from_the_jobs_mp_parameters(monkeypatch):
    monkeypatch.setenv("SM_HP_MP_PARAMETERS", '{"partitions": 4, "microbatches": 8, "placement_strategy": "spread"}')
    cfg = _topology.config_from(None)
    assert (cfg.pp_size, cfg.microbatches, cfg.placement) == (4, 8, "TPD")


def test_a_dict_given_to_init_wins_over_the_jobs_mp_parameters_which_fill_in_the_rest(monkeypatch):
    """Off SageMaker's MPI launch (torchrun, or SMP_MANUAL_INIT=1) the script's dict is what smp.init uses; the
    job's mp_parameters give what it leaves out (SMP v1 issue 29, point 7)."""
    monkeypatch.setenv("SM_HP_MP_PARAMETERS", '{"partitions": 2, "microbatches": 4, "ddp": true}')
    cfg = _topology.config_from({"microbatches": 8, "placement_strategy": "spread"})
    assert (cfg.pp_size, cfg.microbatches, cfg.placement, cfg.ddp) == (2, 8, "TPD", True)


def test_smp_initialises_at_import_inside_a_sagemaker_mpi_job_only(monkeypatch):
    """SMP's own rule (smdistributed/modelparallel/torch/__init__.py): the job's mp_parameters and an MPI launch
    mean SMP initialises when imported, unless SMP_MANUAL_INIT=1."""
    monkeypatch.delenv("SM_HP_MP_PARAMETERS", raising=False)
    monkeypatch.delenv("OMPI_COMM_WORLD_RANK", raising=False)
    assert not smp._sagemaker_launch()
    monkeypatch.setenv("SM_HP_MP_PARAMETERS", "{}")
    assert not smp._sagemaker_launch()  # torchrun: the script calls smp.init itself
    monkeypatch.setenv("OMPI_COMM_WORLD_RANK", "0")
    assert smp._sagemaker_launch()


def test_keys_set_to_off_are_not_called_without_effect():
    """Point 8: fast_mode=False or offload_activations=False ask for nothing; only keys set to something are named."""
    with pytest.warns(UserWarning, match=r"\['optimize'\] are accepted without effect"):
        _topology.config_from({"partitions": 2, "fast_mode": False, "offload_activations": False,
                               "static_mode": False, "skip_tracing": 0, "optimize": "speed"})
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _topology.config_from({"partitions": 2, "fast_mode": False, "offload_activations": False})


def test_fused_layer_norm_is_layer_norm_and_the_gpt2_translations_keep_the_layout():
    from smdistributed.modelparallel.torch.nn import FusedLayerNorm
    from smdistributed.modelparallel.torch.nn.huggingface.gpt2 import (
        translate_hf_state_dict_to_smdistributed_gpt2,
        translate_state_dict_to_hf_gpt2,
    )

    torch.manual_seed(0)
    fused, plain = FusedLayerNorm(8, eps=1e-5), torch.nn.LayerNorm(8, eps=1e-5)
    assert isinstance(fused, torch.nn.LayerNorm)
    plain.load_state_dict(fused.state_dict())
    x = torch.randn(3, 8)
    assert torch.equal(fused(x), plain(x))
    state = torch.nn.Linear(2, 2).state_dict()
    for translate in (translate_state_dict_to_hf_gpt2, translate_hf_state_dict_to_smdistributed_gpt2):
        out = translate(state, 1024) if translate is translate_state_dict_to_hf_gpt2 else translate(state)
        assert list(out) == list(state) and all(out[k] is state[k] for k in state)
    with pytest.raises(NotImplementedError, match="DistributedTransformerLMHead"):
        from smdistributed.modelparallel.torch.nn import DistributedTransformerLMHead  # noqa: F401


class _Block(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.first, self.drop, self.second = torch.nn.Linear(4, 4), torch.nn.Dropout(0.5), torch.nn.Linear(4, 2)

    def forward(self, x, scale=1.0):
        return self.second(self.drop(self.first(x))) * scale


@pytest.mark.parametrize("sequential", [False, True])
def test_activation_checkpointing_recomputes_and_changes_no_number(sequential):
    """Point 4: set_activation_checkpointing changes memory only; the forward runs again in backward (dropout's
    random state restored, keyword arguments kept)."""
    def build():
        torch.manual_seed(0)
        block = _Block()
        return torch.nn.Sequential(block.first, block.drop, block.second) if sequential else block

    reference, checkpointed = build(), build()
    calls = []
    first = checkpointed[0] if sequential else checkpointed.first
    first.register_forward_hook(lambda *_: calls.append(1))
    smp.set_activation_checkpointing(checkpointed, **({"strategy": "group_2"} if sequential else {}))
    x = torch.randn(5, 4)
    kwargs = {} if sequential else {"scale": 2.0}
    torch.manual_seed(1)
    expected = reference(x, **kwargs).sum()
    expected.backward()
    torch.manual_seed(1)
    got = checkpointed(x, **kwargs).sum()
    got.backward()
    assert torch.equal(got, expected) and len(calls) == 2, "forward once, and once more in backward"
    for a, b in zip(reference.parameters(), checkpointed.parameters(), strict=True):
        assert torch.equal(a.grad, b.grad)
    if not sequential:
        with pytest.raises(ValueError, match="nn.Sequential only"):
            smp.set_activation_checkpointing(torch.nn.Linear(2, 2), strategy="contiguous")


def test_tensor_parallelism_and_fp16_loss_scaling_arguments_are_accepted():
    """Points 3 and 5: tensor_parallelism=True swaps no module; the loss-scaling arguments are fp16-only."""
    with smp.model_creation(tensor_parallelism=True, dtype=torch.float32):
        model = torch.nn.Linear(2, 2)
    assert type(model) is torch.nn.Linear
    with smp.tensor_parallelism():
        assert type(torch.nn.Linear(2, 2)) is torch.nn.Linear
    smp.set_tensor_parallelism(model, True)


def test_speed_only_parameters_are_accepted_with_a_warning():
    with pytest.warns(UserWarning, match="accepted without effect"):
        cfg = _topology.config_from({"partitions": 2, "optimize": "speed", "active_microbatches": 3})
    assert cfg.pp_size == 2


def test_launcher_environments():
    mpi = _launch.launch({"OMPI_COMM_WORLD_RANK": "3", "OMPI_COMM_WORLD_SIZE": "8", "OMPI_COMM_WORLD_LOCAL_RANK": "3",
                          "OMPI_COMM_WORLD_LOCAL_SIZE": "4"})
    assert (mpi.rank, mpi.world_size, mpi.local_rank, mpi.local_size, mpi.launcher) == (3, 8, 3, 4, "mpi")
    tr = _launch.launch({"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2"})
    assert (tr.rank, tr.world_size, tr.local_size, tr.launcher) == (1, 2, 2, "torchrun")
    assert _launch.launch({}).launcher == "single"


def test_microbatch_slicing_of_nested_inputs_and_custom_types():
    class Custom:
        def __init__(self, data):
            self.data = data

        def smp_slice(self, num_mb, mb, axis):
            size = self.data.size(axis) // num_mb
            return Custom(self.data.narrow(axis, mb * size, size))

    batch = {"x": torch.arange(8).reshape(8, 1), "pair": (torch.arange(8), torch.arange(16).reshape(8, 2)), "n": 3}
    second = _step._slice(batch, 4, 1, 0, "batch")
    assert second["x"].flatten().tolist() == [2, 3] and second["pair"][1].tolist() == [[4, 5], [6, 7]] and second["n"] == 3
    assert _step._slice(torch.arange(16).reshape(2, 8), 4, 3, 1, "y").tolist() == [[6, 7], [14, 15]]
    assert _step._slice(Custom(torch.arange(8)), 2, 1, 0, "c").data.tolist() == [4, 5, 6, 7]
    with pytest.raises(ValueError, match="10 entries along axis 0, which 4 micro-batches do not divide"):
        _step._slice(torch.zeros(10), 4, 0, 0, "x")


def test_step_output_reductions():
    out = smp.StepOutput([torch.tensor([1.0, 2.0]), torch.tensor([3.0, 6.0])])
    assert out.reduce_mean().tolist() == [2.0, 4.0] and out.reduce_sum().tolist() == [4.0, 8.0]
    assert out.concat().tolist() == [1.0, 2.0, 3.0, 6.0] and out.stack().shape == (2, 2) and len(out.outputs) == 2


def test_apis_need_init_first():
    with pytest.raises(RuntimeError, match=r"smp.rank needs smp.init\(\) first"):
        smp.rank()


def test_refuses_to_shadow_the_real_library(monkeypatch, tmp_path):
    from smdistributed import _guard

    real = object()
    monkeypatch.setattr(_guard.metadata, "distribution",
                        lambda name: real if name == "smdistributed-modelparallel" else (_ for _ in ()).throw(
                            _guard.metadata.PackageNotFoundError(name)))
    with pytest.raises(ImportError, match="shadow the real smdistributed-modelparallel"):
        _guard.refuse_to_shadow()
    monkeypatch.undo()
    config = tmp_path / "resourceconfig.json"
    config.write_text("{}")
    monkeypatch.setattr(_guard, "SAGEMAKER_RESOURCE_CONFIG", config)
    with pytest.raises(ImportError, match="does not run inside a SageMaker training container"):
        _guard.refuse_to_shadow()
    monkeypatch.setenv("SMDISTRIBUTED_STUB_ALLOW", "1")
    _guard.refuse_to_shadow()


def test_the_guard_holds_when_the_real_package_is_a_namespace_package(tmp_path):
    """A real ``smdistributed`` without ``__init__.py`` (a namespace package) whose path takes in the stub's
    folders: ``import smdistributed.modelparallel.torch`` never runs the stub's parent package, and must still
    refuse inside a container."""
    import subprocess
    import sys

    real = tmp_path / "real" / "smdistributed"
    real.mkdir(parents=True)
    config = tmp_path / "resourceconfig.json"
    config.write_text("{}")
    probe = (
        "import sys, types\n"
        f"ns = types.ModuleType('smdistributed'); ns.__path__ = [{str(real)!r}, {str(STUB / 'smdistributed')!r}]\n"
        "sys.modules['smdistributed'] = ns\n"
        "import smdistributed.modelparallel.torch\n"
    )
    env = {"SMDISTRIBUTED_STUB_RESOURCE_CONFIG": str(config), "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode != 0 and "does not run inside a SageMaker training container" in done.stderr, done.stderr[-2000:]
    allowed = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120,
                             env={**env, "SMDISTRIBUTED_STUB_ALLOW": "1"})
    assert allowed.returncode == 0, allowed.stderr[-2000:]


def test_the_installed_stub_is_the_one_in_stubs_as_it_is_now():
    """Installed as a wheel (its .pth file serves torch.sagemaker), from stubs/ and not from entry_points, and
    reinstalled by make when its files change: every installed module has the bytes of its source here."""
    from importlib import metadata

    origin = Path(importlib.util.find_spec("smdistributed").origin).resolve()
    assert "entry_points" not in origin.parts
    site = origin.parents[1]
    sources = [p for p in STUB.rglob("*.py") if p.parent != STUB or p.name == "_smdistributed_stub_hook.py"]
    sources = [p for p in sources if "build" not in p.relative_to(STUB).parts]
    assert len(sources) > 40
    stale = [str(p.relative_to(STUB)) for p in sources if (site / p.relative_to(STUB)).read_bytes() != p.read_bytes()]
    assert not stale, f"reinstall the stub (make .venv/.stub-installed): {stale}"
    assert "smdistributed_stub.pth" in {f.name for f in metadata.distribution("smdistributed-stub").files}


def resolve(dotted: str):
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for attr in parts[cut:]:
            obj = getattr(obj, attr)
        return obj
    raise ModuleNotFoundError(dotted)


def surface() -> dict:
    import yaml

    return yaml.safe_load((STUB / "api_surface.yaml").read_text())


def refuses(entry: dict) -> bool:
    """Whether the stub answers ``entry`` with NotImplementedError naming it: on access, or when called."""
    short = entry["name"].rsplit(".", 1)[-1]
    try:
        target = resolve(entry["name"])
    except NotImplementedError as exc:
        return short in str(exc)
    if getattr(target, "__smdistributed_stub_not_emulated__", False):
        return True
    if callable(target):
        import inspect

        try:  # None for every required argument (self included): a refusal comes before any use of them
            required = [p for p in inspect.signature(target).parameters.values()
                        if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        except (TypeError, ValueError):
            required = []
        try:
            target(*[None] * len(required))
        except NotImplementedError as exc:
            return short in str(exc)
        except Exception:  # noqa: BLE001  (any other failure: it is not a refusal)
            return False
    return False


def test_every_documented_name_is_there_and_behaves_as_its_status_says():
    import inspect

    data = surface()
    entries = data["entries"]
    assert len(entries) >= 350 and {e["source"] for e in entries} <= set(data["sources"])
    assert sum(e["name"].startswith("torch.sagemaker.") for e in entries) >= 80  # SMP v2's names
    wrong = []
    for e in entries:
        where = f"{e['name']}" + (f"({e['parameter']})" if "parameter" in e else "")
        if e["kind"] == "mp_parameter":
            if e["status"] == "not emulated":
                with pytest.raises(NotImplementedError, match=e["name"]):
                    _topology.config_from({e["name"]: e["example"]})
            else:
                assert _topology.config_from({e["name"]: e["example"]}).raw == {e["name"]: e["example"]}, where
            continue
        if e["kind"] == "smp_v2_parameter":
            from torch.sagemaker import _config

            if e["status"] == "not emulated":
                with pytest.raises(NotImplementedError, match=e["name"]):
                    _config.load({e["name"]: e["example"]}, environ={})
            else:
                assert _config.load({e["name"]: e["example"]}, environ={})[e["name"]] == e["example"], where
            continue
        if e["kind"] == "parameter":
            target = resolve(e["name"])
            names = inspect.signature(target.__init__ if inspect.isclass(target) else target).parameters
            if e["parameter"] not in names:
                wrong.append(f"{where}: no such parameter")
            continue
        if e["kind"] == "instance_attribute":
            owner, attr = e["name"].rsplit(".", 1)
            if f"self.{attr}" not in inspect.getsource(resolve(owner)):
                wrong.append(f"{where}: never set")
            continue
        if e["status"] == "not emulated":
            if not refuses(e):
                wrong.append(f"{where}: documented as not emulated, but does not raise NotImplementedError naming it")
            continue
        try:  # resolved, never called: an emulated function may start a process group
            target = resolve(e["name"])
        except (AttributeError, ModuleNotFoundError, NotImplementedError) as exc:
            wrong.append(f"{where}: missing ({type(exc).__name__}: {exc})")
            continue
        if getattr(target, "__smdistributed_stub_not_emulated__", False):
            wrong.append(f"{where}: documented as {e['status']}, but it only raises NotImplementedError")
    assert not wrong, "\n".join(wrong)


def test_the_readme_coverage_table_is_generated_from_the_api_surface():
    import subprocess
    import sys

    done = subprocess.run([sys.executable, str(STUB / "coverage.py"), "--check"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    readme = (STUB / "README.md").read_text()
    for name in ("mp_parameters `fp16_params`", "mp_parameters `horovod`", "(backward_passes_per_step=)"):
        assert name in readme  # the rows the hand-written table lacked


def test_grad_scaler_passes_through_with_mixed_precision_off_and_refuses_it_on(monkeypatch):
    scaler = smp.amp.GradScaler()  # AWS's examples create one whatever the precision
    loss = torch.tensor(2.5)
    assert scaler.scale(loss) is loss and scaler.get_scale() == 1.0 and not scaler.is_enabled()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    with pytest.raises(NotImplementedError, match="smp.amp.GradScaler with mixed precision on"):
        smp.amp.GradScaler()
    assert smp.amp.GradScaler(enabled=False).get_scale() == 1.0
