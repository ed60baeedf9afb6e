"""A plan as text: what ``smjobs plan`` prints, for the CLI and for notebooks (rich tables, imported on use)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from smjobs import catalog
from smjobs.planner.plan import Plan
from smjobs.tables import print_table, usd_text

if TYPE_CHECKING:
    from rich.console import Console


def print_plan(found: Plan, top: int = 5, *, out: Console | None = None, err: Console | None = None) -> None:
    """Print a plan as ``smjobs plan`` does: the workload and assumptions, the configurations that fit (cheapest job
    first), the instance types that have none and why. ``out`` and ``err`` default to the terminal's stdout and
    stderr; a notebook passes a wider ``Console(width=160)``."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    out = out or Console()
    err = err or Console(stderr=True)
    w, a = found.workload, found.assumptions
    shape = w.shape
    out.print(f"[bold]{escape(shape.describe())}[/]; {w.global_batch} samples per step, {w.steps} steps; "
              f"strategy {found.strategy.kind}; prices {found.region}", highlight=False)
    asked = found.constraints.region
    if asked and asked != found.region:
        out.print(f"[yellow]no price table for {asked}: ranked with {found.region}'s prices; "
                  f"`smjobs prices refresh --region {asked}` adds one[/]", highlight=False)
    limit = found.constraints.max_hours
    choice = found.choice
    width = getattr(shape, "hidden", 0) / choice.layout.tp_degree if choice is not None and hasattr(shape, "hidden") else None
    utilisation = (a.describe_mfu(choice.instance_type, width) + " without recomputation" if choice is not None
                   else f"{a.mfu:.0%} MFU (plan.mfu)" if a.mfu is not None else "each GPU model's default MFU")
    out.print(f"assumptions: {escape(utilisation)}; plan.mfu sets it, e.g. from a measured run; "
              f"{found.constraints.memory_margin:.0%} memory margin, {a.startup_s:.0f} s start-up"
              + (f", spot at {a.spot_price_fraction:.0%} of on-demand" if found.constraints.spot else "")
              + (f"; time limit {limit:,.1f} h" if limit is not None else ""), highlight=False)
    for text in found.warnings:
        err.print(f"[yellow]warning:[/] {escape(text)}", highlight=False)
    table = Table(title="configurations that fit, cheapest job first (costs within 2% go to the faster)")
    for column in ("", "instances", "layout", "micro-batch", "GiB/GPU", "s/step", "USD/h", "hours", "job USD"):
        table.add_column(column)
    for i, c in enumerate(found.ranked[:top]):
        spec = catalog.instances().types[c.instance_type]
        table.add_row("choice" if i == 0 else str(i + 1), f"{c.instance_count} x {c.instance_type}", c.describe_layout(),
                      str(c.micro_batch),
                      f"{c.memory.total_gib:.1f} / {spec.gpu_memory_gib:.1f}", f"{c.step.total_s:.2f}" if c.step.total_s >= 0.01 else "<0.01", f"{c.usd_per_hour:,.2f}",
                      f"{c.hours:,.1f}", usd_text(c.job_usd), style="bold green" if i == 0 else None)
    print_table(out, table)
    if found.rejections:
        rejected = Table(title="instance types with no configuration that fits, and why")
        rejected.add_column("instance type")
        rejected.add_column("why")
        grouped: dict[str, list] = {}
        bounded = [r for r in found.rejections if r.only_bound_usd is not None]
        for r in found.rejections:  # one row per type when the numbers differ, one per reason when they do not
            if r.only_bound_usd is not None:
                continue
            key = r.reason.replace(r.instance_type, "<type>") if r.kind in ("unpriced", "library", "family") else r.instance_type
            grouped.setdefault(key, []).append(r)
        for rows in grouped.values():
            names = ", ".join(r.instance_type for r in rows)
            reason = rows[0].reason if len(rows) == 1 else rows[0].reason.replace(rows[0].instance_type, "these types")
            rejected.add_row(names, reason)
        if bounded:  # never evaluated: one line, however many types the bound skipped
            low, high = min(r.only_bound_usd for r in bounded), max(r.only_bound_usd for r in bounded)
            span = f"${usd_text(low)}" + (f" to ${usd_text(high)}" if usd_text(high) != usd_text(low) else "")
            rejected.add_row(", ".join(r.instance_type for r in bounded),
                             f"not evaluated: the cheapest job on each costs at least {span} (compute alone), more than "
                             f"the cheapest plans found")
        print_table(out, rejected)
    if found.choice is None:
        err.print(f"[bold red]{escape(found.why_nothing())}[/]", highlight=False)
