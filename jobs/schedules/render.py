"""Pictures of a pipeline timeline (``schedule_model.Timeline``): a terminal rendering and a PNG.

Both show every virtual stage apart. In text, a slot reads ``F3`` (forward of micro-batch 3) when each rank holds
one stage and ``F3/1`` (on the rank's stage chunk 1) when it holds several; idle time is ``.``. In the PNG each
chunk gets its own shade of the operation's colour, every slot wide enough is labelled, and a legend names F, B,
I, W and idle. The PNG's width is bounded whatever the number of micro-batches.
"""

from __future__ import annotations

from fractions import Fraction
from math import gcd, lcm
from pathlib import Path

from smjobs.schedules.model import Slot, Timeline, stage_of

KINDS = {"F": "forward", "B": "backward (input and weight gradients)", "I": "input gradient", "W": "weight gradient"}
_FILL = {"F": "-", "B": "=", "I": "=", "W": "~"}
COLORS = {"F": "#4C72B0", "B": "#55A868", "I": "#55A868", "W": "#DD8452"}
IDLE_COLOR = "#E6E6E6"
MAX_WIDTH_IN = 16.0
DPI = 100


def chunk_of(timeline: Timeline, slot: Slot) -> int:
    """Which of its rank's stages (0 .. v-1, in the schedule's placement) a slot runs on."""
    return next(c for c in range(timeline.virtual_stages)
                if stage_of(timeline.schedule, slot.rank, c, timeline.ranks) == slot.stage)


def label(timeline: Timeline, slot: Slot) -> str:
    text = f"{slot.kind}{slot.microbatch}"
    return text if timeline.virtual_stages == 1 else f"{text}/{chunk_of(timeline, slot)}"


def _exact(time: float) -> Fraction:
    """A slot time as the fraction it stands for (the model's times are sums of 1/v and backward_cost/v)."""
    return Fraction(time).limit_denominator(10_000)


def _unit(timeline: Timeline) -> Fraction:
    """The largest time step every slot boundary is a multiple of (a forward of one chunk, or less)."""
    times = [_exact(t) for s in timeline.slots for t in (s.start, s.end)]
    denominator = lcm(*(t.denominator for t in times))
    return Fraction(gcd(*(int(t * denominator) for t in times)) or 1, denominator)


def text_geometry(timeline: Timeline, max_width: int = 160) -> tuple[Fraction, int]:
    """(time per cell, characters per cell): a cell per time unit, wide enough for every label, unless the row
    would pass ``max_width``; then one character per unit (labels become the kind's letter)."""
    unit = _unit(timeline)
    width = max(len(label(timeline, s)) for s in timeline.slots) + 1
    units = int(_exact(timeline.makespan) / unit)
    return unit, width if units * width <= max_width else 1


def render_text(timeline: Timeline, max_width: int = 160) -> list[str]:
    """One line per rank, in time order. Each slot covers exactly its start..end cells."""
    unit, cell = text_geometry(timeline, max_width)
    total = int(_exact(timeline.makespan) / unit) * cell
    lines = []
    for rank in range(timeline.ranks):
        row = ["."] * total
        for slot in (s for s in timeline.slots if s.rank == rank):
            a, b = (int(_exact(t) / unit) * cell for t in (slot.start, slot.end))
            if cell == 1:  # compact: the kind's letter; chunk 1 of two in lower case
                letter = slot.kind.lower() if timeline.virtual_stages == 2 and chunk_of(timeline, slot) == 1 else slot.kind
                text = letter * (b - a)
            else:
                text = label(timeline, slot).ljust(b - a, _FILL[slot.kind])
            row[a:b] = list(text)
        lines.append(f"rank {rank} |" + "".join(row) + "|")
    return lines


def legend_text(timeline: Timeline, max_width: int = 160) -> str:
    kinds = sorted({s.kind for s in timeline.slots}, key="FBIW".index)
    names = ", ".join(f"{k} = {KINDS[k]}" for k in kinds)
    _, cell = text_geometry(timeline, max_width)
    if cell == 1:
        chunks = "; lower case: the rank's second stage" if timeline.virtual_stages == 2 else ""
        return f"{names}; . = idle; one character per time step{chunks}"
    chunks = (f"; F3/1 = micro-batch 3 on the rank's stage chunk 1 (of {timeline.virtual_stages})"
              if timeline.virtual_stages > 1 else "; F3 = micro-batch 3")
    return f"{names}; . = idle{chunks}"


def _shade(color: str, chunk: int, chunks: int) -> tuple[float, float, float]:
    """The kind's colour, lighter for each later chunk of the rank (up to half-way to white)."""
    from matplotlib.colors import to_rgb

    r, g, b = to_rgb(color)
    t = 0.5 * chunk / max(1, chunks - 1) if chunks > 1 else 0.0
    return r + (1 - r) * t, g + (1 - g) * t, b + (1 - b) * t


def plot(timeline: Timeline, path) -> Path:
    """Write the PNG: one row per rank, a shade per stage chunk, labels where they fit, a legend; returns the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    width_in = min(MAX_WIDTH_IN, max(6.0, timeline.makespan * 0.35))
    fig, ax = plt.subplots(figsize=(width_in, 0.6 * timeline.ranks + 1.8))
    ax.set_facecolor(IDLE_COLOR)  # what no slot covers is idle
    px_per_unit = width_in * DPI * 0.8 / timeline.makespan  # the axes take about 80% of the figure's width
    v = timeline.virtual_stages
    for slot in timeline.slots:
        chunk = chunk_of(timeline, slot)
        ax.broken_barh([(slot.start, slot.end - slot.start)], (slot.rank - 0.4, 0.8),
                       facecolors=[_shade(COLORS[slot.kind], chunk, v)], edgecolor="white", linewidth=0.5)
        text = f"{slot.kind}{slot.microbatch}" if v == 1 else f"{slot.kind}{slot.microbatch}\ns{slot.stage}"
        if (slot.end - slot.start) * px_per_unit >= 8 * max(len(t) for t in text.split("\n")):
            ax.text((slot.start + slot.end) / 2, slot.rank, text, ha="center", va="center", fontsize=7,
                    color="white" if chunk < max(1, v - 1) or v == 1 else "black", linespacing=0.9)
    kinds = sorted({s.kind for s in timeline.slots}, key="FBIW".index)
    handles = [Patch(facecolor=_shade(COLORS[k], c, v), label=f"{k}: {KINDS[k]}" + (f", chunk {c}" if v > 1 else ""))
               for k in kinds for c in range(v)]
    handles.append(Patch(facecolor=IDLE_COLOR, edgecolor="#999999", label="idle"))
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.25), ncol=min(len(handles), 4),
              fontsize=7, frameon=False)
    ax.set_yticks(range(timeline.ranks), [f"rank {r}" for r in range(timeline.ranks)])
    ax.set_xlim(0, timeline.makespan)
    ax.invert_yaxis()
    ax.set_xlabel("time (one forward of a rank's share = 1)")
    stages = f"{v} stages per rank (s = global stage)" if v > 1 else "1 stage per rank"
    ax.set_title(f"{timeline.schedule}: {timeline.ranks} ranks, {timeline.microbatches} micro-batches, {stages}; "
                 f"bubble {timeline.bubble_fraction:.1%}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path
