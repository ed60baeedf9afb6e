"""``torch.sagemaker.nn.huggingface``: SMP's FlashAttention drop-ins for Hugging Face models, not emulated."""
