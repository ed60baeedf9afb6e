"""``torch.sagemaker.checkpoint``: checkpoint-directory utilities (``checkpoint.utils``)."""
