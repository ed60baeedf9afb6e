"""`smjobs tune --local`: three tiny trials searched by Optuna, each a local run of 2 processes under the container
contract. The best trial is the one whose log ends with the best objective, and only rank 0 prints the metric."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest
import yaml

from smjobs import api
from smjobs.checks.validate import validate_spec

pytestmark = pytest.mark.integration
STEPS, LOG_EVERY = 12, 4


def local_spec(**tuning):
    return {"name": "tiny-tune", "entry_point": "train.py", "compute": {"instance_type": "ml.g5.12xlarge"},
            "hyperparameters": {"model": "mlp", "steps": STEPS, "log_every": LOG_EVERY, "in_features": 8,
                                "hidden_sizes": [16], "global_batch_size": 16},
            "distribution": {"type": "ddp", "processes_per_host": 2},
            "tuning": {"parameters": {"lr": {"type": "continuous", "min": 1e-4, "max": 0.5, "scaling": "log"}},
                       "objective": {"metric": "train:loss", "regex": "loss=([0-9.eE+-]+)"}, "strategy": "Random",
                       "random_seed": 3, **tuning}}


def test_three_trials_best_is_the_best_logged_metric_and_only_rank_0_prints_it(tmp_path):
    """The same three trials, tracked: the tuning's MLflow run has one child run per trial."""
    spec = validate_spec({**local_spec(), "tracking": {"mlflow": {"experiment": "tiny-tune"}}})
    logs: dict[int, list[str]] = {}
    current = []

    def on_line(line):
        current.append(line)

    def on_trial(trial):
        logs[trial.number] = list(current)
        current.clear()

    result = api.tune_local(spec, trials=3, work_dir=tmp_path / "work", processes=2, on_trial=on_trial, on_line=on_line)
    assert [t.state for t in result.trials] == ["complete"] * 3, [t.failure for t in result.trials]
    pattern = re.compile("loss=([0-9.eE+-]+)")
    last = {}
    for number, lines in logs.items():
        values = [float(m.group(1)) for line in lines for m in pattern.finditer(line)]
        assert len(values) == STEPS // LOG_EVERY, f"one metric line per log step, from rank 0 only: {values}"
        last[number] = values[-1]
        assert result.trials[number].objective == last[number]
    assert len({t.values["lr"] for t in result.trials}) == 3
    assert result.best.number == min(last, key=last.get)
    assert result.plot is not None and result.plot.is_file()

    from mlflow.tracking import MlflowClient

    from smjobs.local.runner import local_tracking_uri

    client = MlflowClient(local_tracking_uri(tmp_path / "work"))
    runs = client.search_runs([client.get_experiment_by_name("tiny-tune").experiment_id])
    [parent] = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = sorted((r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id),
                      key=lambda r: r.info.run_name)
    assert len(runs) == 4 and len(children) == 3
    assert [float(r.data.params["lr"]) for r in children] == pytest.approx([t.values["lr"] for t in result.trials])
    assert parent.data.metrics["best_train:loss"] == pytest.approx(result.best.objective)
    assert parent.info.status == "FINISHED" and all(r.info.status == "FINISHED" for r in children)


def test_cli_tune_local_prints_a_table_the_best_trial_and_a_plot(tmp_path):
    spec_file = tmp_path / "tune.yaml"
    spec_file.write_text(yaml.safe_dump(local_spec(strategy="Grid", parameters={
        "lr": {"type": "categorical", "values": [0.001, 0.05]}})))
    done = subprocess.run([sys.executable, "-m", "smjobs.cli", "tune", str(spec_file), "--local", "--trials", "2",
                           "--processes", "1", "--work-dir", str(tmp_path / "work")], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "COLUMNS": "200"})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert done.stdout.count("complete") >= 4 and "best: trial" in done.stdout  # 2 lines and 2 table rows
    assert (tmp_path / "work" / "tuning.png").is_file()
    tried = {float(v) for v in re.findall(r"lr=([0-9.e-]+)", done.stdout)}
    assert tried == {0.001, 0.05}, "Grid tries every value"


def test_a_job_started_on_fewer_processes_than_declared_fails_loudly(tmp_path):
    from smjobs.spec.job import ENTRY_POINTS_DIR

    config = tmp_path / "input" / "config"
    config.mkdir(parents=True)
    (config / "hyperparameters.json").write_text(json.dumps({"sagemaker_mpi_num_of_processes_per_host": "4"}))
    done = subprocess.run([sys.executable, str(ENTRY_POINTS_DIR / "train.py"), "--model", "mlp", "--steps", "1"],
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "SAGEMAKER_BASE_DIR": str(tmp_path), "SM_HOSTS": '["algo-1"]'})
    assert done.returncode != 0
    assert "1 process(es) started, but the job declares 1 host(s) x 4 processes per host = 4" in done.stdout + done.stderr
    assert "declares 1 host(s) x 4" in (tmp_path / "output" / "failure").read_text()


def test_early_stopping_prunes_a_trial_that_lags_the_median(tmp_path):
    # Grid with seed 3 tries lr 0.04, 0.05, then 1e-7 (checked: the grid sampler's order for this seed), so the
    # hopeless third trial meets two finished ones and the median pruner stops it at its first report
    data = local_spec(strategy="Grid", random_seed=3, early_stopping="auto", parameters={
        "lr": {"type": "categorical", "values": [0.05, 0.04, 1e-7]}})
    data["hyperparameters"]["steps"] = 2000  # long enough that the stop lands mid-run
    spec = validate_spec(data)
    result = api.tune_local(spec, trials=3, work_dir=tmp_path / "work", processes=1)
    assert [t.values["lr"] for t in result.trials] == [0.04, 0.05, 1e-7]
    assert [t.state for t in result.trials] == ["complete", "complete", "pruned"]
    pruned = result.trials[2]
    assert len(pruned.intermediate) < 2000 // LOG_EVERY, "stopped before its last step"
    assert len(result.trials[0].intermediate) == 2000 // LOG_EVERY
    assert result.best.values["lr"] in (0.04, 0.05)
