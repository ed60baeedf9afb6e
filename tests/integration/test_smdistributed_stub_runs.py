"""smdistributed-stub with real processes: scripts written as AWS documents SMDDP (smddp backend and the older
API) and SMP v1 (@smp.step) run unmodified on 2 local processes and end with the parameters of a plain-torch
one-process run; SMDDP and SMP v1 jobs run through `smjobs run --local` (torchrun when MPI is absent)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from smjobs.checks.validate import validate_spec
from smjobs.local import runner as local
from smjobs.local.runner import free_port
from smjobs.request.training import build_request
from smjobs.spec.job import ENTRY_POINTS_DIR, example_path, read_spec_data

pytestmark = pytest.mark.integration
SCRIPTS = Path(__file__).resolve().parents[1] / "fixtures" / "smdistributed"
TORCHRUN = Path(sys.executable).parent / "torchrun"
ATOL = 1e-6


def torchrun(script: str, *args: str, mp_parameters: dict | None = None, processes: int = 2) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SM_")}
    env.update(OMP_NUM_THREADS="1", PYTHONPATH=str(SCRIPTS))
    if mp_parameters is not None:
        env["SM_HP_MP_PARAMETERS"] = json.dumps(mp_parameters)
    done = subprocess.run([str(TORCHRUN), "--nproc_per_node", str(processes), "--master_addr", "127.0.0.1",
                           "--master_port", str(free_port()), str(SCRIPTS / script), *args],
                          capture_output=True, text=True, env=env, timeout=300, cwd=SCRIPTS)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


MPIRUN = Path(sys.executable).parent / "mpirun"


@pytest.mark.parametrize(("script", "mp_parameters"), [
    ("smddp_backend.py", None), ("smddp_v1_api.py", None), ("smp_v1_step.py", {"partitions": 2, "microbatches": 2}),
])
def test_scripts_run_under_mpirun_as_on_sagemaker(tmp_path, script, mp_parameters):
    """mpirun (Open MPI and mpi4py from PyPI, dev extras) sets only OMPI_COMM_WORLD_*: the stub derives the rest."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SM_", "RANK", "WORLD_SIZE", "LOCAL_", "MASTER_"))}
    # Open MPI refuses root unless told; CI containers often run as root
    env.update(OMP_NUM_THREADS="1", PYTHONPATH=str(SCRIPTS), OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    if mp_parameters is not None:
        env["SM_HP_MP_PARAMETERS"] = json.dumps(mp_parameters)
    args = [str(tmp_path / "out.pt")] + ([str(tmp_path / "ckpt"), "-1"] if script.startswith("smp") else [])
    done = subprocess.run([str(MPIRUN), "-np", "2", "--oversubscribe", sys.executable, str(SCRIPTS / script), *args],
                          capture_output=True, text=True, env=env, timeout=300, cwd=SCRIPTS)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = torch.load(tmp_path / "out.pt", weights_only=False)
    assert_same(result["model"] if "model" in result else result, reference())


def reference(steps=None) -> dict:
    sys.path.insert(0, str(SCRIPTS))
    import toy

    return toy.reference(steps)


def reference_losses() -> list[float]:
    sys.path.insert(0, str(SCRIPTS))
    import toy

    return toy.reference_run()[1]


def assert_same(state: dict, expected: dict) -> None:
    assert state.keys() == expected.keys()
    for key, value in expected.items():
        diff = (state[key] - value).abs().max().item()
        assert diff <= ATOL, f"{key}: {diff}"


def test_smddp_v1_api_script_matches_torch(tmp_path):
    torchrun("smddp_v1_api.py", str(tmp_path / "out.pt"))
    result = torch.load(tmp_path / "out.pt", weights_only=False)
    assert_same(result["model"], reference())
    assert result["facts"] == {"ranks": [0.0, 1.0], "token": 42.0, "local_size": 2, "available": True, "initialized": True}
    # all_reduce(op=ReduceOp.AVERAGE) of the ranks' losses is the global batch's loss
    assert torch.allclose(torch.tensor(result["losses"]), torch.tensor(reference_losses()), atol=ATOL)


@pytest.mark.parametrize(("mp_parameters", "expect"), [
    ({"partitions": 2, "microbatches": 4}, {"pp": [(0, 2), (1, 2)], "dp": [(0, 1), (0, 1)], "mp_group": [0, 1], "microbatches": 4}),
    ({"partitions": 1, "microbatches": 2, "ddp": True}, {"pp": [(0, 1), (0, 1)], "dp": [(0, 2), (1, 2)], "mp_group": [0], "microbatches": 2}),
    ({"partitions": 1, "tensor_parallel_degree": 2, "ddp": True, "microbatches": 2, "placement_strategy": "spread"},
     {"pp": [(0, 1), (0, 1)], "dp": [(0, 2), (1, 2)], "mp_group": [0, 1], "microbatches": 2}),
], ids=["pp2-mb4", "dp2-mb2", "tp2-spread"])
def test_smp_v1_step_script_matches_torch(tmp_path, mp_parameters, expect):
    torchrun("smp_v1_step.py", str(tmp_path / "out.pt"), str(tmp_path / "ckpt"), "-1", mp_parameters=mp_parameters)
    result = torch.load(tmp_path / "out.pt", weights_only=False)
    assert_same(result["model"], reference())
    facts = result["facts"]
    assert [f["pp"] for f in facts] == expect["pp"] and [f["dp"] for f in facts] == expect["dp"]
    assert facts[0]["mp_group"] == expect["mp_group"] and facts[0]["microbatches"] == expect["microbatches"]


def test_smp_v1_checkpoint_resume_equals_uninterrupted(tmp_path):
    params = {"partitions": 2, "microbatches": 2}
    torchrun("smp_v1_step.py", str(tmp_path / "out.pt"), str(tmp_path / "ckpt"), "3", mp_parameters=params)
    assert (tmp_path / "ckpt" / "newest").read_text() == "step3"
    assert sorted(p.name for p in (tmp_path / "ckpt" / "step3_partial").iterdir()) == [
        "model_0_0.pt", "model_1_0.pt", "optimizer_0_0.pt", "optimizer_1_0.pt", "user_content.pt"]
    assert_same({k: v for k, v in torch.load(tmp_path / "ckpt" / "step3_partial" / "model_0_0.pt").items()
                 if k != "_smp_is_partial"}, reference(steps=3))
    torchrun("smp_v1_step.py", str(tmp_path / "out.pt"), str(tmp_path / "ckpt"), "-1", mp_parameters=params)
    result = torch.load(tmp_path / "out.pt", weights_only=False)
    assert len(result["losses"]) == 5  # 8 steps in all, 3 before the checkpoint
    assert_same(result["model"], reference())


# ----- through smjobs run --local ------------------------------------------------------------------------
def local_run(example: str, work, processes: int, **hyperparameters):
    data = read_spec_data(example_path(example))
    data["hyperparameters"] = {**data.get("hyperparameters", {}), **hyperparameters}
    request = build_request(validate_spec(data), job_name="stub-test")
    assert local.local_problems(request, processes) == []
    result = local.launch(request, local.prepare(request, work, processes))
    assert result.exit_code == 0, "\n".join(result.lines[-30:])
    return request, result


def test_smddp_job_runs_locally_under_torchrun_and_equals_ddp(tmp_path):
    small = {"steps": 4, "global_batch_size": 16, "log_every": 1}
    request, smddp = local_run("smddp_cnn", tmp_path / "smddp", 2, **small)
    assert local.mpi_runner_missing() and local.launcher(request).startswith("torchrun (SageMaker's MPI runner needs")
    launched = json.loads((smddp.layout.config_dir / "hyperparameters.json").read_text())
    assert (launched["sagemaker_torch_distributed_enabled"], launched["sagemaker_distributed_dataparallel_enabled"]) == ("true", "false")
    data = read_spec_data(example_path("smddp_cnn"))
    data.update(distribution={"type": "ddp"}, framework_version="2.8.0", py_version="py312")
    data["hyperparameters"] = {**data.get("hyperparameters", {}), **small}
    ddp_request = build_request(validate_spec(data), job_name="stub-test")
    ddp = local.launch(ddp_request, local.prepare(ddp_request, tmp_path / "ddp", 2))
    assert ddp.exit_code == 0
    a = torch.load(smddp.layout.model_dir / "model.pt", weights_only=False)["model"]
    b = torch.load(ddp.layout.model_dir / "model.pt", weights_only=False)["model"]
    assert_same(a, b)


# `smjobs run smp_v1_gpt` (8 processes, pp 2 x dp 4 x tp 2) runs in tests/integration/test_docs.py, as
# docs/stub.md shows it.


def test_fsdp_runs_on_the_smddp_backend(tmp_path):
    """The bundled train.py with FSDP on ``backend="smddp"`` (2 processes) equals one process without a group."""
    script = ENTRY_POINTS_DIR / "train.py"
    args = ["--model", "mlp", "--steps", "3", "--global_batch_size", "16", "--hidden_sizes", "[32,32]", "--mixed_precision", "fp32"]
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("SM_")}, "OMP_NUM_THREADS": "1"}
    two = subprocess.run([str(TORCHRUN), "--nproc_per_node", "2", "--master_addr", "127.0.0.1", "--master_port", str(free_port()),
                          str(script), *args, "--parallel", "fsdp", "--backend", "smddp"],
                         capture_output=True, text=True, env={**env, "SAGEMAKER_BASE_DIR": str(tmp_path / "two")}, timeout=300)
    assert two.returncode == 0, two.stdout[-2000:] + two.stderr[-2000:]
    assert "with fsdp on 2 process(es), device cpu, backend smddp" in two.stdout
    one = subprocess.run([sys.executable, str(script), *args, "--parallel", "none"], capture_output=True, text=True,
                         env={**env, "SAGEMAKER_BASE_DIR": str(tmp_path / "one")}, timeout=300)
    assert one.returncode == 0, one.stderr[-2000:]

    def model(run: str) -> dict:
        return torch.load(tmp_path / run / "model" / "model.pt", weights_only=False)["model"]

    assert_same(model("two"), model("one"))


