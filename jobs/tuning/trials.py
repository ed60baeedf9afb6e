"""Tuning jobs: SageMaker's limits, the search space narrowed to what fits in GPU memory, and the price.

- ``check``: the ``tuning`` section against SageMaker's documented limits (``catalog/tuning_limits.json``): at most
  30 searched hyperparameters and 30 values per categorical, Grid over categorical parameters only and at most 750
  combinations, Hyperband's resource bounds and no separate early stopping, trial and parallel-trial limits, a
  metric to optimise with one capture group.
- ``trial_data``: the job one trial runs (the spec with the trial's values), so every trial is a spec that the
  ordinary validation accepts: ``prepare`` validates the space's corners that way.
- ``narrow``: memory grows with batch size, width, depth and sequence length, so the planner (one instance type
  and count at a time) finds the largest value of each memory parameter that fits with the others at their
  largest: every point of the narrowed space fits, by construction. Instance configurations the job cannot run on
  (another GPU count per host than the job's processes, degrees that do not divide, memory) are removed too.
- ``estimate``: a trial's cost at the most expensive corner (the planner's hours, or max_run_s as a bound when the
  model is not described) times the trials; a dollar budget lowers the trials to what it pays for.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from typing import Any

from smjobs import catalog
from smjobs.errors import Problem
from smjobs.spec.job import JobSpec
from smjobs.spec.tuning import TunedParameter

KNOWN_AFFECTS = {"global_batch_size": "global_batch", "micro_batch_size": "micro_batch", "seq_len": "seq_len",
                 "d_model": "hidden", "n_layers": "layers", "n_heads": "heads", "vocab_size": "vocab"}
"""The bundled scripts' hyperparameters and what they are in the planner's model."""
GPT_KEYS = {"layers": "n_layers", "hidden": "d_model", "heads": "n_heads", "seq_len": "seq_len", "vocab": "vocab_size"}
TUNING_JOB_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,31}$")
DEFAULT_TRIALS = 10
TIMESTAMP_CHARS = len("-201231-235959")


def limits() -> dict:
    return catalog.tuning_limits()


def affects(name: str, parameter: TunedParameter) -> str | None:
    return parameter.affects or KNOWN_AFFECTS.get(name)


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


# ----- rules ---------------------------------------------------------------------------------------------------
def _check_parameter(name: str, p: TunedParameter) -> list[Problem]:
    at, out = f"tuning.parameters.{name}", []
    if name.startswith("sagemaker_") or name.startswith("_"):
        out.append(Problem(at, "names starting with 'sagemaker_' or '_' are SageMaker's.", "tune one of the script's own arguments."))
    if p.type == "categorical":
        if p.min is not None or p.max is not None:
            out.append(Problem(at, "a categorical parameter has values, not min and max.", "remove min and max, or make it integer or continuous."))
        if not p.values:
            out.append(Problem(f"{at}.values", "a categorical parameter needs its values.", "list them: values: [a, b]."))
        elif len(p.values) > limits()["values_per_categorical"]:
            out.append(Problem(f"{at}.values", f"has {len(p.values)} values; SageMaker takes at most {limits()['values_per_categorical']}.",
                               "keep the likeliest 30, or make it an integer or continuous range."))
        elif len({str(v) for v in p.values}) != len(p.values):
            out.append(Problem(f"{at}.values", "repeats a value.", "list each value once."))
        if p.scaling != "auto":
            out.append(Problem(f"{at}.scaling", "categorical values are not scaled.", "remove scaling."))
        return out
    if p.values:
        out.append(Problem(f"{at}.values", f"a {p.type} parameter has min and max, not values.", "remove values, or make it categorical."))
    if p.min is None or p.max is None:
        return out + [Problem(at, f"a {p.type} parameter needs min and max.", "give both.")]
    if p.type == "integer" and (p.min != int(p.min) or p.max != int(p.max)):
        out.append(Problem(at, f"an integer range needs whole bounds, not {p.min:g} and {p.max:g}.", "round them, or make it continuous."))
    if p.min >= p.max:
        out.append(Problem(at, f"min {p.min:g} is not below max {p.max:g}.", "give a range, or fix the value as a hyperparameter."))
    if p.scaling == "log" and p.min <= 0:
        out.append(Problem(f"{at}.scaling", f"log scaling needs min > 0 (is {p.min:g}).", "raise min, or use linear scaling."))
    if p.scaling == "reverse_log":
        if p.type == "integer":
            out.append(Problem(f"{at}.scaling", "reverse_log applies to continuous ranges only.", "use linear or log."))
        elif not (0 <= p.min and p.max < 1):
            out.append(Problem(f"{at}.scaling", f"reverse_log needs 0 <= min and max < 1 (is {p.min:g} to {p.max:g}).",
                               "use log or linear scaling."))
    return out


def check(spec: JobSpec) -> list[Problem]:
    """The tuning section against SageMaker's documented limits; empty without one."""
    t = spec.tuning
    if t is None:
        return []
    lim, out = limits(), []
    if spec.inference is not None:
        out.append(Problem("tuning", "an inference job has nothing to tune.", "tune the training job that makes the model."))
    if not t.parameters:
        out.append(Problem("tuning.parameters", "is empty.", "name at least one hyperparameter to search."))
    if len(t.parameters) > lim["searched_hyperparameters"]:
        out.append(Problem("tuning.parameters", f"has {len(t.parameters)}; SageMaker searches at most "
                           f"{lim['searched_hyperparameters']}.", "fix the least important ones as hyperparameters."))
    for name, p in t.parameters.items():
        out += _check_parameter(name, p)
    regex = objective_regex(spec)
    if regex is None:
        known = ", ".join(m.name for m in spec.metric_definitions) or "none"
        out.append(Problem("tuning.objective.metric", f"{t.objective.metric!r} is not a metric definition (have: {known}).",
                           "give tuning.objective.regex, or add it to metric_definitions."))
    else:
        try:
            groups = re.compile(regex).groups
        except re.error as exc:
            groups = None
            out.append(Problem("tuning.objective.regex", f"{regex!r} is not a regular expression: {exc}.", "fix it."))
        if groups is not None and groups != 1:
            out.append(Problem("tuning.objective.regex", f"{regex!r} has {groups} capture groups; SageMaker reads the first "
                               "and smjobs needs exactly one.", "capture the value alone, e.g. loss=([0-9.eE+-]+)."))
    if len(metric_definitions(spec)) > lim["metrics_per_tuning_job"]:
        out.append(Problem("metric_definitions", f"a tuning job takes at most {lim['metrics_per_tuning_job']} metrics.", "drop some."))
    cap = lim["trials_per_tuning_job"][t.strategy]
    if t.strategy == "Grid":
        scalar = [n for n, p in t.parameters.items() if p.type != "categorical"]
        if scalar:
            out.append(Problem("tuning.strategy", f"Grid searches categorical parameters only; {', '.join(scalar)} "
                               f"{'is' if len(scalar) == 1 else 'are'} not.", "list their values as categorical, or use Bayesian or Random."))
        elif grid_size(t.parameters) > cap:
            out.append(Problem("tuning.parameters", f"the grid has {grid_size(t.parameters)} combinations; SageMaker runs at most {cap}.",
                               "drop values, or use Bayesian or Random."))
    if t.max_trials is not None and t.max_trials > cap:
        more = lim["trials_per_tuning_job_with_increase"].get(t.strategy)
        out.append(Problem("tuning.max_trials", f"is {t.max_trials}; a {t.strategy} tuning job runs at most {cap} trials"
                           + (f" ({more} with a quota increase)." if more else "."), f"lower it to {cap}."))
    if t.max_parallel_trials > lim["parallel_trials_max"]:
        out.append(Problem("tuning.max_parallel_trials", f"is {t.max_parallel_trials}; at most {lim['parallel_trials_max']} trials run at once.",
                           f"lower it to {lim['parallel_trials_max']}."))
    if t.strategy == "Hyperband":
        if t.hyperband is None:
            out.append(Problem("tuning.hyperband", "Hyperband needs its resource bounds.", "add hyperband: {min_resource: 1, max_resource: <epochs or log steps>}."))
        elif t.hyperband.min_resource > t.hyperband.max_resource or t.hyperband.max_resource > lim["hyperband_max_resource"]:
            out.append(Problem("tuning.hyperband", f"needs min_resource <= max_resource <= {lim['hyperband_max_resource']}.", "fix the bounds."))
        if t.early_stopping != "off":
            out.append(Problem("tuning.early_stopping", "must be off with Hyperband, which stops trials itself.", "remove early_stopping."))
    elif t.hyperband is not None:
        out.append(Problem("tuning.hyperband", f"applies to strategy Hyperband, not {t.strategy}.", "remove it, or set strategy: Hyperband."))
    if t.completion is not None and t.completion.target is None and t.completion.trials_without_improvement is None \
            and not t.completion.stop_on_convergence:
        out.append(Problem("tuning.completion", "sets no criterion.", "give target, trials_without_improvement or stop_on_convergence."))
    for i, parent in enumerate(t.warm_start.parents if t.warm_start else ()):
        if not TUNING_JOB_NAME.fullmatch(parent):
            out.append(Problem(f"tuning.warm_start.parents.{i}", f"{parent!r} is not a tuning job name.", "give the name of an earlier tuning job."))
    name = tuning_name(spec)
    if len(name) + TIMESTAMP_CHARS > lim["tuning_job_name_chars"]:
        out.append(Problem("tuning.name", f"the tuning job would be named {name!r} plus a timestamp, over SageMaker's "
                           f"{lim['tuning_job_name_chars']} characters.", f"set tuning.name to at most {lim['tuning_job_name_chars'] - TIMESTAMP_CHARS} characters."))
    if spec.compute.instance_preferences:
        out.append(Problem("compute.instance_preferences", "tuning jobs take instance_configs instead.", "move them to tuning.instance_configs."))
    return out


