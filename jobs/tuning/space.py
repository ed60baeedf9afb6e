"""The tuning space made safe and priced before anything is launched: ``prepare(spec)``.

1. Instance configurations: each must run the job as specified (the same processes per host, since that is a
   static hyperparameter of every trial, and degrees that fit) or it is removed, naming why.
2. Memory: parameters are taken in the order the spec lists them. The largest value of each that fits on every
   remaining configuration is found by bisection (memory grows with each), with the parameters before it at their
   (narrowed) largest and those after it at their smallest. The last one is so sized with all others at their
   largest: the narrowed space's largest corner fits, and so does every point. Earlier parameters keep more of
   their range. Categorical values that do not fit are dropped.
3. Validation: the space's smallest and largest corners are validated as ordinary jobs (the script must accept
   every tuned name and value type); problems are reported under ``tuning.parameters``.
4. Cost: a trial at the largest corner, priced by the planner (or bounded by max_run_s when the model is not
   described), times the trials; ``tuning.max_usd`` lowers the trials to what it pays for.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from smjobs import catalog
from smjobs.errors import Problem, SpecError
from smjobs.request.training import processes_per_host, source_dir
from smjobs.spec.job import JobSpec
from smjobs.spec.tuning import TunedParameter, grid_size
from smjobs.tuning.trials import (
    DEFAULT_TRIALS,
    Removal,
    Space,
    affects,
    corner,
    fit,
    numeric,
    trial_data,
)

BISECTION_STEPS = 24


def _configs(spec: JobSpec, region: str | None) -> tuple[list[tuple[str, int]], list[Removal], list[Problem]]:
    """The instance configurations trials may use, each checked as the job itself would be."""
    from smjobs.checks.validate import check_spec

    t = spec.tuning
    wanted = [(spec.compute.instance_type, spec.compute.instance_count)]
    wanted += [(c.instance_type, c.instance_count) for c in t.instance_configs if (c.instance_type, c.instance_count) not in wanted]
    if not t.instance_configs:
        return wanted, [], []
    ppn, kept, removed = processes_per_host(spec), [], []
    for i, (kind, count) in enumerate(wanted):
        at = "compute" if i == 0 else f"tuning.instance_configs.{i - 1}"
        instance = catalog.instances().get(kind)
        if instance is None:
            removed.append(Removal(at, f"{count} x {kind}", "removed", "not a GPU training type in the catalog"))
            continue
        if instance.gpu_count != ppn:
            removed.append(Removal(at, f"{count} x {kind}", "removed", f"{instance.gpu_count} GPUs per instance, but every "
                                   f"trial starts {ppn} processes per host (a static hyperparameter)"))
            continue
        problems = check_spec(JobSpec.model_validate(trial_data(spec, {}, instance=(kind, count))), region=region)
        if problems:
            removed.append(Removal(at, f"{count} x {kind}", "removed", problems[0].render()))
            continue
        kept.append((kind, count))
    problems = [] if kept else [Problem("tuning.instance_configs", "no configuration can run the job: "
                                        + "; ".join(str(r) for r in removed) + ".", "fix the job or list other instances.")]
    return kept, removed, problems


def _fits_everywhere(spec, values, configs, region):
    """(fits on every config or None when unknown, the first failure's reason)."""
    unknown = False
    for config in configs:
        result = fit(spec, values, config, region)
        if result.fits is False:
            return False, f"{config[1]} x {config[0]}: {result.reason}"
        unknown |= result.fits is None
    return (None if unknown else True), ""


def _narrow_one(spec, name: str, p: TunedParameter, others: dict[str, Any], configs, region) -> tuple[TunedParameter | None, str]:
    """The parameter narrowed to what fits with ``others`` at their largest, and the reason (empty: unchanged)."""
    def ok(value):
        return _fits_everywhere(spec, {**others, name: value}, configs, region)

    if p.type == "categorical":
        kept, why = [], ""
        for value in p.values:
            fits, reason = ok(value)
            if fits is False:
                why = why or f"{name}={value} does not fit: {reason}"
            else:
                kept.append(value)
        if len(kept) == len(p.values):
            return p, ""
        return (p.model_copy(update={"values": tuple(kept)}) if kept else None), why
    top = int(p.max) if p.type == "integer" else p.max
    fits, reason = ok(top)
    if fits is not False:
        return p, ""
    low = int(p.min) if p.type == "integer" else p.min
    lowest_fits, lowest_reason = ok(low)
    if lowest_fits is False:
        return None, f"even {name}={low:g} does not fit: {lowest_reason}"
    good, bad = low, top
    for _ in range(BISECTION_STEPS):
        if (p.type == "integer" and bad - good <= 1) or (p.type == "continuous" and bad - good <= 1e-6 * abs(bad)):
            break
        middle = (good + bad) // 2 if p.type == "integer" else (good + bad) / 2
        if ok(middle)[0] is False:
            bad = middle
        else:
            good = middle
    if p.type == "continuous":
        good = float(f"{good:.4g}") if float(f"{good:.4g}") <= good else good
    return p.model_copy(update={"max": float(good)}), f"{name}={top:g} does not fit: {reason}"


@dataclass(frozen=True)
class Estimate:
    trials: int
    """Trials after the budget cap."""
    asked_trials: int
    trial_usd: float | None
    trial_hours: float | None
    basis: str
    """How the trial cost was found: the planner, or the max_run_s bound."""
    capped: bool = False

    @property
    def total_usd(self) -> float | None:
        return None if self.trial_usd is None else self.trial_usd * self.trials


def estimate(spec: JobSpec, space: Space, region: str | None) -> tuple[Estimate, list[Problem]]:
    t = spec.tuning
    asked = t.max_trials or (grid_size(space.parameters) if t.strategy == "Grid" else DEFAULT_TRIALS)
    usd, hours, basis = space.corner_usd, space.corner_hours, "planner (largest corner)"
    if usd is None:
        prices = catalog.prices()
        worst = []
        for kind, count in space.configs:
            price = prices.price(kind, region)
            if price is not None:  # on-demand, also under spot: a bound
                worst.append(price.usd_per_hour * count * spec.compute.max_run_s / 3600)
        usd = max(worst) if worst and len(worst) == len(space.configs) else None
        hours, basis = spec.compute.max_run_s / 3600, "max_run_s bound (the model is not described, plan.model)"
    if t.max_usd is None:
        return Estimate(asked, asked, usd, hours, basis), []
    if usd is None:
        return Estimate(asked, asked, None, hours, basis), [Problem("tuning.max_usd", "a budget needs a trial price, and "
                                                                    "an instance type here has none.", "use a priced type, or remove max_usd.")]
    affordable = int(t.max_usd // usd) if usd > 0 else asked
    if affordable < 1:
        fix = ("raise the budget, lower compute.max_run_s (a trial is priced at its time limit), or describe the model "
               "(plan.model) so that the planner prices a trial" if space.corner_usd is None else
               "raise the budget, or make trials cheaper (fewer steps, smaller ranges, cheaper instances)")
        return Estimate(0, asked, usd, hours, basis, True), [Problem("tuning.max_usd", f"${t.max_usd:,.2f} does not pay for one "
                                                                     f"trial (${usd:,.2f} each, {basis}).", fix + ".")]
    return Estimate(min(asked, affordable), asked, usd, hours, basis, affordable < asked), []


def prepare(spec: JobSpec, region: str | None = None) -> tuple[Space, Estimate]:
    """The narrowed, validated and priced space of a spec with a tuning section; raises SpecError."""
    from smjobs.checks.validate import check_spec

    t = spec.tuning
    configs, removed, problems = _configs(spec, region)
    if problems:
        raise SpecError(problems)
    parameters = dict(t.parameters)
    parameters, dropped, problems = _divisible_batches(spec, parameters, configs)
    removed += dropped
    order = [n for n, p in parameters.items() if affects(n, p)]
    memory = set(order)
    notes = []
    for i, name in enumerate(order):
        p = parameters[name]
        if p.type == "categorical" and not numeric(p.values):
            problems.append(Problem(f"tuning.parameters.{name}", "is a memory parameter with values that are not numbers.",
                                    "give numbers, or remove affects."))
            continue
        # the parameters before this one at their (narrowed) largest, those after it at their smallest
        others = {**_smallest({n: parameters[n] for n in memory - {name}}), **corner(parameters, set(order[:i]))}
        narrowed, why = _narrow_one(spec, name, p, others, configs, region)
        if narrowed is None:
            problems.append(Problem(f"tuning.parameters.{name}", f"no value fits in GPU memory: {why}.",
                                    "lower the other memory parameters, shard more (fsdp), or use bigger instances."))
            continue
        if narrowed is not p:
            before = _describe(p)
            parameters[name] = narrowed
            removed.append(Removal(f"tuning.parameters.{name}", before, _describe(narrowed), why))
    if problems:
        raise SpecError(problems)
    top = corner(parameters)
    checked = [fit(spec, top, c, region) for c in configs]
    if memory and any(f.fits is None for f in checked):
        notes.append(next(f.reason for f in checked if f.fits is None))
    priced = [f for f in checked if f.usd is not None]
    dearest = max(priced, key=lambda f: f.usd) if len(priced) == len(checked) and priced else None
    space = Space(parameters, tuple(configs), tuple(removed), (), tuple(notes),
                  dearest.usd if dearest else None, dearest.hours if dearest else None)
    for label, point in (("smallest", _smallest(parameters)), ("largest", top)):
        for problem in check_spec(JobSpec.model_validate(trial_data(spec, point)), region=region):
            name = problem.path.removeprefix("hyperparameters.")
            path = f"tuning.parameters.{name}" if name in parameters else problem.path
            problems.append(Problem(path, f"the {label} trial: {problem.message}", problem.fix))
    found, budget = estimate(spec, space, region)
    problems += budget
    if problems:
        raise SpecError(list({p.render(): p for p in problems}.values()))
    return space, found


def _divisible_batches(spec: JobSpec, parameters: dict[str, TunedParameter], configs):
    """The bundled train.py splits global_batch_size evenly over its data-parallel processes (and gradient
    accumulation steps): values that do not divide are dropped, and an integer range, which would mostly give such
    values, is refused with the values that work."""
    from smjobs.spec.job import ENTRY_POINTS_DIR

    p = parameters.get("global_batch_size")
    bundled = spec.entry_point == "train.py" and source_dir(spec) == ENTRY_POINTS_DIR
    if p is None or not bundled or spec.distribution.type not in ("ddp", "smddp", "fsdp"):
        return parameters, [], []
    accum = spec.hyperparameters.get("grad_accum_steps", 1)
    step = math.lcm(*(processes_per_host(spec) * count for _, count in configs)) * (accum if isinstance(accum, int) else 1)
    if p.type == "integer":
        fits = [v for v in range(math.ceil(p.min / step) * step, int(p.max) + 1, step)][:8]
        return parameters, [], [Problem("tuning.parameters.global_batch_size", f"train.py needs a global batch divisible by "
                                        f"{step} (data-parallel processes x grad_accum_steps); most of {p.min:g}..{p.max:g} is not.",
                                        f"make it categorical: values: {fits or [step]}.")]
    kept = tuple(v for v in p.values if isinstance(v, int) and v % step == 0)
    if len(kept) == len(p.values):
        return parameters, [], []
    removal = Removal("tuning.parameters.global_batch_size", _describe(p), _describe(p.model_copy(update={"values": kept})),
                      f"train.py splits the global batch evenly over {step} (processes x grad_accum_steps)")
    if not kept:
        return parameters, [], [Problem("tuning.parameters.global_batch_size", f"no value divides by {step}.", f"use multiples of {step}.")]
    return {**parameters, "global_batch_size": p.model_copy(update={"values": kept})}, [removal], []


def _smallest(parameters: dict[str, TunedParameter]) -> dict[str, Any]:
    return {n: (p.values[0] if p.type == "categorical" else (int(p.min) if p.type == "integer" else p.min))
            for n, p in parameters.items()}


def _describe(p: TunedParameter) -> str:
    if p.type == "categorical":
        return "[" + ", ".join(str(v) for v in p.values) + "]"
    return f"{p.min:g}..{p.max:g}"
