"""The SMP v2 stand-in (``torch.sagemaker``) without processes: how it is found, its guard, the configuration's
precedence and layout as AWS documents them, replication groups, delayed initialisation, the checkpoint
utilities and the refusals. The runs with processes are in tests/integration/test_smp_v2_stub.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch
import torch.sagemaker as tsm
from torch.sagemaker import _config, _transform
from torch.sagemaker.checkpoint import utils as checkpoint_utils
from torch.sagemaker.delayed_param import DelayedParamIniter
from torch.sagemaker.distributed.checkpoint import _common
from torch.sagemaker.distributed.checkpoint.async_utils import AsyncCallsQueue
from torch.sagemaker.distributed.checkpoint.state_dict_utils import init_optim_state
from torch.sagemaker.moe.moe_config import MoEConfig
from torch.sagemaker.state_handler import Ranker


def test_torch_sagemaker_is_the_stand_in_and_only_under_that_name():
    assert tsm.__stub__ and tsm.__name__ == "torch.sagemaker" and not tsm.is_initialized()
    from importlib.machinery import PathFinder

    names = [getattr(f, "__name__", type(f).__name__) for f in sys.meta_path]
    # after the path finder: a real torch/sagemaker package is found first
    assert names.index("TorchSagemakerStubFinder") > sys.meta_path.index(PathFinder)
    with pytest.raises(ImportError, match="import torch.sagemaker"):
        import _torch_sagemaker_stub  # noqa: F401


def test_a_real_torch_sagemaker_takes_precedence(tmp_path):
    """SageMaker's pytorch-smp images install SMP v2 into torch itself: the normal path finder finds it first."""
    fake = tmp_path / "torch" / "sagemaker"
    fake.mkdir(parents=True)
    (tmp_path / "torch" / "__init__.py").write_text("")
    (fake / "__init__.py").write_text("REAL = True\n")
    done = subprocess.run([sys.executable, "-c", "import torch.sagemaker as t; print(getattr(t, 'REAL', False))"],
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(tmp_path)})
    assert done.returncode == 0 and done.stdout.strip() == "True", done.stderr


def test_the_stand_in_refuses_to_load_inside_a_sagemaker_container(tmp_path):
    config = tmp_path / "resourceconfig.json"
    config.write_text("{}")
    env = {**os.environ, "SMDISTRIBUTED_STUB_RESOURCE_CONFIG": str(config)}
    done = subprocess.run([sys.executable, "-c", "import torch.sagemaker"], capture_output=True, text=True, env=env)
    assert done.returncode != 0 and "does not run inside a SageMaker training container" in done.stderr


def test_the_jobs_parameters_override_init_s_which_override_the_defaults(tmp_path):
    environ = {"SM_HP_MP_PARAMETERS": json.dumps({"tensor_parallel_degree": 2})}
    merged = _config.load({"tensor_parallel_degree": 4, "hybrid_shard_degree": 2}, environ=environ)
    assert (merged["tensor_parallel_degree"], merged["hybrid_shard_degree"]) == (2, 2)
    assert merged["sm_activation_offloading"] is True and merged["activation_loading_horizon"] == 2  # AWS's defaults
    path = tmp_path / "smp_config.json"
    path.write_text(json.dumps({"hybrid_shard_degree": 4}))
    assert _config.load(str(path), environ={})["hybrid_shard_degree"] == 4


@pytest.mark.parametrize(("config", "error", "text"), [
    ({"hybrid_shard_degre": 2}, ValueError, "unknown SMP v2 parameters ['hybrid_shard_degre']"),
    ({"tensor_parallel_degree": 0}, ValueError, "tensor_parallel_degree must be an integer >= 1"),
    ({"hybrid_shard_degree": True}, ValueError, "hybrid_shard_degree must be an integer >= 0"),
    ({"context_parallel_degree": 2}, NotImplementedError, "context_parallel_degree=2: context parallelism"),
    ({"expert_parallel_degree": 4}, NotImplementedError, "expert_parallel_degree=4"),
    ([1, 2], TypeError, "a dict or a JSON file's path"),
])
def test_bad_configurations_are_refused_naming_the_key(config, error, text):
    with pytest.raises(error, match=text.replace("[", r"\[").replace("]", r"\]").replace("(", r"\(")):
        _config.load(config, environ={})


def test_hybrid_shard_degree_resolves_as_aws_documents():
    params = dict(_config.DEFAULTS)

    def degrees(*args):
        layout = _config.layout(*args)
        return layout.replicate_degree, layout.shard_degree, layout.tp_degree

    assert degrees({**params, "tensor_parallel_degree": 2}, 4, 4) == (1, 2, 2)  # 0: all of dp
    assert degrees({**params, "hybrid_shard_degree": 2}, 8, 8) == (4, 2, 1)
    assert degrees({**params, "hybrid_shard_degree": 1}, 4, 4) == (4, 1, 1)
    with pytest.raises(ValueError, match="hybrid_shard_degree 3 must divide the 4 data-parallel processes"):
        _config.layout({**params, "hybrid_shard_degree": 3}, 4, 4)
    with pytest.raises(ValueError, match="tensor_parallel_degree 4 exceeds the 2 processes of one host"):
        _config.layout({**params, "tensor_parallel_degree": 4}, 8, 2)


