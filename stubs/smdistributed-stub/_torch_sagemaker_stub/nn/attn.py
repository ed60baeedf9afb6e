"""``torch.sagemaker.nn.attn``: SMP's FlashAttention modules, not emulated (FlashAttention kernels are GPU only)."""

from torch.sagemaker._not_emulated import refuser

_WHY = ("FlashAttention kernels run on GPUs only; locally, compute attention with "
        "torch.nn.functional.scaled_dot_product_attention")
__getattr__ = refuser(__name__, {"FlashSelfAttention": _WHY, "FlashGroupedQueryAttention": _WHY})
