"""What a job is expected to cost before it starts (``smjobs submit`` shows it and asks for confirmation).

With a model the planner can size (``plan.model``, ``plan.model_factory`` or the bundled gpt), the estimate is
the planner's for the exact instances of the spec. Otherwise it is the bound the spec itself sets: the instances'
price for ``compute.max_run_s``, which SageMaker enforces.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from smjobs import catalog
from smjobs.planner.cost import Assumptions, hourly_usd
from smjobs.planner.plan import plan
from smjobs.planner.resolve import AUTO, constraints, pinned_strategy, workload
from smjobs.spec.job import JobSpec


@dataclass(frozen=True)
class Estimate:
    usd: float | None
    """None when the catalog has no price for the instance type in the region."""
    hours: float | None
    usd_per_hour: float | None
    basis: str
    """How it was estimated, said with the number."""

    def describe(self) -> str:
        if self.usd is None:
            return self.basis
        return f"${self.usd:,.2f} ({self.hours:,.2f} h at ${self.usd_per_hour:,.2f}/h; {self.basis})"


def estimate(spec: JobSpec, region: str | None) -> Estimate:
    compute = spec.compute
    prices = catalog.prices()
    price = prices.price(compute.instance_type, region) or prices.price(compute.instance_type)
    if compute.instance_type == AUTO or price is None:
        return Estimate(None, None, None, f"no catalog price for {compute.instance_type} in {region or prices.default_region}")
    per_hour = hourly_usd(price.usd_per_hour, compute.instance_count, compute.use_spot)
    spot = ", spot at an assumed 40% of on-demand" if compute.use_spot else ""
    load, _ = workload(spec)
    if load is not None:
        if load.recompute is None:
            load = replace(load, recompute="none")
        fixed = replace(constraints(spec, region), instance_types=(compute.instance_type,),
                        instance_count=compute.instance_count, max_usd_per_hour=None, families=(), max_hours=None)
        choice = plan(load, pinned_strategy(spec), fixed, Assumptions(mfu=spec.plan.mfu), keep=1).choice
        if choice is not None:
            width = load.shape.hidden / choice.layout.tp_degree if hasattr(load.shape, "hidden") else None
            utilisation = Assumptions(mfu=spec.plan.mfu).mfu_for(compute.instance_type, width)
            return Estimate(choice.job_usd, choice.hours, choice.usd_per_hour,
                            f"planner estimate for {load.steps} steps at {utilisation:.0%} MFU{spot}")
    hours = compute.max_run_s / 3600
    return Estimate(per_hour * hours, hours, per_hour,
                    f"at most: the instances for compute.max_run_s={compute.max_run_s} s{spot}")
