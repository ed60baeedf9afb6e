"""``smjobs tune SPEC --local``: the same search space, searched on this machine with Optuna.

Optuna picks the points (TPE for Bayesian, random for Random, its grid sampler for Grid) and stops trials early
(Hyperband's pruner for Hyperband, the median pruner for ``early_stopping: auto``); smjobs writes no search
algorithm. Each trial is the job with the trial's values, validated like any spec and run under the container
contract (``smjobs.local.runner``); its objective is read from the log by the metric definition's regular expression, as
SageMaker reads it: every match is an intermediate value (for pruning), the last one is the trial's result. A
pruned trial is stopped as a spot interruption stops a job. Local trials are the smoke test of a search space:
they run one at a time, with few processes, on CPUs.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from smjobs.spec.job import JobSpec
from smjobs.spec.tuning import grid_size, objective_regex
from smjobs.tuning.tracking import create_parent_run
from smjobs.tuning.trials import Space, trial_data

from smjobs_runtime import TRACKING_ENV


class TrialFailed(RuntimeError):
    """A trial's run failed, or never printed the objective: recorded as failed, the search goes on."""


@dataclass
class Trial:
    number: int
    values: dict[str, Any]
    state: str
    """complete, pruned or failed."""
    objective: float | None = None
    intermediate: list[float] = field(default_factory=list)
    seconds: float = 0.0
    work_dir: str = ""
    failure: str = ""


@dataclass
class LocalTuning:
    trials: list[Trial]
    goal: str
    best: Trial | None
    plot: Path | None = None

    def table(self) -> list[dict[str, Any]]:
        return [{"trial": t.number, **t.values, "objective": t.objective, "state": t.state, "seconds": round(t.seconds, 1)}
                for t in self.trials]


def _sampler(spec: JobSpec, space: Space):
    import optuna

    t = spec.tuning
    if t.strategy == "Grid":
        return optuna.samplers.GridSampler({n: list(p.values) for n, p in space.parameters.items()}, seed=t.random_seed)
    if t.strategy == "Random":
        return optuna.samplers.RandomSampler(seed=t.random_seed)
    return optuna.samplers.TPESampler(seed=t.random_seed)


def _pruner(spec: JobSpec):
    import optuna

    t = spec.tuning
    if t.strategy == "Hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=t.hyperband.min_resource, max_resource=t.hyperband.max_resource)
    if t.early_stopping == "auto":
        return optuna.pruners.MedianPruner(n_startup_trials=2)
    return optuna.pruners.NopPruner()


def suggest(trial, name: str, p) -> Any:
    """The trial's value of ``p``, in Optuna's terms (log scaling as Optuna's log; reverse_log sampled as log of
    1 - x, as SageMaker's reverse logarithmic scale spreads values near 1)."""
    if p.type == "categorical":
        return trial.suggest_categorical(name, list(p.values))
    if p.type == "integer":
        return trial.suggest_int(name, int(p.min), int(p.max), log=p.scaling == "log")
    if p.scaling == "reverse_log":
        gap = trial.suggest_float(f"{name}__gap", 1 - p.max, 1 - p.min, log=True)
        trial.set_user_attr(name, 1 - gap)
        return 1 - gap
    return trial.suggest_float(name, p.min, p.max, log=p.scaling == "log")


