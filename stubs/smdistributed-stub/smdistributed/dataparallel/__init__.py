"""SageMaker distributed data parallel (SMDDP), emulated: see smdistributed.dataparallel.torch."""

from smdistributed._guard import refuse_to_shadow

refuse_to_shadow()  # again here: a script may reach this package without the stub's own parent package
