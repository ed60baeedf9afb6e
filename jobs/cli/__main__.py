"""``python -m smjobs.cli``: the same as the ``smjobs`` command."""

from smjobs.cli import main

main()