def run_local_tuning(spec: JobSpec, space: Space, *, trials: int, work_dir: Path, processes: int | None = None,
                     on_trial: Callable[[Trial], None] | None = None, on_line: Callable[[str], None] | None = None) -> LocalTuning:
    """Run ``trials`` local trials of the (prepared) space; each in ``work_dir/trial-NNN``."""
    import optuna

    from smjobs.checks.validate import validate_spec
    from smjobs.local import runner as local
    from smjobs.local.stop import interrupt
    from smjobs.request.training import build_request

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    t = spec.tuning
    pattern = re.compile(objective_regex(spec))
    study = optuna.create_study(direction=t.objective.goal, sampler=_sampler(spec, space), pruner=_pruner(spec))
    done: list[Trial] = []
    tracking = _parent_run(spec, Path(work_dir))  # trials' runs are children of the tuning's run, in one store

    def objective(trial) -> float:
        values = {n: suggest(trial, n, p) for n, p in space.parameters.items()}
        job = validate_spec(trial_data(spec, values))
        request = build_request(job)
        folder = Path(work_dir) / f"trial-{trial.number:03d}"
        if folder.exists():
            shutil.rmtree(folder)
        layout = local.prepare(request, folder, processes or local.default_processes(request), fresh=True)
        record = Trial(trial.number, values, "running", work_dir=str(folder))
        done.append(record)
        toolkit: list = []

        def watch(line: str) -> None:
            if on_line:
                on_line(line)
            for match in pattern.finditer(line):
                try:
                    value = float(match.group(1))
                except ValueError:
                    continue
                trial.report(value, step=len(record.intermediate))
                record.intermediate.append(value)
                if record.state == "running" and trial.should_prune():
                    record.state = "pruned"
                    interrupt(toolkit[0])  # as a spot interruption: the ranks checkpoint and stop

        trial_env = {}
        if tracking is not None:
            trial_env[TRACKING_ENV] = json.dumps({**tracking["settings"], "run_name": f"{request.job_name}-trial-{trial.number:03d}"})
        try:
            result = local.launch(request, layout, on_line=watch, on_start=toolkit.append, env=trial_env)
            record.seconds = result.duration_s
            if record.state == "pruned":
                record.objective = record.intermediate[-1] if record.intermediate else None
                raise optuna.TrialPruned()
            if result.exit_code != 0 or not record.intermediate:
                record.state = "failed"
                record.failure = result.status if result.exit_code else "the objective metric never appeared in the log"
                raise TrialFailed(record.failure)
            record.state, record.objective = "complete", record.intermediate[-1]
            return record.objective
        finally:
            if on_trial:
                on_trial(record)

    # Grid: every combination once, then Optuna's grid sampler ends the study
    count = min(trials, grid_size(space.parameters)) if t.strategy == "Grid" else trials
    study.optimize(objective, n_trials=count, catch=(TrialFailed,))
    complete = [r for r in done if r.state == "complete"]
    pick = min if t.objective.goal == "minimize" else max
    best = pick(complete, key=lambda r: r.objective) if complete else None
    if tracking is not None:
        client, run_id = tracking["client"], tracking["settings"]["parent_run_id"]
        if best is not None:
            client.log_metric(run_id, f"best_{t.objective.metric}", best.objective)
            client.set_tag(run_id, "best_trial", str(best.number))
        client.set_terminated(run_id, "FINISHED" if best is not None else "FAILED")
    return LocalTuning(done, t.objective.goal, best)


def _parent_run(spec: JobSpec, work_dir: Path) -> dict | None:
    """The tuning's own MLflow run, when the spec has a tracking section: in the spec's tracking_uri, or a SQLite
    store in ``work_dir`` (SageMaker's servers are not called from a local run); the settings each trial's script
    gets (``smjobs_runtime.start_tracking``) and the client. None without tracking."""
    if spec.tracking is None:
        return None
    from smjobs.local.runner import local_tracking_uri

    mlflow = spec.tracking.mlflow
    uri, artifacts = mlflow.tracking_uri, None
    if not uri:
        work_dir.mkdir(parents=True, exist_ok=True)
        uri, artifacts = local_tracking_uri(work_dir), (work_dir / "mlartifacts").resolve().as_uri()
    name = mlflow.experiment or spec.name
    client, run_id = create_parent_run(uri, name, mlflow.run_name or f"{spec.name}-tuning", {
        "strategy": spec.tuning.strategy, "objective": f"{spec.tuning.objective.goal} {spec.tuning.objective.metric}"},
        artifact_location=artifacts)
    settings = {"tracking_uri": uri, "experiment": name, "artifact_location": artifacts, "parent_run_id": run_id}
    return {"client": client, "settings": settings}


def plot(result: LocalTuning, spec: JobSpec, path: Path) -> Path:
    """The objective against trial number (best so far drawn as a line) and against each tuned parameter."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    names = list(spec.tuning.parameters)
    fig, axes = plt.subplots(1, 1 + len(names), figsize=(4 * (1 + len(names)), 3.2), squeeze=False)
    scored = [t for t in result.trials if t.objective is not None]
    ax = axes[0][0]
    colors = {"complete": "#1f77b4", "pruned": "#ff7f0e"}
    for state, color in colors.items():
        pts = [t for t in scored if t.state == state]
        ax.scatter([t.number for t in pts], [t.objective for t in pts], c=color, label=state, s=24)
    pick = min if result.goal == "minimize" else max
    best, line = None, []
    for t in result.trials:
        if t.state == "complete":
            best = t.objective if best is None else pick(best, t.objective)
        line.append(best)
    ax.step(range(len(line)), [b if b is not None else float("nan") for b in line], where="post", c="#2ca02c", label="best so far")
    ax.set(xlabel="trial", ylabel=spec.tuning.objective.metric, title="objective by trial")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(fontsize=7)
    for ax, name in zip(axes[0][1:], names, strict=True):
        p = spec.tuning.parameters[name]
        for state, color in colors.items():
            pts = [t for t in scored if t.state == state]
            xs = [t.values[name] if p.type != "categorical" else str(t.values[name]) for t in pts]
            ax.scatter(xs, [t.objective for t in pts], c=color, s=24)
        if p.scaling == "log":
            ax.set_xscale("log")
        ax.set(xlabel=name, title=f"objective by {name}")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    result.plot = path
    return path