# ----- a script in the style of AWS's examples, with what the stub once got wrong ---------------------------
def scheduled_reference(steps: int | None = None):
    """One process, the global batch, plain torch with the script's StepLR; its evaluation loss after each epoch."""
    sys.path.insert(0, str(SCRIPTS))
    import toy

    model = toy.new_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=toy.LR)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=2, gamma=0.5)
    data = toy.dataset()
    loader = torch.utils.data.DataLoader(data, batch_size=toy.GLOBAL_BATCH, shuffle=False)
    losses, evaluations = [], []
    for _ in range(toy.EPOCHS):
        for x, y in loader:
            optimizer.zero_grad()
            loss = torch.nn.functional.nll_loss(model(x), y)
            loss.backward()
            optimizer.step()
            scheduler.step()
            losses.append(loss.item())
        with torch.no_grad():
            evaluations.append(torch.nn.functional.nll_loss(model(data.tensors[0]), data.tensors[1], reduction="sum").item() / len(data))
    return model.state_dict(), losses, evaluations, optimizer.param_groups[0]["lr"]


def test_which_configuration_smp_init_uses_follows_smp(tmp_path):
    """SMP initialises itself at import inside a SageMaker job (its mp_parameters and an MPI launch), so a dict given
    to smp.init there is ignored with a warning; under torchrun the dict's keys win and the job's fill in the rest."""
    job = {"partitions": 2, "microbatches": 2, "ddp": True}
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SM_", "RANK", "WORLD_SIZE", "LOCAL_", "MASTER_"))}
    env.update(OMP_NUM_THREADS="1", PYTHONPATH=str(SCRIPTS), OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               SM_HP_MP_PARAMETERS=json.dumps(job))
    script = str(SCRIPTS / "smp_v1_init_precedence.py")
    under_mpi = subprocess.run([str(MPIRUN), "-np", "2", "--oversubscribe", sys.executable, script],
                               capture_output=True, text=True, env=env, timeout=300, cwd=SCRIPTS)
    under_torchrun = torchrun("smp_v1_init_precedence.py", mp_parameters=job)

    def said(done):
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        return json.loads(done.stdout.split("PRECEDENCE ", 1)[1].splitlines()[0])

    assert said(under_mpi) == {"microbatches": 2, "partitions": 2, "ignored": True}
    assert said(under_torchrun) == {"microbatches": 4, "partitions": 2, "ignored": False}


