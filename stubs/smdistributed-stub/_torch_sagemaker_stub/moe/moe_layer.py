"""``torch.sagemaker.moe.moe_layer``: SMP's MoE layer (expert parallelism), not emulated."""

from torch.sagemaker._not_emulated import refuser

__getattr__ = refuser(__name__, {"MoELayer": "SMP's expert-parallel MoE layer runs in its CUDA modules (GPU only)"})
