"""``smp.patches``: SMP's activation checkpointing (``smp.patches.checkpoint``)."""

from smdistributed.modelparallel.torch.patches import checkpoint  # noqa: F401