@pytest.mark.parametrize(("processes", "mp_parameters"), [
    (2, {"partitions": 1, "ddp": True, "microbatches": 2}),
    (4, {"partitions": 2, "tensor_parallel_degree": 2, "ddp": True, "microbatches": 4, "placement_strategy": "spread"}),
], ids=["2-dp2", "4-pp2-tp2"])
def test_aws_style_mnist_script_matches_torch(tmp_path, processes, mp_parameters):
    torchrun("smp_v1_mnist_style.py", str(tmp_path / "out.pt"), str(tmp_path / "ckpt"), "-1",
             mp_parameters=mp_parameters, processes=processes)
    result = torch.load(tmp_path / "out.pt", weights_only=False)
    state, losses, evaluations, lr = scheduled_reference()
    assert_same(result["model"], state)  # the first-step broadcast undid the weights changed after wrapping
    assert torch.allclose(torch.tensor(result["losses"]), torch.tensor(losses), atol=ATOL)
    assert torch.allclose(torch.tensor(result["evaluations"]), torch.tensor(evaluations), atol=ATOL)
    facts = result["facts"]
    assert all(f["lr"] == lr for f in facts), "StepLR drove the DistributedOptimizer"
    assert facts[0]["version"] == "1.15.0" and facts[0]["state_model"]
    assert facts[0]["tp_degree"] == mp_parameters.get("tensor_parallel_degree", 1)
    assert facts[0]["typo_refused"] and facts[0]["warned"] == ["bucket_cap_mb", "trace_device"]
    assert facts[0]["microbatches"] == mp_parameters["microbatches"]
    assert [f["tp_group"] for f in facts][:2] == ([[0], [1]] if processes == 2 else [[0, 2], [1, 3]])