def test_replication_groups_pair_the_same_shards_of_every_replica():
    ranker = Ranker(_config.Layout(8, 2, 2, 2, 2))
    assert ranker.get_rep_groups() == [[0, 4], [1, 5], [2, 6], [3, 7]]
    assert [ranker.get_rep_rank(r) for r in range(8)] == [0, 0, 0, 0, 1, 1, 1, 1]


def test_transform_needs_init_and_a_tensor_parallel_plan_comes_from_the_model_or_its_config():
    with pytest.raises(RuntimeError, match="call tsm.init"):
        tsm.transform(torch.nn.Linear(2, 2))
    plan = {"layers.*.q": "colwise"}
    own = SimpleNamespace(_tp_plan=plan)
    assert _transform.plan_of(own) == plan
    hf = SimpleNamespace(config=SimpleNamespace(base_model_tp_plan=plan), base_model_prefix="model", model=object())
    assert _transform.plan_of(hf) == {"model.layers.*.q": "colwise"}


def test_delayed_initialisation_materialises_each_module_and_the_check_counts_them():
    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = torch.nn.Linear(4, 4), torch.nn.LayerNorm(4)

        def _init_weights(self, module):  # Hugging Face's hook wins over reset_parameters
            if isinstance(module, torch.nn.Linear):
                module.weight.data.fill_(0.5)
                module.bias.data.zero_()

    with torch.device("meta"):
        net = Net()
    initer = DelayedParamIniter(net)
    with initer.validate_params_and_buffers_inited():
        init = initer.get_param_init_fn()
        for module in net.modules():
            init(module)
    assert torch.equal(net.a.weight, torch.full((4, 4), 0.5)) and initer.num_params_inited == 4 * 4 + 4 + 4 + 4
    with torch.device("meta"):
        half = Net()
    partial = DelayedParamIniter(half)
    with pytest.raises(AssertionError, match="still on the meta device"):
        with partial.validate_params_and_buffers_inited():
            partial.get_param_init_fn()(half.a)


def test_init_optim_state_creates_the_state_without_moving_a_parameter():
    model = torch.nn.Linear(3, 2)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1, weight_decay=0.1)
    init_optim_state(optimizer)
    assert set(optimizer.state_dict()["state"][0]) == {"step", "exp_avg", "exp_avg_sq"}
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert optimizer.param_groups[0]["lr"] == 0.1 and all(p.grad is None for p in model.parameters())


def test_limit_num_subdirs_keeps_the_newest_by_the_last_number(tmp_path):
    for step in (2, 10, 4):
        (tmp_path / f"gpt-{step}steps").mkdir()
    (tmp_path / "other").mkdir()
    removed = checkpoint_utils.limit_num_subdirs(tmp_path, 2, sort_fn=checkpoint_utils.SORT_BY_LAST_INT,
                                                 regex=r"^gpt-", log=False)
    assert [p.rsplit("/", 1)[-1] for p in removed] == ["gpt-2steps"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gpt-10steps", "gpt-4steps", "other"]


def test_async_calls_finish_in_order_and_raise_what_the_save_raised():
    class Done:
        def __init__(self, error=None):
            self.error = error

        def done(self):
            return True

        def result(self):
            if self.error:
                raise self.error

    queue = AsyncCallsQueue()
    queue.schedule(Done())
    queue.schedule(Done())
    assert queue.maybe_finalize_async_calls(blocking=True) == [0, 1] and queue.get_num_unfinalized_calls() == 0
    queue.schedule(Done(OSError("disk full")))
    with pytest.raises(OSError, match="disk full"):
        queue.maybe_finalize_async_calls(blocking=True)


def test_s3_checkpoints_and_gpu_only_modules_are_refused_with_the_reason():
    with pytest.raises(NotImplementedError, match="S3 checkpoints"):
        _common.local_path("s3://bucket/ckpt", "save")
    assert _common.local_path("/opt/ml/checkpoints", "save") == "/opt/ml/checkpoints"
    with pytest.raises(NotImplementedError, match="FlashAttention kernels run on GPUs only"):
        from torch.sagemaker.nn.attn import FlashSelfAttention  # noqa: F401
    with pytest.raises(ValueError, match="moe_load_balancing"):
        MoEConfig(moe_load_balancing="round_robin")
    assert [len(c) for c in _common._chunks(7, 2)] == [4, 3] and [len(c) for c in _common._chunks(1, 2)] == [1, 0]


def test_grad_norm_before_init_is_torch_s_own():
    from torch.sagemaker.grad_norm import clip_grad_norm_

    model = torch.nn.Linear(3, 1)
    model(torch.ones(2, 3)).sum().backward()
    expected = torch.cat([p.grad.flatten() for p in model.parameters()]).norm()
    assert torch.allclose(clip_grad_norm_(model, 1e9), expected)
