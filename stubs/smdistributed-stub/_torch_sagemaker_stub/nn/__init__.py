"""``torch.sagemaker.nn``: SMP's attention modules (``nn.attn``, ``nn.huggingface``), not emulated."""