def gpt_reference():
    sys.path.insert(0, str(SCRIPTS))
    import toy_gpt

    return toy_gpt.reference_run()


@pytest.mark.parametrize(("processes", "mp_parameters"), [
    (2, {"partitions": 2, "ddp": True, "microbatches": 2}),
    (4, {"partitions": 2, "ddp": True, "microbatches": 2}),
    (4, {"partitions": 1, "tensor_parallel_degree": 2, "ddp": True, "microbatches": 2}),
], ids=["2-pp2", "4-pp2-dp2", "4-tp2-dp2"])
def test_aws_style_gpt_script_matches_torch_and_resumes_from_partial_checkpoints(tmp_path, processes, mp_parameters):
    """The script meets the library as AWS's GPT example does (FusedLayerNorm, the GPT-2 translations,
    tensor_parallelism=True, activation checkpointing, dynamic_loss_scale with fp16 off, empty batches on the
    pipeline ranks after the first) and still ends with plain PyTorch's parameters and losses."""
    state, losses = gpt_reference()
    torchrun("smp_v1_gpt_style.py", str(tmp_path / "whole.pt"), str(tmp_path / "unused"), "-1",
             mp_parameters=mp_parameters, processes=processes)
    whole = torch.load(tmp_path / "whole.pt", weights_only=False)
    assert_same(whole["model"], state)
    assert torch.allclose(torch.tensor(whole["losses"]), torch.tensor(losses), atol=ATOL)
    for fact in whole["facts"]:  # every rank, those fed empty batches included, trained rank 0's model
        assert torch.allclose(torch.tensor(fact["losses"]), torch.tensor(losses), atol=ATOL)
        assert abs(fact["weights"] - whole["facts"][0]["weights"]) < ATOL
        assert fact["sizes"] == fact["expected"] and fact["tied"]
        assert fact["markers"] == [0.0] * len(losses), "broadcast_buffers: rank 0's buffers before every step"
    if processes == 2 or mp_parameters["partitions"] == 1:
        return  # the checkpoint round trip below runs once, with pipeline and data parallelism
    torchrun("smp_v1_gpt_style.py", str(tmp_path / "out.pt"), str(tmp_path / "ckpt"), "3",
             mp_parameters=mp_parameters, processes=processes)
    assert (tmp_path / "ckpt" / "newest").read_text() == "total_steps3"
    files = sorted(p.name for p in (tmp_path / "ckpt" / "total_steps3_partial").iterdir())
    assert files == ["model_0_0.pt", "model_1_0.pt", "optimizer_0_0.pt", "optimizer_1_0.pt", "user_content.pt"], \
        "one file per pipeline stage, written by its first data-parallel replica"
    torchrun("smp_v1_gpt_style.py", str(tmp_path / "out.pt"), str(tmp_path / "ckpt"), "-1",
             mp_parameters=mp_parameters, processes=processes)
    resumed = torch.load(tmp_path / "out.pt", weights_only=False)
    assert_same(resumed["model"], state)
    assert torch.allclose(torch.tensor(resumed["losses"]), torch.tensor(losses[3:]), atol=ATOL)


@pytest.mark.parametrize("processes", [2, 4])
def test_aws_style_smddp_script_on_2_and_4_processes(tmp_path, processes):
    torchrun("smddp_backend.py", str(tmp_path / "out.pt"), processes=processes)
    assert_same(torch.load(tmp_path / "out.pt"), reference())
