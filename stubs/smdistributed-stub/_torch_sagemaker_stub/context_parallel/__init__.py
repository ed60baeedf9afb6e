"""``torch.sagemaker.context_parallel``: SMP's context parallelism (Transformer Engine ring attention), not emulated."""
