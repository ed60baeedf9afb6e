"""From a job spec to a plan, and ``instance_type: auto`` to a concrete spec.

The spec's ``plan`` section (or the bundled gpt model's hyperparameters) describes the workload; its
``distribution`` says which strategy, and the degrees the user set are kept fixed while the planner chooses
the rest. Resolving ``auto`` writes the chosen instance type, count and degrees back into a new spec, which
then goes through every ordinary validation rule.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import replace

from smjobs import catalog
from smjobs.errors import Problem
from smjobs.planner.cost import Assumptions, Workload
from smjobs.planner.factory import FactoryError, ModelProfile, profile
from smjobs.planner.inference_plan import InferenceWorkload, plan_inference
from smjobs.planner.memory import TransformerShape
from smjobs.planner.plan import TIE_SHARE, Candidate, Constraints, Plan, StrategyRequest, plan, rank
from smjobs.request.training import processes_per_host, source_dir
from smjobs.spec.job import AUTO, ENTRY_POINTS_DIR, JobSpec  # noqa: F401  (AUTO: callers import it here too)
from smjobs.spec.strategies import FSDP, ModelParallelV1, ModelParallelV2, PipelineParallel

log = logging.getLogger(__name__)

_GPT_KEYS = {"layers": "n_layers", "hidden": "d_model", "heads": "n_heads", "seq_len": "seq_len", "vocab": "vocab_size"}


def _int(value) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def describes_gpt(hyperparameters: dict) -> bool:
    """The hyperparameters size the bundled scripts' gpt: model gpt and every dimension an integer."""
    return hyperparameters.get("model") == "gpt" and all(_int(hyperparameters.get(k)) for k in _GPT_KEYS.values())


TRACED_KINDS = ("ddp", "smddp", "fsdp", "smp_v2")
"""Strategies a traced model is planned for: data parallel and sharded, without model splits."""


def traced_shape(spec: JobSpec) -> tuple[ModelProfile | None, list[Problem]]:
    """The profile of ``plan.model_factory``, traced in a child process, or the problems that prevent it."""
    settings = spec.plan
    problems = []
    if settings.model is not None:
        problems.append(Problem("plan.model_factory", "and plan.model both describe the model.", "keep one of them."))
    if settings.batch_factory is None:
        problems.append(Problem("plan.batch_factory", "is required with plan.model_factory: the trace needs an input batch.",
                                "name a function in source_dir that takes a micro-batch size and returns (inputs, targets)."))
    if spec.distribution.type not in TRACED_KINDS:
        problems.append(Problem("plan.model_factory", f"a traced model is planned for {', '.join(TRACED_KINDS)}; distribution "
                                f"{spec.distribution.type!r} splits the model, which needs its layers described.",
                                "describe the model with plan.model {layers, hidden, heads, seq_len, vocab} instead."))
    root = source_dir(spec)
    for field in ("model_factory", "batch_factory", "loss_fn"):
        reference = getattr(settings, field)
        module = reference.partition(":")[0] if reference else None
        if module and not any(c.is_file() for c in (root.joinpath(*module.split(".")).with_suffix(".py"),
                                                    root.joinpath(*module.split("."), "__init__.py"))):
            problems.append(Problem(f"plan.{field}", f"module {module!r} is not in {root} (the source_dir searched).",
                                    "give module:function of a .py file in source_dir."))
    if problems:
        return None, problems
    try:
        return profile(root, settings.model_factory, settings.batch_factory, settings.loss_fn, settings.micro_batch), []
    except (FactoryError, OSError, ValueError) as exc:
        return None, [Problem("plan.model_factory", f"tracing {settings.model_factory} failed: {exc}",
                              "make the factory importable with torch and source_dir alone (it runs in this environment, "
                              "under FakeTensorMode), or describe the model with plan.model.")]


