"""The ``tuning`` section against SageMaker's documented limits (``catalog/tuning_limits.json``): at most 30
searched hyperparameters and 30 values per categorical, Grid over categorical parameters only and at most 750
combinations, Hyperband's resource bounds and no separate early stopping, trial and parallel-trial limits, a
metric to optimise with one capture group. ``check`` is empty for a spec without a tuning section.
"""

from __future__ import annotations

import re

from smjobs import catalog
from smjobs.errors import Problem
from smjobs.spec.job import JobSpec
from smjobs.spec.tuning import TunedParameter, grid_size, metric_definitions, objective_regex, tuning_name

TUNING_JOB_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,31}$")
TIMESTAMP_CHARS = len("-201231-235959")


def limits() -> dict:
    return catalog.tuning_limits()


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
