"""SageMaker model parallelism v1 (SMP v1), emulated: see smdistributed.modelparallel.torch."""