def workload(spec: JobSpec, *, defaults: bool = False) -> tuple[Workload | None, list[Problem]]:
    """What the planner sizes: the model (described, traced or the bundled gpt's), the global batch and the steps.
    ``defaults``: without a global batch or steps, one micro-batch per GPU and one step (enough to size memory)."""
    settings, hps = spec.plan, spec.hyperparameters
    problems = []
    shape = None
    if settings.model_factory is not None:
        shape, problems = traced_shape(spec)
    elif settings.model is not None:
        shape = TransformerShape(**settings.model.model_dump(), micro_batch=settings.micro_batch)
    elif describes_gpt(hps):
        shape = TransformerShape(**{field: hps[key] for field, key in _GPT_KEYS.items()}, micro_batch=settings.micro_batch)
    else:
        problems.append(Problem("plan.model", "is needed to plan instances: the planner sizes a transformer by its layers, hidden size, "
                                "heads, sequence length and vocabulary.",
                                "add plan.model {layers, hidden, heads, seq_len, vocab}; or, for a model of your own, "
                                "plan.model_factory (\"module:function\" in source_dir, returning your nn.Module) with "
                                "plan.batch_factory (a micro-batch size -> (inputs, targets)); or use the bundled gpt model "
                                "with hyperparameters n_layers, d_model, n_heads, seq_len and vocab_size."))
    global_batch = settings.global_batch or _int(hps.get("global_batch_size"))
    if global_batch is None and defaults:
        global_batch = settings.micro_batch * processes_per_host(spec) * spec.compute.instance_count
    if global_batch is None:
        problems.append(Problem("plan.global_batch", "is needed to plan instances (sequences per optimizer step).",
                                "set plan.global_batch, or hyperparameters.global_batch_size."))
    steps = settings.steps or _int(hps.get("steps")) or (1 if defaults else None)
    if steps is None:
        problems.append(Problem("plan.steps", "is needed to price the job (optimizer steps).", "set plan.steps, or hyperparameters.steps."))
    if problems:
        return None, problems
    recompute = "none" if isinstance(shape, ModelProfile) else settings.recompute  # a traced model is traced as it is
    modes = Workload.recompute_modes
    if bundled_train_py(spec) and describes_gpt(hps):
        # the bundled train.py recomputes when told (--recompute): what it is given is fixed, else none or full
        recompute = recompute or (hps["recompute"] if hps.get("recompute") in BUNDLED_RECOMPUTE else None)
        modes = tuple(m for m in modes if m in BUNDLED_RECOMPUTE)
    bundled = source_dir(spec) == ENTRY_POINTS_DIR
    sequence_parallel = False if bundled else settings.sequence_parallel  # the bundled scripts' TP splits no norms
    # accumulating over pipeline schedule steps is a setting the bundled train_pipeline.py takes; a script of the
    # user's gets it only when the spec sets distribution.accumulation_steps itself
    accumulate = bundled and spec.entry_point == "train_pipeline.py"
    return Workload(shape, global_batch, steps, settings.precision, recompute, loss=settings.loss,
                    recompute_modes=modes, sequence_parallel=sequence_parallel, pipeline_accumulation=accumulate), []


BUNDLED_RECOMPUTE = ("none", "full")
"""The recomputation the bundled train.py's gpt does (``--recompute``)."""


def bundled_train_py(spec: JobSpec) -> bool:
    """The job runs smjobs' own train.py, whose hyperparameters the planner may set."""
    return source_dir(spec) == ENTRY_POINTS_DIR and spec.entry_point == "train.py"


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
                               virtual_stages=d.virtual_stages, microbatches=fixed("microbatches"),
                               accumulation=fixed("accumulation_steps"))
    if isinstance(d, ModelParallelV2):
        return StrategyRequest("smp_v2", tp_degree=fixed("tensor_parallel_degree"))
    if isinstance(d, ModelParallelV1):
        return StrategyRequest("smp_v1", pp_degree=fixed("partitions"), tp_degree=fixed("tensor_parallel_degree"),
                               microbatches=fixed("microbatches"))
    return StrategyRequest(d.type)


