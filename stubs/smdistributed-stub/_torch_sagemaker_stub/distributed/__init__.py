"""``torch.sagemaker.distributed``: SMP v2's checkpointing (``distributed.checkpoint``)."""
