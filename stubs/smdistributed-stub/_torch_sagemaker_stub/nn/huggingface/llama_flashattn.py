"""``LlamaFlashAttention``: SMP's FlashAttention for Llama, not emulated."""

from torch.sagemaker._not_emulated import refuser

__getattr__ = refuser(__name__, {"LlamaFlashAttention": "it runs SMP's FlashAttention kernels (GPU only); use "
                                 "transformers' own LlamaAttention (attn_implementation='sdpa') locally"})
