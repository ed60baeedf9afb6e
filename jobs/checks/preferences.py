"""Rules for ``compute.instance_preferences`` (SageMaker's ``ResourceConfig.InstancePreferences``).

The service takes up to 5 ranked {type, count} entries and starts the job on the first it has capacity for.
It forbids them with managed spot. smjobs also requires that the job is valid whichever entry SageMaker picks:
every type is a known GPU type the strategy's library runs on, and strategies with fixed model-parallel degrees
get the same GPUs per instance and world size in every entry (the degrees were derived for the first).
"""

from __future__ import annotations

from smjobs import catalog
from smjobs.errors import Problem
from smjobs.spec.job import JobSpec

MAX_PREFERENCES = 5
DATA_PARALLEL = ("ddp", "smddp", "fsdp")
"""Strategies whose degrees follow the world size at run time: any GPU count fits them."""
LIBRARY = {"smddp": "smddp", "smp_v2": "smp_v2", "smp_v1": "smp_v1"}


def check_instance_preferences(spec: JobSpec) -> list[Problem]:
    c = spec.compute
    prefs = c.instance_preferences
    out = []
    if spec.plan.instance_preferences and c.use_spot:
        out.append(Problem("plan.instance_preferences", "cannot be combined with use_spot: SageMaker rejects "
                           "InstancePreferences with managed spot training.",
                           "set plan.instance_preferences to 0, or use_spot: false."))
    if not prefs:
        return out
    if c.use_spot:
        out.append(Problem("compute.instance_preferences", "cannot be combined with use_spot: SageMaker rejects "
                           "InstancePreferences with managed spot training.",
                           "remove instance_preferences, or set use_spot: false."))
    if len(prefs) > MAX_PREFERENCES:
        out.append(Problem("compute.instance_preferences", f"has {len(prefs)} entries; SageMaker takes at most {MAX_PREFERENCES}.",
                           f"keep the {MAX_PREFERENCES} you prefer most."))
    first = prefs[0]
    if (first.instance_type, first.instance_count) != (c.instance_type, c.instance_count):
        out.append(Problem("compute.instance_preferences[0]", f"is {first.instance_count} x {first.instance_type}, but "
                           f"compute is {c.instance_count} x {c.instance_type}; the first preference is the job's own.",
                           "make the first entry compute.instance_type x compute.instance_count."))
    seen = set()
    kind = spec.distribution.type
    base = catalog.instances().get(first.instance_type)
    for i, pref in enumerate(prefs):
        path = f"compute.instance_preferences[{i}]"
        known = catalog.instances().get(pref.instance_type)
        if (pref.instance_type, pref.instance_count) in seen:
            out.append(Problem(path, f"repeats {pref.instance_count} x {pref.instance_type}.", "list each entry once."))
        seen.add((pref.instance_type, pref.instance_count))
        if known is None:
            out.append(Problem(f"{path}.instance_type", f"{pref.instance_type!r} is not a GPU training instance type in "
                               "smjobs' catalog.", "see `smjobs instances`."))
            continue
        library = LIBRARY.get(kind)
        if library and library not in catalog.supported_libraries(pref.instance_type):
            out.append(Problem(f"{path}.instance_type", f"{kind} does not run on {pref.instance_type}.",
                               "list only types the strategy's library supports (`smjobs instances`)."))
        if kind not in DATA_PARALLEL and base is not None and (
                known.gpu_count != base.gpu_count or pref.instance_count != first.instance_count):
            out.append(Problem(path, f"{pref.instance_count} x {pref.instance_type} has {known.gpu_count * pref.instance_count} "
                               f"GPUs in {pref.instance_count} instance(s); {kind}'s degrees were set for "
                               f"{base.gpu_count * first.instance_count} in {first.instance_count}.",
                               "list entries with the same GPUs per instance and instance count, or use a data-parallel "
                               "strategy (ddp, fsdp, smddp), whose degrees follow the world size."))
    return out