# ----- trials --------------------------------------------------------------------------------------------------
def trial_data(spec: JobSpec, values: dict[str, Any], *, instance: tuple[str, int] | None = None) -> dict[str, Any]:
    """The spec data one trial runs: the tuned hyperparameters set, the planner's model following the memory
    parameters, the objective among the metric definitions, and (``instance``) another instance type and count.
    The tuning section is dropped."""
    data = spec.model_dump(exclude_none=True, exclude={"tuning"})
    hps, plan = dict(data.get("hyperparameters", {})), dict(data.get("plan", {}))
    model = dict(plan["model"]) if "model" in plan else None
    for name, value in values.items():
        hps[name] = value
        kind = affects(name, spec.tuning.parameters[name]) if spec.tuning and name in spec.tuning.parameters else None
        if kind == "micro_batch":
            plan["micro_batch"] = int(value)
        elif kind == "global_batch":
            plan["global_batch"] = int(value)
        elif kind in GPT_KEYS and model is not None:
            model[kind] = int(value)
            model.pop("parameters", None)  # counted again from the new shape
    if model is not None:
        plan["model"] = model
    data["hyperparameters"], data["plan"] = hps, plan
    if spec.tuning is not None:  # the objective is one of the trial's metrics
        data["metric_definitions"] = [{"name": m["Name"], "regex": m["Regex"]} for m in metric_definitions(spec)]
    if instance is not None:
        data["compute"] = {**data["compute"], "instance_type": instance[0], "instance_count": instance[1]}
    return data


