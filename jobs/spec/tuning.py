"""The ``tuning`` section of a job spec: a hyperparameter search over the job (``smjobs tune``).

The section says what to search (parameters), what for (objective), how (strategy) and within which limits
(trials, parallel trials, early stopping, completion criteria, warm start, dollars). ``smjobs.checks.tuning`` checks it
against SageMaker's limits, narrows it to what fits in GPU memory and prices it; ``smjobs.tuning.request`` turns it
into the CreateHyperParameterTuningJob request; ``smjobs.tuning.search`` runs the same search here with Optuna.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field

from smjobs.spec.field_docs import describe_fields

if TYPE_CHECKING:
    from smjobs.spec.job import JobSpec

MEMORY_FIELDS = ("micro_batch", "global_batch", "seq_len", "hidden", "layers", "heads", "vocab")
"""What a tuned parameter can stand for in the planner's model of the job (``TunedParameter.affects``)."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)


class TunedParameter(_Frozen):
    """One hyperparameter the search varies (the script receives it as ``--name value``, like any other)."""

    type: Literal["continuous", "integer", "categorical"]
    """continuous: real numbers in [min, max]; integer: whole numbers in [min, max]; categorical: one of values."""
    min: float | None = None
    """Smallest value (continuous and integer)."""
    max: float | None = None
    """Largest value (continuous and integer)."""
    values: tuple[str | int | float | bool, ...] = ()
    """The choices (categorical): at most 30."""
    scaling: Literal["auto", "linear", "log", "reverse_log"] = "auto"
    """How values are sampled: log for learning rates and other quantities spanning decades (min > 0); reverse_log
    for values close to 1 from below, such as momentum (max < 1)."""
    affects: Literal["micro_batch", "global_batch", "seq_len", "hidden", "layers", "heads", "vocab"] | None = None
    """What the parameter is in the planner's model of the job, so that values that cannot fit in GPU memory are
    removed before any trial runs. The bundled scripts' names are known (global_batch_size, seq_len, d_model,
    n_layers, n_heads, vocab_size); for your own script's batch size say micro_batch (per GPU) or global_batch."""


class Objective(_Frozen):
    """The metric the search optimises, read from the training log."""

    metric: str
    """Metric name, e.g. ``train:loss``: one of metric_definitions, or defined here with ``regex``."""
    regex: str | None = None
    """Regular expression with one capture group for the value; by default the metric definition's."""
    goal: Literal["minimize", "maximize"] = "minimize"
    """Whether a lower (loss) or a higher (accuracy) value is better."""


class Hyperband(_Frozen):
    """Hyperband's resource: what a trial's progress is counted in (epochs or steps, as the script logs it)."""

    min_resource: int = Field(ge=1)
    """A trial is not stopped before this many resource units."""
    max_resource: int = Field(ge=1)
    """A trial stops once it reaches this many (at most 20,000)."""


class Completion(_Frozen):
    """When the whole tuning job stops early (``TuningJobCompletionCriteria``)."""

    target: float | None = None
    """Stop once a trial reaches this objective value."""
    trials_without_improvement: int | None = Field(default=None, ge=3)
    """Stop after this many trials in a row that do not improve the best objective (at least 3)."""
    stop_on_convergence: bool = False
    """Stop when SageMaker detects that the search has converged."""


class WarmStart(_Frozen):
    """Start from what earlier tuning jobs learned."""

    parents: tuple[str, ...] = Field(min_length=1, max_length=5)
    """Names of 1 to 5 earlier tuning jobs."""
    type: Literal["identical_data_and_algorithm", "transfer_learning"] = "identical_data_and_algorithm"
    """identical_data_and_algorithm: same data and script, only the search differs; transfer_learning: otherwise."""


class InstanceConfig(_Frozen):
    """A {type, count} trials may run on (``HyperParameterTuningResourceConfig.InstanceConfigs``)."""

    instance_type: str
    """A GPU training instance type, e.g. ``ml.g6e.12xlarge``."""
    instance_count: int = Field(default=1, ge=1, le=10_000)
    """Instances per trial."""


class TuningSettings(_Frozen):
    """A hyperparameter tuning job over this training job: each trial is the job with some hyperparameters set."""

    parameters: dict[str, TunedParameter]
    """The search space, by hyperparameter name (at most 30)."""
    objective: Objective
    """The metric the search optimises and its direction."""
    strategy: Literal["Bayesian", "Random", "Hyperband", "Grid"] = "Bayesian"
    """Bayesian (locally: Optuna's TPE), Random, Hyperband (successive halving on the logged objective) or Grid
    (every combination of categorical values)."""
    max_trials: int | None = Field(default=None, ge=1)
    """Trials in all; by default 10, or every combination with Grid. A dollar budget may lower it."""
    max_parallel_trials: int = Field(default=1, ge=1)
    """Trials running at once (SageMaker's default quota: 10)."""
    early_stopping: Literal["off", "auto"] = "off"
    """auto: SageMaker stops trials whose objective lags the median of earlier trials at the same point (locally:
    Optuna's median pruner). Not with Hyperband, which stops trials itself."""
    hyperband: Hyperband | None = None
    """With strategy Hyperband: its resource bounds."""
    completion: Completion | None = None
    """When the whole tuning job may stop before max_trials."""
    warm_start: WarmStart | None = None
    """Earlier tuning jobs whose trials this search starts from."""
    max_usd: float | None = Field(default=None, gt=0)
    """Budget for all trials: maximum trials is lowered to what it pays for at the estimated trial cost."""
    max_runtime_s: int | None = Field(default=None, ge=120, le=30 * 24 * 3600)
    """Wall-clock limit of the whole tuning job (at most 30 days)."""
    random_seed: int | None = Field(default=None, ge=0)
    """Makes the search's choices repeatable."""
    instance_configs: tuple[InstanceConfig, ...] = ()
    """Instance types and counts trials may run on, tried in order: each is checked for memory and degrees, and
    removed with its reason when the job cannot run there."""
    name: str | None = Field(default=None, max_length=16)
    """Base name of the tuning job (at most 16 characters: a timestamp follows, within SageMaker's 32); by default
    the job's name when it is short enough."""


# ----- what the section implies ------------------------------------------------------------------------------
def grid_size(parameters: dict[str, TunedParameter]) -> int:
    return math.prod(len(p.values) for p in parameters.values())


def tuning_name(spec: JobSpec) -> str:
    """The tuning job's base name: tuning.name, else the job's name (a timestamp follows)."""
    return spec.tuning.name or spec.name


def objective_regex(spec: JobSpec) -> str | None:
    objective = spec.tuning.objective
    if objective.regex:
        return objective.regex
    return next((m.regex for m in spec.metric_definitions if m.name == objective.metric), None)


def metric_definitions(spec: JobSpec) -> list[dict[str, str]]:
    """The job's metric definitions plus the objective's, when it is defined in the tuning section."""
    out = [{"Name": m.name, "Regex": m.regex} for m in spec.metric_definitions]
    if not any(m["Name"] == spec.tuning.objective.metric for m in out) and spec.tuning.objective.regex:
        out.append({"Name": spec.tuning.objective.metric, "Regex": spec.tuning.objective.regex})
    return out


describe_fields(__name__)  # each field's docstring is its description
