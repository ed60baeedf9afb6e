"""Tuning trials: the job each trial runs, whether a trial fits in GPU memory, and the corners of the space.
(SageMaker's limits on the section are a rule: ``smjobs.checks.tuning``.)

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

from dataclasses import dataclass, replace
from typing import Any

from smjobs.errors import Problem
from smjobs.spec.job import JobSpec
from smjobs.spec.tuning import TunedParameter, metric_definitions

KNOWN_AFFECTS = {"global_batch_size": "global_batch", "micro_batch_size": "micro_batch", "seq_len": "seq_len",
                 "d_model": "hidden", "n_layers": "layers", "n_heads": "heads", "vocab_size": "vocab"}
"""The bundled scripts' hyperparameters and what they are in the planner's model."""
GPT_KEYS = {"layers": "n_layers", "hidden": "d_model", "heads": "n_heads", "seq_len": "seq_len", "vocab": "vocab_size"}
DEFAULT_TRIALS = 10


def affects(name: str, parameter: TunedParameter) -> str | None:
    return parameter.affects or KNOWN_AFFECTS.get(name)


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
