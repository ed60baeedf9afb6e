"""MLflow tracking of a local run: a 2-process job logs one run to a SQLite store in its work folder (read back
with MLflow's client: its params, a loss series with one value per log step, the model artifact), and the job
resumed from its checkpoint continues that run."""

from __future__ import annotations

import re

import pytest
from mlflow.tracking import MlflowClient

from smjobs.checks.validate import validate_spec
from smjobs.local import runner as local
from smjobs.request.training import build_request

pytestmark = pytest.mark.integration

SPEC = {
    "name": "tracked-mlp",
    "entry_point": "train.py",
    "compute": {"instance_type": "ml.g5.12xlarge", "instance_count": 1},
    "hyperparameters": {"model": "mlp", "steps": 4, "global_batch_size": 16, "log_every": 2, "checkpoint_every": 2,
                        "hidden_sizes": [16]},
    "tracking": {"mlflow": {"experiment": "team-mlp"}},
}


def launch(steps: int, work_dir):
    data = {**SPEC, "hyperparameters": {**SPEC["hyperparameters"], "steps": steps}}
    request = build_request(validate_spec(data), job_name="tracked-mlp-1")
    result = local.launch(request, local.prepare(request, work_dir, 2))
    assert result.exit_code == 0, "\n".join(result.lines[-40:])
    return result


def logged_losses(result) -> dict[int, float]:
    return {int(m.group(1)): float(m.group(2)) for m in map(re.compile(r"step=(\d+) loss=([0-9.]+)").search, result.lines) if m}


def test_a_two_process_run_is_one_mlflow_run_and_its_resume_continues_it(tmp_path):
    first = launch(4, tmp_path / "work")
    client = MlflowClient(local.local_tracking_uri(tmp_path / "work"))
    experiment = client.get_experiment_by_name("team-mlp")
    [run] = client.search_runs([experiment.experiment_id])  # one run, not one per rank
    assert run.info.run_name == "tracked-mlp-1" and run.info.status == "FINISHED"
    assert run.data.params["steps"] == "4" and run.data.params["hidden_sizes"] == "[16]"
    history = client.get_metric_history(run.info.run_id, "loss")
    printed = logged_losses(first)
    assert [m.step for m in history] == [2, 4] == sorted(printed)  # one value per log step
    assert [m.value for m in history] == pytest.approx([printed[2], printed[4]], abs=1e-6)
    assert [a.path for a in client.list_artifacts(run.info.run_id, "model")] == ["model/model.pt"]

    resumed = launch(6, tmp_path / "work")  # from the step-4 checkpoint
    assert any("from step 4" in line for line in resumed.lines)
    [again] = client.search_runs([experiment.experiment_id])
    assert again.info.run_id == run.info.run_id and again.info.status == "FINISHED"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "loss")] == [2, 4, 6]
