"""SageMaker model parallelism v1 (SMP v1), emulated: see smdistributed.modelparallel.torch."""

from smdistributed._guard import refuse_to_shadow

refuse_to_shadow()  # again here: a script may reach this package without the stub's own parent package

__version__ = "1.15.0"
"""The SMP v1 release whose API the stub follows (the last one, for PyTorch 2.0.0 and 1.13.1)."""
