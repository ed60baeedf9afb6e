"""planner: instance selection. Per-GPU memory (analytic and traced), step time and cost, and the search over
instance type x count x parallel layout for the cheapest configuration that fits.

Lives here: ``memory`` (analytic memory), ``traced`` and ``factory`` (memory and FLOPs of a real ``nn.Module``,
without a GPU), ``cost`` (step time and price), ``plan`` (the search), ``explain`` (why a type has no plan),
``resolve`` (spec -> plan, ``instance_type: auto``), ``inference_plan``, ``estimate`` (the cost shown at submit),
``calibration`` (against published runs), ``report`` and ``plot`` (a plan as tables and as a picture).

Public names, for planning a model that has no spec yet (``smjobs.plan(spec)`` plans a spec)::

    from smjobs.planner import Constraints, StrategyRequest, TransformerShape, Workload, plan_workload, print_plan

    found = plan_workload(Workload(TransformerShape(layers=32, hidden=4096, heads=32, seq_len=4096, vocab=32000),
                                   global_batch=512, steps=2000), StrategyRequest("fsdp"), Constraints(max_instances=16))
    print_plan(found)

May import: ``inference``, ``request``, ``schedules``, ``spec``, ``catalog``, ``errors`` and the bundled scripts'
``common.memory`` (for the traced estimate).
"""

from smjobs.planner.cost import Workload
from smjobs.planner.memory import Layout, TransformerShape
from smjobs.planner.memory import estimate as estimate_memory
from smjobs.planner.plan import Constraints, Plan, StrategyRequest
from smjobs.planner.plan import plan as plan_workload
from smjobs.planner.plot import plot
from smjobs.planner.report import print_plan

__all__ = ["Constraints", "Layout", "Plan", "StrategyRequest", "TransformerShape", "Workload", "estimate_memory",
           "plan_workload", "plot", "print_plan"]