def pinned_strategy(spec: JobSpec) -> StrategyRequest:
    """The spec's strategy exactly as it will run: every degree at its value (defaults included)."""
    d = spec.distribution
    if isinstance(d, FSDP):
        degree = d.shard_degree or processes_per_host(spec) if d.sharding == "hybrid_shard" else None
        return StrategyRequest("fsdp", sharding=d.sharding, shard_degree=degree)
    if isinstance(d, PipelineParallel):
        return StrategyRequest("pipeline", pp_degree=d.pp_degree, tp_degree=d.tp_degree, schedule=d.schedule,
                               virtual_stages=d.virtual_stages, microbatches=d.microbatches, accumulation=d.accumulation_steps)
    if isinstance(d, ModelParallelV2):
        return StrategyRequest("smp_v2", tp_degree=d.tensor_parallel_degree)
    if isinstance(d, ModelParallelV1):
        return StrategyRequest("smp_v1", pp_degree=d.partitions, tp_degree=d.tensor_parallel_degree, microbatches=d.microbatches)
    return StrategyRequest(d.type)


def check_fits(spec: JobSpec, region: str | None = None) -> list[Problem]:
    """With a concrete instance type and a model described (plan.model) or traced (plan.model_factory): whether the
    job as specified fits in GPU memory, and if not, the estimate, the GPU's memory and what would fit."""
    settings = spec.plan
    described = settings.model is not None or settings.model_factory is not None
    if spec.compute.instance_type == AUTO or not (described or describes_gpt(spec.hyperparameters)):
        return []
    load, problems = workload(spec, defaults=True)
    if load is None:
        return problems
    if load.recompute is None:
        load = replace(load, recompute="none")  # the job runs without recomputation unless plan.recompute says so
    fixed = replace(constraints(spec, region), instance_types=(spec.compute.instance_type,),
                    instance_count=spec.compute.instance_count, max_usd_per_hour=None, families=())
    found = plan(load, pinned_strategy(spec), fixed, Assumptions(mfu=settings.mfu), keep=1)
    rejection = next((r for r in found.rejections if r.instance_type == spec.compute.instance_type), None)
    if rejection is not None and rejection.kind == "time":
        field = "compute.max_run_s" if "max_run_s" in spec.compute.model_fields_set or spec.plan.max_hours is None else "plan.max_hours"
        return [Problem(field, f"the job would not finish in time: {rejection.reason}.",
                        "raise the limit (max_run_s up to 2419200 s, 28 days), use more or faster instances "
                        "(compute.instance_type: auto plans it), or train fewer steps and resume from a checkpoint.")]
    if found.choice is not None or rejection is None or rejection.kind != "memory":
        return []  # fits, or what is wrong is not memory (degrees, library, price: other rules report those)
    anywhere = replace(fixed, instance_types=(), instance_count=None, max_usd_per_hour=settings.max_usd_per_hour,
                       families=settings.families)
    better = plan(load, strategy(spec), anywhere, Assumptions(mfu=settings.mfu), keep=1).choice
    alternative = (f"the cheapest configuration that fits is {better.instance_count} x {better.instance_type} "
                   f"({better.describe_layout()}, {better.memory.total_gib:.1f} GiB per GPU); set compute.instance_type "
                   "to it, or to auto" if better else "nothing in the catalog fits: shard more (fsdp, pipeline, smp_v2) or "
                   "lower plan.micro_batch")
    what = ("traced from plan.model_factory" if settings.model_factory else "estimated from plan.model" if settings.model
            else "estimated from the gpt's hyperparameters (n_layers, d_model, n_heads, seq_len, vocab_size)")
    recompute = "" if settings.recompute or settings.model_factory else ", without activation recomputation (set plan.recompute if the script does it)"
    return [Problem("compute.instance_type", f"the job does not fit in GPU memory ({what}{recompute}): {rejection.reason}.",
                    alternative + ".")]


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
        max_hours=time_limit_h(spec),
        checkpoints=bool(spec.checkpoint_s3_uri),
    )


def time_limit_h(spec: JobSpec) -> float:
    """The job's time limit in hours: compute.max_run_s when set, else plan.max_hours, else max_run_s's default."""
    if "max_run_s" not in spec.compute.model_fields_set and spec.plan.max_hours is not None:
        return spec.plan.max_hours
    return spec.compute.max_run_s / 3600


