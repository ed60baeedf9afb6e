"""A plan as a picture: time to train against job cost for every configuration that fits.

Plain axes (hours and dollars, log-spaced but labelled "3 h", "$1,200", never 1e3), one colour per instance
family, the Pareto front (no other plan is both cheaper and faster) drawn as a line with each point's instance
count, and the choice ringed. Thousands of candidates stay readable: the dominated ones are small and faint, and
identical points are drawn once.
"""

from __future__ import annotations

from pathlib import Path

from smjobs.planner.plan import Candidate, Plan


def pareto_front(candidates) -> list[Candidate]:
    """The candidates no other one beats on both time and cost, fastest first."""
    front: list[Candidate] = []
    for c in sorted(candidates, key=lambda c: (c.hours, c.job_usd)):
        if not front or c.job_usd < front[-1].job_usd:
            front.append(c)
    return front


def _plain(value: float, unit: str) -> str:
    if unit == "$":
        return f"${value:,.0f}" if value >= 10 else f"${value:,.2f}"
    return f"{value:,.0f} h" if value >= 10 else f"{value:,.1f} h" if value >= 1 else f"{value * 60:,.0f} min"


def plot(found: Plan, path: Path, title: str = "") -> Path:
    """Write a PNG of ``found``'s fitting configurations: hours against USD, the Pareto front, the choice."""
    import matplotlib

    matplotlib.use("Agg")  # no display in CI or on a server
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    from smjobs.catalog import instances

    unique = {(round(c.hours, 4), round(c.job_usd, 2), c.instance_type, c.instance_count): c for c in found.scatter}
    points = list(unique.values())
    front = pareto_front(points)
    fig, ax = plt.subplots(figsize=(9, 5.5), dpi=120)
    families: dict[str, list] = {}
    for c in points:
        families.setdefault(instances().types[c.instance_type].family, []).append(c)
    colours = {}
    for family, cands in sorted(families.items()):
        dots = ax.scatter([c.hours for c in cands], [c.job_usd for c in cands], s=10, alpha=0.3, label=family,
                          edgecolors="none")
        colours[family] = dots.get_facecolor()[0]
    ax.plot([c.hours for c in front], [c.job_usd for c in front], color="black", linewidth=1, alpha=0.7,
            drawstyle="steps-post", label="Pareto front (cheaper or faster than every other plan)")
    labelled = None  # label a front point only where it stands apart from the last one labelled
    for c in front:
        family = instances().types[c.instance_type].family
        ax.scatter([c.hours], [c.job_usd], s=36, color=colours[family][:3], edgecolors="black", linewidths=0.5, zorder=3)
        if labelled is None or c.hours > labelled.hours * 1.35 or c.job_usd < labelled.job_usd / 1.1:
            short = c.instance_type.removeprefix("ml.").replace("xlarge", "xl")
            ax.annotate(f"{c.instance_count}x {short}", (c.hours, c.job_usd), textcoords="offset points",
                        xytext=(3, 6), fontsize=7, rotation=30)
            labelled = c
    if found.choice is not None:
        c = found.choice
        ax.scatter([c.hours], [c.job_usd], s=220, facecolors="none", edgecolors="red", linewidths=2, zorder=4,
                   label=f"choice: {c.instance_count} x {c.instance_type}, {_plain(c.hours, 'h')}, {_plain(c.job_usd, '$')}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    for axis, unit in ((ax.xaxis, "h"), (ax.yaxis, "$")):
        axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        axis.set_major_formatter(FuncFormatter(lambda v, _pos, unit=unit: _plain(v, unit)))
        axis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("time to train (hours, start-up included)")
    ax.set_ylabel("job cost (USD)")
    ax.set_title(title or f"{len(points)} configurations that fit ({found.strategy.kind})", fontsize=10)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=7, loc="best", markerscale=1.5, framealpha=0.85)
    fig.tight_layout()
    path = Path(path)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
