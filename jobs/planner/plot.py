"""A plan as a picture: estimated job cost against step time for every configuration that fits."""

from __future__ import annotations

from pathlib import Path

from smjobs.planner.plan import Plan


def plot(found: Plan, path: Path, title: str = "") -> Path:
    """Scatter the fitting candidates (one colour per instance family, the choice ringed); write a PNG."""
    import matplotlib

    matplotlib.use("Agg")  # no display in CI or on a server
    import matplotlib.pyplot as plt

    from smjobs.catalog import instances

    fig, ax = plt.subplots(figsize=(8, 5), dpi=120)
    families: dict[str, list] = {}
    for c in found.scatter:
        families.setdefault(instances().types[c.instance_type].family, []).append(c)
    for family, cands in sorted(families.items()):
        ax.scatter([c.step.total_s for c in cands], [c.job_usd for c in cands], s=18, alpha=0.7, label=family)
    if found.choice is not None:
        c = found.choice
        ax.scatter([c.step.total_s], [c.job_usd], s=160, facecolors="none", edgecolors="black", linewidths=1.5,
                   label=f"choice: {c.instance_count} x {c.instance_type}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("estimated step time (s)")
    ax.set_ylabel("estimated job cost (USD)")
    ax.set_title(title or f"{len(found.scatter)} configurations that fit ({found.strategy.kind})")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path