def plan_spec(spec: JobSpec, region: str | None = None, *, all_types: bool = True, keep: int = 10) -> tuple[Plan | None, list[Problem]]:
    load, problems = workload(spec)
    if load is None:
        return None, problems
    start = time.perf_counter()
    found = plan(load, strategy(spec), constraints(spec, region, all_types=all_types), Assumptions(mfu=spec.plan.mfu), keep)
    log.debug("planned %s in %.1f ms: %d configurations evaluated", spec.name, (time.perf_counter() - start) * 1000,
              found.evaluated)
    return found, []


def _with_instances(spec: JobSpec, choice: Candidate) -> dict:
    """``spec``'s data with the chosen instance type and count, and the time budget planned for as its limit."""
    data = spec.to_dict()
    data["compute"] = {**data["compute"], "instance_type": choice.instance_type, "instance_count": choice.instance_count}
    if "max_run_s" not in spec.compute.model_fields_set and spec.plan.max_hours is not None:
        data["compute"]["max_run_s"] = math.ceil(spec.plan.max_hours * 3600)
    return data


def apply(spec: JobSpec, choice: Candidate) -> JobSpec:
    """``spec`` with the chosen instance type, count and parallel degrees."""
    data = _with_instances(spec, choice)
    lay, dist = choice.layout, dict(data.get("distribution", {"type": spec.distribution.type}))
    if dist["type"] == "fsdp":
        dist["sharding"] = lay.sharding
        dist["unsharded_microbatches"] = lay.unsharded_microbatches
        if lay.sharding == "hybrid_shard":
            dist["shard_degree"] = lay.shard_degree
    elif dist["type"] == "pipeline":
        dist.update(pp_degree=lay.pp_degree, dp_degree=lay.dp_degree, tp_degree=lay.tp_degree, microbatches=lay.microbatches,
                    accumulation_steps=lay.accumulation)
    elif dist["type"] == "smp_v2":
        dist["tensor_parallel_degree"] = lay.tp_degree
    elif dist["type"] == "smp_v1":
        dist.update(partitions=lay.pp_degree, tensor_parallel_degree=lay.tp_degree, microbatches=lay.microbatches,
                    ddp=lay.dp_degree > 1)
    data["distribution"] = dist
    if bundled_train_py(spec) and describes_gpt(spec.hyperparameters) and dist["type"] in ("ddp", "smddp", "fsdp", "smp_v2"):
        # the bundled train.py runs the plan as planned: its recomputation, and its micro-batch through
        # gradient accumulation (unless the spec sets them)
        hps = dict(data.get("hyperparameters", {}))
        hps.setdefault("recompute", lay.recompute if lay.recompute in BUNDLED_RECOMPUTE else "none")
        global_batch = spec.plan.global_batch or spec.hyperparameters.get("global_batch_size")
        if isinstance(global_batch, int) and global_batch % lay.dp_degree == 0:
            accum = global_batch // lay.dp_degree // choice.micro_batch
            if accum > 1 and "grad_accum_steps" not in hps:
                hps["grad_accum_steps"] = accum
        data["hyperparameters"] = hps
    return JobSpec.model_validate(data)


DATA_PARALLEL = ("ddp", "smddp", "fsdp")


def preferences(found: Plan, wanted: int) -> list[Candidate]:
    """Up to ``wanted`` distinct {type, count}, best first: every one fits in memory, is priced and runs with the
    degrees of the first (data-parallel strategies: the same sharding settings; others: the same layout on as many
    GPUs per instance and instances). The first is the choice, or a layout of the same type and count that is as
    cheap and fast (within the tie share) and that more alternatives share."""
    choice = found.choice
    if choice is None or wanted < 1:
        return []

    def gpus(c: Candidate) -> int:
        return catalog.instances().types[c.instance_type].gpu_count

    def compatible(c: Candidate, first: Candidate) -> bool:
        a, b = c.layout, first.layout
        if (a.sharding, a.unsharded_microbatches, a.recompute) != (b.sharding, b.unsharded_microbatches, b.recompute):
            return False
        if found.strategy.kind in DATA_PARALLEL and a.sharding != "hybrid_shard":
            return True
        return a == b and c.instance_count == first.instance_count and gpus(c) == gpus(first)

    def ranked_for(first: Candidate) -> list[Candidate]:
        out, seen = [first], {(first.instance_type, first.instance_count)}
        for c in rank([c for c in found.scatter if compatible(c, first)], len(found.scatter)):
            if len(out) == wanted:
                break
            if (c.instance_type, c.instance_count) not in seen:
                seen.add((c.instance_type, c.instance_count))
                out.append(c)
        return out

    as_good = [c for c in found.scatter if (c.instance_type, c.instance_count) == (choice.instance_type, choice.instance_count)
               and c.job_usd <= choice.job_usd * (1 + TIE_SHARE) and c.hours <= choice.hours * (1 + TIE_SHARE)]
    return max((ranked_for(first) for first in [choice, *as_good]), key=len)  # the choice wins ties (max keeps the first)