def derived_micro_batch(spec: JobSpec, variant: JobSpec) -> JobSpec:
    """When the spec does not set plan.micro_batch, a data-parallel job's per-GPU batch follows its global batch
    (global batch / (processes x grad_accum_steps)), as the bundled train.py runs it: ``variant`` (a trial of
    ``spec``) with that micro-batch."""
    if "micro_batch" in spec.plan.model_fields_set or spec.distribution.type not in ("ddp", "smddp", "fsdp"):
        return variant
    from smjobs.request.training import processes_per_host

    hps = variant.hyperparameters
    global_batch = variant.plan.global_batch or hps.get("global_batch_size")
    if not isinstance(global_batch, int) or isinstance(global_batch, bool):
        return variant
    world = processes_per_host(variant) * variant.compute.instance_count
    accum = hps.get("grad_accum_steps", 1) if isinstance(hps.get("grad_accum_steps", 1), int) else 1
    micro = max(1, global_batch // (world * max(1, accum)))
    return variant.model_copy(update={"plan": variant.plan.model_copy(update={"micro_batch": micro})})


@dataclass(frozen=True)
class Fit:
    fits: bool | None
    """None: the job's model is not described, so memory cannot be checked."""
    reason: str = ""
    hours: float | None = None
    usd: float | None = None
    """One trial's cost at this point, from the planner (None when not planned)."""


def fit(spec: JobSpec, values: dict[str, Any], instance: tuple[str, int], region: str | None) -> Fit:
    """Whether the trial with ``values`` on ``instance`` fits in GPU memory, and what it costs."""
    from smjobs.planner.cost import Assumptions
    from smjobs.planner.plan import plan
    from smjobs.planner.resolve import constraints, pinned_strategy, workload

    variant = derived_micro_batch(spec, JobSpec.model_validate(trial_data(spec, values, instance=instance)))
    load, _ = workload(variant, defaults=True)
    if load is None:
        return Fit(None, "the model is not described (plan.model), so memory is not checked")
    if load.recompute is None:
        load = replace(load, recompute="none")
    fixed = replace(constraints(variant, region), instance_types=(instance[0],), instance_count=instance[1],
                    max_usd_per_hour=None, families=(), max_hours=None)
    found = plan(load, pinned_strategy(variant), fixed, Assumptions(mfu=variant.plan.mfu), keep=1)
    if found.choice is not None:
        return Fit(True, hours=found.choice.hours, usd=found.choice.job_usd)
    rejection = next((r for r in found.rejections if r.instance_type == instance[0]), None)
    if rejection is not None and rejection.kind == "memory":
        return Fit(False, rejection.reason)
    return Fit(None, rejection.reason if rejection else "the planner found no layout")


@dataclass(frozen=True)
class Removal:
    what: str
    """``tuning.parameters.<name>`` or ``tuning.instance_configs.<i>``."""
    before: str
    after: str
    reason: str

    def __str__(self) -> str:
        return f"{self.what}: {self.before} -> {self.after} ({self.reason})"


@dataclass(frozen=True)
class Space:
    """The search space after narrowing, with what was removed and why."""

    parameters: dict[str, TunedParameter]
    configs: tuple[tuple[str, int], ...]
    """(instance type, count) pairs trials may run on; the first is the job's own unless it was removed."""
    removed: tuple[Removal, ...] = ()
    problems: tuple[Problem, ...] = ()
    notes: tuple[str, ...] = ()
    corner_usd: float | None = None
    """A trial's planner cost at the most expensive corner on the dearest configuration."""
    corner_hours: float | None = None


def _largest(p: TunedParameter) -> Any:
    return max(p.values, key=float) if p.type == "categorical" else (int(p.max) if p.type == "integer" else p.max)


def numeric(values) -> bool:
    return all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)


def corner(parameters: dict[str, TunedParameter], only: set[str] | None = None) -> dict[str, Any]:
    """Every parameter (of ``only``) at its largest value: the point that needs the most memory and time."""
    return {n: _largest(p) for n, p in parameters.items() if (only is None or n in only)
            and (p.type != "categorical" or numeric(p.values))}
