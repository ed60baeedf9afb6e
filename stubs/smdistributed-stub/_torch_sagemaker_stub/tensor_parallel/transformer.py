"""SMP's tensor-parallel transformer layers (Transformer Engine under the hood), not emulated.

The stand-in keeps the model's own layers and splits them with torch.distributed.tensor (``tsm.transform``), so
scripts that wrap and checkpoint by layer class should use the model's own decoder-layer class locally.
"""

from torch.sagemaker._not_emulated import refuser

_WHY = ("SMP's own tensor-parallel layers are built on Transformer Engine (GPU only); the stand-in keeps the "
        "model's layers, so use the model's own decoder-layer class (use_smp_implementation=0 in AWS's scripts)")
__getattr__ = refuser(__name__, {"TransformerLayer": _WHY, "TETransformerLayer": _WHY, "TransformerLMHead": _WHY})
