"""``torch.sagemaker.tensor_parallel``: SMP's own tensor-parallel transformer modules, not emulated."""
