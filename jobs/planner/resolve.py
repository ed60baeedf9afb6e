"""From a job spec to a plan, and ``instance_type: auto`` to a concrete spec.

The spec's ``plan`` section (or the bundled gpt model's hyperparameters) describes the workload; its
``distribution`` says which strategy, and the degrees the user set are kept fixed while the planner chooses
the rest. Resolving ``auto`` writes the chosen instance type, count and degrees back into a new spec, which
then goes through every ordinary validation rule.
"""

from __future__ import annotations

from smjobs.errors import Problem
from smjobs.planner.cost import Assumptions, Workload
from smjobs.planner.memory import TransformerShape
from smjobs.planner.plan import Candidate, Constraints, Plan, StrategyRequest, plan
from smjobs.spec import JobSpec
from smjobs.strategies import FSDP, ModelParallelV1, ModelParallelV2, PipelineParallel

AUTO = "auto"
_GPT_KEYS = {"layers": "n_layers", "hidden": "d_model", "heads": "n_heads", "seq_len": "seq_len", "vocab": "vocab_size"}


def _int(value) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def workload(spec: JobSpec) -> tuple[Workload | None, list[Problem]]:
    settings, hps = spec.plan, spec.hyperparameters
    problems = []
    shape = None
    if settings.model is not None:
        shape = TransformerShape(**settings.model.model_dump(), micro_batch=settings.micro_batch)
    elif hps.get("model") == "gpt" and all(_int(hps.get(k)) for k in _GPT_KEYS.values()):
        shape = TransformerShape(**{field: hps[key] for field, key in _GPT_KEYS.items()}, micro_batch=settings.micro_batch)
    else:
        problems.append(Problem("plan.model", "is needed to plan instances: the planner sizes a transformer by its layers, hidden size, "
                                "heads, sequence length and vocabulary.",
                                "add plan.model {layers, hidden, heads, seq_len, vocab}, or use the bundled gpt model with "
                                "hyperparameters n_layers, d_model, n_heads, seq_len and vocab_size."))
    global_batch = settings.global_batch or _int(hps.get("global_batch_size"))
    if global_batch is None:
        problems.append(Problem("plan.global_batch", "is needed to plan instances (sequences per optimizer step).",
                                "set plan.global_batch, or hyperparameters.global_batch_size."))
    steps = settings.steps or _int(hps.get("steps"))
    if steps is None:
        problems.append(Problem("plan.steps", "is needed to price the job (optimizer steps).", "set plan.steps, or hyperparameters.steps."))
    if problems:
        return None, problems
    return Workload(shape, global_batch, steps, settings.precision, settings.recompute), []


def strategy(spec: JobSpec) -> StrategyRequest:
    """The spec's strategy with the degrees its author set (unset ones are the planner's to choose)."""
    d = spec.distribution
    chosen = d.model_fields_set

    def fixed(name: str):
        return getattr(d, name) if name in chosen else None

    if isinstance(d, FSDP):
        return StrategyRequest("fsdp", sharding=fixed("sharding"), shard_degree=fixed("shard_degree"))
    if isinstance(d, PipelineParallel):
        return StrategyRequest("pipeline", pp_degree=fixed("pp_degree"), tp_degree=fixed("tp_degree"), schedule=d.schedule,
                               virtual_stages=d.virtual_stages, microbatches=fixed("microbatches"))
    if isinstance(d, ModelParallelV2):
        return StrategyRequest("smp_v2", tp_degree=fixed("tensor_parallel_degree"))
    if isinstance(d, ModelParallelV1):
        return StrategyRequest("smp_v1", pp_degree=fixed("partitions"), tp_degree=fixed("tensor_parallel_degree"),
                               microbatches=fixed("microbatches"))
    return StrategyRequest(d.type)


def constraints(spec: JobSpec, region: str | None, *, all_types: bool = False) -> Constraints:
    """Limits from the spec; a concrete instance type (unless ``all_types``) and a set count are kept."""
    c = spec.compute
    return Constraints(
        region=region or spec.region,
        max_usd_per_hour=spec.plan.max_usd_per_hour,
        max_instances=spec.plan.max_instances,
        families=spec.plan.families,
        instance_types=() if all_types or c.instance_type == AUTO else (c.instance_type,),
        instance_count=c.instance_count if "instance_count" in c.model_fields_set and not all_types else None,
        spot=c.use_spot,
        memory_margin=spec.plan.memory_margin,
    )


def plan_spec(spec: JobSpec, region: str | None = None, *, all_types: bool = True, keep: int = 10) -> tuple[Plan | None, list[Problem]]:
    load, problems = workload(spec)
    if load is None:
        return None, problems
    return plan(load, strategy(spec), constraints(spec, region, all_types=all_types), Assumptions(mfu=spec.plan.mfu), keep), []


def apply(spec: JobSpec, choice: Candidate) -> JobSpec:
    """``spec`` with the chosen instance type, count and parallel degrees."""
    data = spec.to_dict()
    data["compute"] = {**data["compute"], "instance_type": choice.instance_type, "instance_count": choice.instance_count}
    lay, dist = choice.layout, dict(data.get("distribution", {"type": spec.distribution.type}))
    if dist["type"] == "fsdp":
        dist["sharding"] = lay.sharding
        if lay.sharding == "hybrid_shard":
            dist["shard_degree"] = lay.shard_degree
    elif dist["type"] == "pipeline":
        dist.update(pp_degree=lay.pp_degree, dp_degree=lay.dp_degree, tp_degree=lay.tp_degree, microbatches=lay.microbatches)
    elif dist["type"] == "smp_v2":
        dist["tensor_parallel_degree"] = lay.tp_degree
    elif dist["type"] == "smp_v1":
        dist.update(partitions=lay.pp_degree, tensor_parallel_degree=lay.tp_degree, microbatches=lay.microbatches,
                    ddp=lay.dp_degree > 1)
    data["distribution"] = dist
    return JobSpec.model_validate(data)


def resolve_auto(spec: JobSpec, region: str | None = None) -> tuple[JobSpec, Plan | None, list[Problem]]:
    """Replace ``instance_type: auto`` by the planner's choice; (spec, plan, problems)."""
    if spec.compute.instance_type != AUTO:
        return spec, None, []
    found, problems = plan_spec(spec, region, all_types=False)
    if found is None:
        return spec, None, problems
    if found.choice is None:
        return spec, found, [Problem("compute.instance_type", f"auto: {found.why_nothing()}",
                                     "raise plan.max_usd_per_hour or plan.max_instances, allow more plan.families, lower "
                                     "plan.micro_batch, or choose a strategy that shards more (fsdp, pipeline, smp_v2).")]
    return apply(spec, found.choice), found, []
