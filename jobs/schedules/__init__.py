"""schedules: a timeline model of pipeline schedules and its pictures.

Lives here: ``model`` (which stage computes what and when; the bubble), ``render`` (a terminal rendering and
a PNG).

May import: ``spec``, ``errors``. matplotlib only inside ``render``'s PNG path.

Public names::

    from smjobs.schedules import plot, render_text, simulate, theoretical_bubble

    timeline = simulate("1F1B", ranks=4, microbatches=8)
    print(timeline.bubble_fraction, theoretical_bubble("1F1B", 4, 8))
    plot(timeline, "figures/1F1B.png")
"""

from smjobs.schedules.model import Timeline, simulate, theoretical_bubble
from smjobs.schedules.render import plot, render_text

__all__ = ["Timeline", "plot", "render_text", "simulate", "theoretical_bubble"]
