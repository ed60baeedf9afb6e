"""``torch.sagemaker.moe``: SMP's mixture-of-experts configuration; its layers are not emulated."""
