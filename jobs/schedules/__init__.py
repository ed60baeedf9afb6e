"""schedules: a timeline model of pipeline schedules and its pictures.

Lives here: ``model`` (which stage computes what and when; the bubble), ``render`` (a terminal rendering and
a PNG).

May import: ``spec``, ``errors``. matplotlib only inside ``render``'s PNG path.
"""