def inference_workload(spec: JobSpec) -> tuple[InferenceWorkload | None, list[Problem]]:
    """What an inference job's planner sizes: the described model, the number of records and the batch."""
    from smjobs.inference.section import count_local_records

    problems = []
    if spec.plan.model is None:
        problems.append(Problem("plan.model", "is needed to plan an inference job's instances (the planner sizes the "
                                "weights, a batch's activations and the FLOPs per record from it).",
                                "add plan.model {layers, hidden, heads, seq_len, vocab}."))
    records = spec.plan.records or count_local_records(spec.inference.input)
    if records is None:
        problems.append(Problem("plan.records", "is needed to plan an inference job: the input is not a local folder "
                                "of JSON Lines or CSV files that smjobs can count.", "set plan.records to the data set's size."))
    if problems:
        return None, problems
    shape = TransformerShape(**spec.plan.model.model_dump())
    precision = "fp32" if spec.plan.precision in ("fp32", "tf32") else "bf16"
    return InferenceWorkload(shape, records, spec.inference.batch_size, precision, spec.plan.generated_tokens), []


def resolve_inference(spec: JobSpec, region: str | None) -> tuple[JobSpec, Plan | None, list[Problem]]:
    work, problems = inference_workload(spec)
    if work is None:
        return spec, None, problems
    found = plan_inference(work, constraints(spec, region), Assumptions(mfu=spec.plan.mfu))
    if found.choice is None:
        return spec, found, [Problem("compute.instance_type", f"auto: {found.why_nothing()}",
                                     "raise plan.max_usd_per_hour, plan.max_instances or the time limit, allow more "
                                     "plan.families, or lower inference.batch_size.")]
    return JobSpec.model_validate(_with_instances(spec, found.choice)), found, []


def resolve_auto(spec: JobSpec, region: str | None = None) -> tuple[JobSpec, Plan | None, list[Problem]]:
    """Replace ``instance_type: auto`` by the planner's choice; (spec, plan, problems)."""
    if spec.compute.instance_type != AUTO:
        return spec, None, []
    if spec.inference is not None:
        return resolve_inference(spec, region)
    found, problems = plan_spec(spec, region, all_types=False)
    if found is None:
        return spec, None, problems
    if found.choice is None:
        return spec, found, [Problem("compute.instance_type", f"auto: {found.why_nothing()}",
                                     "raise plan.max_usd_per_hour, plan.max_instances or the time limit (compute.max_run_s, "
                                     "or plan.max_hours when max_run_s is unset), allow more plan.families, lower "
                                     "plan.micro_batch, or choose a strategy that shards more (fsdp, pipeline, smp_v2).")]
    resolved = apply(spec, found.choice)
    if spec.plan.instance_preferences and not spec.compute.use_spot:  # spot: rules_preferences says why not
        ranked = preferences(found, spec.plan.instance_preferences)
        # the first preference may be another layout of the choice's type and count (as cheap and fast): it is the plan
        found = replace(found, ranked=(ranked[0], *(c for c in found.ranked if c is not ranked[0])))
        data = apply(spec, ranked[0]).to_dict()
        data["compute"]["instance_preferences"] = [{"instance_type": c.instance_type, "instance_count": c.instance_count}
                                                   for c in ranked]
        resolved = JobSpec.model_validate(data)
    return resolved, found, []
