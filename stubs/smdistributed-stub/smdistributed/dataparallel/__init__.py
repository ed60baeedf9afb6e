"""SageMaker distributed data parallel (SMDDP), emulated: see smdistributed.dataparallel.torch."""
